"""The system of record: users, items and interactions in SQLite (WAL mode) under data_dir.

Everything expensive or irreplaceable lives here; Chroma is an index rebuilt from it. An
ingest runs in one transaction (`RecordStore.writer`), so a failed or killed ingest leaves
the store exactly as it was. The schema is versioned with `PRAGMA user_version` and
migrated forward by appending to `MIGRATIONS` (`agent.store.migrations`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.schemas import EventType, Interaction, Item, User
from agent.store.migrations import MIGRATIONS as MIGRATIONS

DB_NAME = "personae.sqlite3"


def _json(value: Any) -> str:
    if not value and isinstance(value, dict):
        return "{}"
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def item_hash(item: Item) -> str:
    return hashlib.sha256(_json(item.model_dump(mode="json")).encode()).hexdigest()


def _ts_ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def dedupe_key(event: Interaction) -> bytes:
    """Two events are duplicates when who, what, when, type, rating and text all match."""
    fields = (
        event.user_id,
        event.item_id,
        event.event_type.value,
        str(_ts_ms(event.timestamp)),
        repr(event.rating),
        repr(event.review_title),
        repr(event.review_text),
    )
    return hashlib.blake2b("\x1f".join(fields).encode(), digest_size=16).digest()


@dataclass
class WriteCounts:
    items_added: int = 0
    items_updated: int = 0
    items_unchanged: int = 0
    users_added: int = 0
    users_updated: int = 0
    interactions_added: int = 0
    duplicates: int = 0


@dataclass
class Writer:
    """Buffered writes inside one open transaction; see `RecordStore.writer`."""

    conn: sqlite3.Connection
    batch_size: int = 2000
    counts: WriteCounts = field(default_factory=WriteCounts)
    _pending: list[Interaction] = field(default_factory=list)

    def item_ids(self) -> set[str]:
        return {row[0] for row in self.conn.execute("SELECT item_id FROM items")}

    def put_item(self, item: Item) -> None:
        digest = item_hash(item)
        row = self.conn.execute(
            "SELECT content_hash FROM items WHERE item_id = ?", (item.item_id,)
        ).fetchone()
        if row is not None and row[0] == digest:
            self.counts.items_unchanged += 1
            return
        self.conn.execute(
            "INSERT INTO items (item_id, title, categories, description, year, attributes, "
            "content_hash) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET "
            "title = excluded.title, categories = excluded.categories, "
            "description = excluded.description, year = excluded.year, "
            "attributes = excluded.attributes, content_hash = excluded.content_hash",
            (
                item.item_id,
                item.title,
                _json(item.categories),
                item.description,
                item.year,
                _json(item.attributes),
                digest,
            ),
        )
        if row is None:
            self.counts.items_added += 1
        else:
            self.counts.items_updated += 1

    def put_user(self, user: User) -> None:
        attributes = _json(user.attributes)
        row = self.conn.execute(
            "SELECT attributes FROM users WHERE user_id = ?", (user.user_id,)
        ).fetchone()
        if row is None:
            self.conn.execute("INSERT INTO users VALUES (?, ?)", (user.user_id, attributes))
            self.counts.users_added += 1
        elif row[0] != attributes:
            self.conn.execute(
                "UPDATE users SET attributes = ? WHERE user_id = ?", (attributes, user.user_id)
            )
            self.counts.users_updated += 1

    def add_interaction(self, event: Interaction) -> None:
        self._pending.append(event)
        if len(self._pending) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        events, self._pending = self._pending, []
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO users (user_id) VALUES (?)", [(e.user_id,) for e in events]
        )
        self.counts.users_added += self.conn.total_changes - before
        before = self.conn.total_changes
        self.conn.executemany(
            "INSERT OR IGNORE INTO interactions (user_id, item_id, ts_ms, event_type, rating, "
            "review_title, review_text, attributes, dedupe_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    e.user_id,
                    e.item_id,
                    _ts_ms(e.timestamp),
                    e.event_type.value,
                    e.rating,
                    e.review_title,
                    e.review_text,
                    _json(e.attributes),
                    dedupe_key(e),
                )
                for e in events
            ],
        )
        added = self.conn.total_changes - before
        self.counts.interactions_added += added
        self.counts.duplicates += len(events) - added

    def log_ingest(self, format_name: str, files: list[str], report: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO ingests (format, files, finished_at, report) VALUES (?, ?, ?, ?)",
            (format_name, _json(files), datetime.now(UTC).isoformat(), _json(report)),
        )


class RecordStore:
    """One SQLite database; open it with `RecordStore.at(data_dir)`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA busy_timeout = 10000")
        self.conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: big ingests stay fast
        self.migrate()

    @classmethod
    def at(cls, data_dir: Path) -> RecordStore:
        return cls(Path(data_dir) / DB_NAME)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply the migrations this database has not seen yet, each in its own transaction."""
        for version in range(self.schema_version, len(MIGRATIONS)):
            with self.transaction():
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {version + 1}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    @contextmanager
    def writer(self) -> Iterator[Writer]:
        """All writes of one ingest: committed together, or (on any error) not at all."""
        with self.transaction() as conn:
            writer = Writer(conn)
            yield writer
            writer.flush()

    # -- reads ---------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        query = (
            "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM items), "
            "(SELECT count(*) FROM interactions), "
            "(SELECT count(*) FROM interactions WHERE rating IS NOT NULL)"
        )
        users, items, interactions, ratings = self.conn.execute(query).fetchone()
        return {"users": users, "items": items, "interactions": interactions, "ratings": ratings}

    def get_item(self, item_id: str) -> Item | None:
        row = self.conn.execute(f"{_ITEM_SELECT} WHERE item_id = ?", (item_id,)).fetchone()
        return _item(row) if row else None

    def iter_items(self, batch: int = 5000) -> Iterator[Item]:
        """All items in id order, streamed in batches (bounded memory)."""
        last = ""
        while True:
            rows = self.conn.execute(
                f"{_ITEM_SELECT} WHERE item_id > ? ORDER BY item_id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            yield from (_item(row) for row in rows)
            last = rows[-1][0]

    def item_count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM items").fetchone()[0])

    def item_ids_by_title(self, text: str, limit: int) -> list[str]:
        """Up to `limit` item ids by title: exact matches (case-insensitive) first, then titles
        containing `text`, shortest first. `%` and `_` in `text` match only themselves."""
        needle = text.strip().casefold()
        exact = self.conn.execute(
            "SELECT item_id FROM items WHERE lower(title) = ? LIMIT ?", (needle, limit)
        ).fetchall()
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        partial = self.conn.execute(
            "SELECT item_id FROM items WHERE lower(title) LIKE ? ESCAPE '\\' "
            "ORDER BY length(title) LIMIT ?",
            (f"%{escaped}%", limit),
        ).fetchall()
        return list(dict.fromkeys(row[0] for row in exact + partial))[:limit]

    def user_ids(self) -> list[str]:
        """Every user id, in text order."""
        return [row[0] for row in self.conn.execute("SELECT user_id FROM users ORDER BY user_id")]

    def users_active_after(self, moment: datetime) -> set[str]:
        """The users with an event later than `moment` (a time without zone is UTC)."""
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        rows = self.conn.execute(
            "SELECT DISTINCT user_id FROM interactions WHERE ts_ms > ?", (_ts_ms(aware),)
        )
        return {row[0] for row in rows}

    def get_user(self, user_id: str) -> User | None:
        row = self.conn.execute(
            "SELECT user_id, attributes FROM users WHERE user_id = ?", (user_id,)
        ).fetchone()
        return User(user_id=row[0], attributes=json.loads(row[1])) if row else None

    def history(self, user_id: str, limit: int | None = None) -> list[Interaction]:
        """A user's interactions, oldest first; with `limit`, the most recent `limit` of them."""
        query = f"{_EVENT_SELECT} WHERE user_id = ? ORDER BY ts_ms DESC, id DESC LIMIT ?"
        rows = self.conn.execute(query, (user_id, -1 if limit is None else limit)).fetchall()
        return [_interaction(row) for row in reversed(rows)]

    def integrity_problems(self) -> list[str]:
        problems = [
            f"sqlite integrity: {row[0]}"
            for row in self.conn.execute("PRAGMA integrity_check")
            if row[0] != "ok"
        ]
        problems += [
            f"sqlite foreign key: {row[0]} row {row[1]} points to a missing {row[2]}"
            for row in self.conn.execute("PRAGMA foreign_key_check")
        ]
        return problems


_ITEM_SELECT = "SELECT item_id, title, categories, description, year, attributes FROM items"
_EVENT_SELECT = (
    "SELECT user_id, item_id, ts_ms, event_type, rating, review_title, review_text, attributes "
    "FROM interactions"
)


def _item(row: tuple[Any, ...]) -> Item:
    return Item(
        item_id=row[0],
        title=row[1],
        categories=json.loads(row[2]),
        description=row[3],
        year=row[4],
        attributes=json.loads(row[5]),
    )


def _interaction(row: tuple[Any, ...]) -> Interaction:
    return Interaction(
        user_id=row[0],
        item_id=row[1],
        timestamp=datetime.fromtimestamp(row[2] / 1000, tz=UTC),
        event_type=EventType(row[3]),
        rating=row[4],
        review_title=row[5],
        review_text=row[6],
        attributes=json.loads(row[7]),
    )
