"""Summary statistics of the record, for `personae stats`."""

from __future__ import annotations

from typing import Any

from agent.store.record import RecordStore

PERCENTILES = (0, 10, 25, 50, 75, 90, 99, 100)
TOP_CATEGORIES = 10


def record_stats(store: RecordStore) -> dict[str, Any]:
    conn = store.conn
    counts = store.counts()
    events = dict(
        conn.execute("SELECT event_type, count(*) FROM interactions GROUP BY 1 ORDER BY 1")
    )
    ratings = {
        f"{value:g}": n
        for value, n in conn.execute(
            "SELECT rating, count(*) FROM interactions WHERE rating IS NOT NULL "
            "GROUP BY 1 ORDER BY 1"
        )
    }
    first, last = conn.execute("SELECT min(ts_ms), max(ts_ms) FROM interactions").fetchone()
    return {
        **counts,
        "events": events,
        "reviews_with_text": conn.execute(
            "SELECT count(*) FROM interactions WHERE review_text IS NOT NULL"
        ).fetchone()[0],
        "items_without_title": conn.execute(
            "SELECT count(*) FROM items WHERE title = item_id"
        ).fetchone()[0],
        "rating_distribution": ratings,
        "history_length_percentiles": _history_percentiles(store),
        "top_categories": _top_categories(store),
        "time_range_ms": [first, last],
        "schema_version": store.schema_version,
    }


def _history_percentiles(store: RecordStore) -> dict[str, int]:
    """Nearest-rank percentiles of interactions per user (users with none count as 0)."""
    lengths = [
        n
        for (n,) in store.conn.execute(
            "SELECT count(i.id) FROM users u LEFT JOIN interactions i USING (user_id) "
            "GROUP BY u.user_id ORDER BY 1"
        )
    ]
    if not lengths:
        return {}
    last = len(lengths) - 1
    return {f"p{p}": lengths[round(p / 100 * last)] for p in PERCENTILES}


def _top_categories(store: RecordStore) -> list[dict[str, Any]]:
    """Categories by number of interactions with their items (and by number of items)."""
    rows = store.conn.execute(
        "WITH per_item AS (SELECT item_id, count(*) AS n FROM interactions GROUP BY item_id) "
        "SELECT c.value, count(*) AS items, coalesce(sum(p.n), 0) AS interactions "
        "FROM items, json_each(items.categories) AS c "
        "LEFT JOIN per_item p ON p.item_id = items.item_id "
        "GROUP BY c.value ORDER BY interactions DESC, items DESC, c.value LIMIT ?",
        (TOP_CATEGORIES,),
    )
    return [{"category": c, "items": items, "interactions": n} for c, items, n in rows]
