"""`personae feedback`: a user's reaction to an item becomes an event in the record.

It is an ordinary interaction (`EventType.FEEDBACK`, the label in `attributes["label"]`), so
everything downstream sees it without special cases: the item counts as seen and is never
recommended again, `liked`/`clicked` feed the collaborative model, `disliked`/`dismissed`
block it, and the history hash changes, so `personae update` refreshes the profile."""

from __future__ import annotations

from datetime import UTC, datetime

from agent.recommend.signals import LABEL_KEY, FeedbackLabel
from agent.schemas import EventType, Interaction
from agent.store.record import RecordStore


class FeedbackTargetError(LookupError):
    """The user or the item is not in the record."""


def record_feedback(
    record: RecordStore,
    user_id: str,
    item_id: str,
    label: FeedbackLabel,
    at: datetime | None = None,
) -> Interaction:
    if record.get_user(user_id) is None:
        raise FeedbackTargetError(f"user {user_id!r} is not in the record")
    if record.get_item(item_id) is None:
        raise FeedbackTargetError(f"no item {item_id!r} in the record")
    event = Interaction(
        user_id=user_id,
        item_id=item_id,
        timestamp=at or datetime.now(UTC),
        event_type=EventType.FEEDBACK,
        attributes={LABEL_KEY: label.value},
    )
    with record.writer() as writer:
        writer.add_interaction(event)
    return event
