"""Which side of a user's taste an event is on: liked, disliked, or neither.

On a 1-5 scale an item is liked when rated 4 or 5 and disliked when rated 1 or 2, whatever the
user's mean (a one-rating history still has a side); on other scales (10 stars, 0-1 scores)
the user's mean splits them. The claim check (`agent.profiles.claims`) holds interests to the
mean: a group's evidence is its strongest items, so a generous rater's interests cite their
5s first.

Users with implicit feedback only (no ratings at all): every event is a choice and counts as
liked, except `disliked`/`dismissed` feedback, which is disliked. When a user has ratings,
their unrated events other than feedback (clicks beside ratings) are on neither side: the
ratings say more."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agent.schemas import EventType, Interaction

Side = Literal["liked", "disliked"]
NEGATIVE_FEEDBACK = frozenset({"disliked", "dismissed"})
POSITIVE_FEEDBACK = frozenset({"liked"})
FIVE_POINT = (1.0, 5.0)
LIKED_FROM = 4.0
DISLIKED_UPTO = 2.0


@dataclass(frozen=True)
class RatingScale:
    mean: float | None
    """The user's mean rating; None: no ratings (implicit feedback only)."""
    five_point: bool

    @classmethod
    def of(cls, history: Sequence[Interaction]) -> RatingScale:
        ratings = [e.rating for e in history if e.rating is not None]
        if not ratings:
            return cls(mean=None, five_point=False)
        low, high = FIVE_POINT
        return cls(
            mean=statistics.fmean(ratings),
            five_point=all(low <= r <= high for r in ratings),
        )

    @property
    def implicit(self) -> bool:
        return self.mean is None

    def side(self, event: Interaction) -> Side | None:
        if event.event_type is EventType.FEEDBACK and event.rating is None:
            label = str(event.attributes.get("label", ""))
            if label in NEGATIVE_FEEDBACK:
                return "disliked"
            return "liked" if label in POSITIVE_FEEDBACK or self.implicit else None
        if event.rating is None:
            return "liked" if self.implicit else None
        return self.rated_side(event.rating)

    def rated_side(self, rating: float) -> Side | None:
        mean = self.mean
        if mean is None:
            return None
        if self.five_point:
            if rating >= LIKED_FROM:
                return "liked"
            return "disliked" if rating <= DISLIKED_UPTO else None
        if rating > mean:
            return "liked"
        return "disliked" if rating < mean else None

    def describe(self, side: Side) -> str:
        """How a block of that side is labelled in the prompt."""
        if self.implicit:
            return "chosen (no ratings)" if side == "liked" else "disliked or dismissed"
        if self.five_point:
            return "rated 4-5" if side == "liked" else "rated 1-2"
        return "rated above their mean" if side == "liked" else "rated below their mean"


def sides_of(history: Sequence[Interaction]) -> dict[str, Side]:
    """Item id -> side, from the user's last event on each item."""
    scale = RatingScale.of(history)
    found: dict[str, Side] = {}
    for event in history:
        side = scale.side(event)
        if side is None:
            found.pop(event.item_id, None)
        else:
            found[event.item_id] = side
    return found


def overall_label(mean: float) -> str:
    """The sentiment label a 1-5 mean rating implies: positive from 3.5, negative to 2.5,
    mixed between (what the eval's sentiment agreement holds the profile to)."""
    if mean >= 3.5:
        return "positive"
    if mean <= 2.5:
        return "negative"
    return "mixed"
