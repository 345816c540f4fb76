"""Which events say a user wants an item, which say they do not, and the fingerprint that
tells fitted models the interactions changed.

Ratings, reviews, clicks and purchases are positive implicit signals (the usual protocol on
MovieLens: any rating is an interaction); feedback counts as positive only when it is
`liked` or `clicked`. `disliked` and `dismissed` feedback never feeds a model and blocks the
item from coming back."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from agent.schemas import EventType, Interaction
from agent.store.record import RecordStore


class FeedbackLabel(StrEnum):
    LIKED = "liked"
    DISLIKED = "disliked"
    CLICKED = "clicked"
    DISMISSED = "dismissed"


NEGATIVE = frozenset({FeedbackLabel.DISLIKED.value, FeedbackLabel.DISMISSED.value})
LABEL_KEY = "label"


def feedback_label(event: Interaction) -> str | None:
    if event.event_type is not EventType.FEEDBACK:
        return None
    label = event.attributes.get(LABEL_KEY)
    return str(label) if label is not None else None


def is_positive(event: Interaction) -> bool:
    if event.event_type is EventType.FEEDBACK:
        return feedback_label(event) not in NEGATIVE
    return True


def positive_items(history: Iterable[Interaction]) -> list[str]:
    """Items the user showed interest in, first occurrence order."""
    return list(dict.fromkeys(e.item_id for e in history if is_positive(e)))


def rejected_items(history: Iterable[Interaction]) -> set[str]:
    """Items with disliked/dismissed feedback."""
    return {e.item_id for e in history if feedback_label(e) in NEGATIVE}


def seen_items(history: Iterable[Interaction]) -> set[str]:
    """Every item the user has any event for: never recommended again."""
    return {e.item_id for e in history}


_POSITIVE_SQL = (
    "SELECT user_id, item_id, ts_ms, event_type FROM interactions WHERE event_type != 'feedback' "
    "OR coalesce(json_extract(attributes, '$.label'), '') NOT IN ('disliked', 'dismissed') "
    "ORDER BY id"
)


@dataclass(frozen=True)
class PositiveEvent:
    user_id: str
    item_id: str
    ts_ms: int


def positive_events(record: RecordStore, with_feedback: bool = True) -> list[PositiveEvent]:
    """Every positive event in the record (what collaborative and popularity are fitted on).
    Popularity leaves feedback out: it is a reaction to our own recommendations, and it is
    stamped with the current time, which on an old dataset (MovieLens, 1998) would make one
    click outweigh every ingested event under recency decay."""
    rows = record.conn.execute(_POSITIVE_SQL)
    return [
        PositiveEvent(u, i, ts) for u, i, ts, kind in rows if with_feedback or kind != "feedback"
    ]


def interactions_fingerprint(record: RecordStore, *params: object) -> str:
    """Changes when events are added, deleted or edited in time (count, id and time sums), or
    when the fitting parameters change. Cheap: one aggregate query, no table scan in Python."""
    row = record.conn.execute(
        "SELECT count(*), coalesce(max(id), 0), total(id), total(ts_ms), "
        "total(length(attributes)), (SELECT count(*) FROM items) FROM interactions"
    ).fetchone()
    payload = repr((tuple(row), params)).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def to_pairs(events: Sequence[PositiveEvent]) -> list[tuple[str, str]]:
    return [(e.user_id, e.item_id) for e in events]
