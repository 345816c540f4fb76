"""What drove each shown item, computed before any LLM writes a word about it.

EASE scores item j for user u as `Σ_k X[u,k] * B[k,j]` (Steck, WWW'19): each history item k
adds exactly its own term, so the items that raised j most are read off the fitted model,
not guessed. A reason that cites them is true by construction; the LLM may only put this
evidence into words (issue 29), and `checks` holds what it wrote against it.

The contributions come from `EaseModel.contribution_scores`. This module is the one source of
evidence: `recommend` (the retrieval reason "People who liked A and B also liked this", and
what the LLM's reasons may cite), `explain` and the chat's explain tool all read it."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, Field

from agent.profiles.grounding import words
from agent.recommend.collaborative import EaseModel
from agent.schemas import Interaction, Item
from agent.schemas.profile import UserProfile

TOP_DRIVERS = 5
"""Drivers kept per item: enough for a reason to cite three and for faithfulness's top 3."""
CITABLE_DRIVERS = 3
"""Drivers an LLM reason is shown and may cite, per item (numbered 1-3 within the item)."""
RECENT_EVENTS = 10
"""A driver is recent when it is among the user's last this many events."""


class Driver(BaseModel):
    """A history item and what it added to the shown item's EASE score."""

    item_id: str
    title: str
    contribution: float = Field(description="X[u,k] * B[k,j]: exact, positive")
    rating: float | None = Field(None, description="The user's latest rating of it, if any")
    categories: list[str] = Field(default_factory=list, description="Its catalog categories")
    events_ago: int | None = Field(
        None, description="Where it is in the user's history: 1 = their latest event"
    )

    @property
    def recent(self) -> bool:
        return self.events_ago is not None and self.events_ago <= RECENT_EVENTS


class ItemEvidence(BaseModel):
    """The facts a reason for one shown item may state."""

    item_id: str
    title: str
    categories: list[str] = Field(default_factory=list)
    year: int | None = None
    score: float | None = Field(None, description="EASE score: Σ of every history term")
    drivers: list[Driver] = Field(
        default_factory=list, description="Positive contributors, largest first"
    )
    interests: list[str] = Field(
        default_factory=list,
        description="Profile interests whose topic shares a word with the item's title or "
        "categories (`matching_interests`)",
    )

    decade_mean: float | None = Field(
        None, description="The user's mean rating of history items from the item's decade"
    )
    decade_count: int = Field(0, description="How many ratings `decade_mean` is over")
    user_mean: float | None = Field(None, description="The user's mean rating overall")
    popularity_rank: int | None = Field(
        None, description="1 + the items more users liked in the fitted data (EASE's order)"
    )

    def top_ids(self, n: int = 3) -> list[str]:
        return [d.item_id for d in self.drivers[:n]]

    @property
    def decade(self) -> int | None:
        return None if self.year is None else self.year - self.year % 10


class UserFacts(BaseModel):
    """What a reason may say about the user's own record, computed once per user from the
    events it is allowed to see (`user_facts`)."""

    ratings: dict[str, float] = Field(default_factory=dict)
    events_ago: dict[str, int] = Field(default_factory=dict)
    categories: dict[str, list[str]] = Field(default_factory=dict)
    decades: dict[int, list[float]] = Field(default_factory=dict)

    @property
    def mean(self) -> float | None:
        values = list(self.ratings.values())
        return statistics.fmean(values) if values else None


def user_facts(events: Sequence[Interaction], items: Mapping[str, Item]) -> UserFacts:
    """The user's facts from `events` (oldest first): latest rating and position of each item,
    the categories of each (from `items`, the catalog) and their ratings by decade."""
    ratings = ratings_of(events)
    decades: dict[int, list[float]] = defaultdict(list)
    for item_id, rating in ratings.items():
        item = items.get(item_id)
        if item is not None and item.year is not None:
            decades[item.year - item.year % 10].append(rating)
    return UserFacts(
        ratings=ratings,
        events_ago={e.item_id: len(events) - n for n, e in enumerate(events)},
        categories={
            e.item_id: list(items[e.item_id].categories) for e in events if e.item_id in items
        },  # fmt: skip
        decades=dict(decades),
    )


def matching_interests(profile: UserProfile, item: Item) -> list[tuple[str, list[str]]]:
    """Profile interests sharing a word with the item's categories or title, with their
    evidence ids."""
    item_words = words(" ".join([item.title, *item.categories]))
    return [(i.topic, i.evidence) for i in profile.interests if words(i.topic) & item_words]


def item_evidence(
    ease: EaseModel,
    history: Sequence[str],
    item: Item,
    titles: Mapping[str, str],
    top: int = TOP_DRIVERS,
    profile: UserProfile | None = None,
    ratings: Mapping[str, float] | None = None,
    facts: UserFacts | None = None,
) -> ItemEvidence:
    """Evidence for one item: its `top` positive EASE contributors over the user's positive
    history (with the user's rating of each, from `ratings` or `facts`), its own facts
    (categories, year, popularity rank) and with a profile the interests it matches. With
    `facts`, also each driver's categories and place in the history, and the user's mean
    rating of the item's decade. EASE is fitted on every interaction, so a driver may be an
    item the user rated low."""
    facts = facts or UserFacts()
    ratings = ratings or facts.ratings
    terms = ease.contribution_scores(history, item.item_id)
    interests = matching_interests(profile, item) if profile is not None else []
    decade = [] if item.year is None else facts.decades.get(item.year - item.year % 10, [])
    return ItemEvidence(
        item_id=item.item_id,
        title=item.title,
        categories=list(item.categories),
        year=item.year,
        score=sum(w for _, w in terms) if item.item_id in ease else None,
        drivers=[
            Driver(
                item_id=k,
                title=titles.get(k, k),
                contribution=w,
                rating=ratings.get(k),
                categories=facts.categories.get(k, []),
                events_ago=facts.events_ago.get(k),
            )
            for k, w in terms[:top]
            if w > 0
        ],  # fmt: skip
        interests=[topic for topic, _ in interests],
        decade_mean=statistics.fmean(decade) if decade else None,
        decade_count=len(decade),
        user_mean=facts.mean,
        popularity_rank=ease.item_ids.index(item.item_id) + 1 if item.item_id in ease else None,
    )


def shown_evidence(
    ease: EaseModel,
    history: Sequence[str],
    items: Mapping[str, Item],
    shown: Sequence[str],
    titles: Mapping[str, str],
    top: int = TOP_DRIVERS,
    profile: UserProfile | None = None,
    ratings: Mapping[str, float] | None = None,
    facts: UserFacts | None = None,
) -> dict[str, ItemEvidence]:
    """Evidence for each shown item, by id, in the order shown. `history` is the user's
    positive history (what EASE scores from); `titles` names its items, `ratings` gives the
    user's rating of them (`ratings_of`), `facts` more of their record (`user_facts`)."""
    return {j: item_evidence(ease, history, items[j], titles, top, profile, ratings, facts)
            for j in shown}  # fmt: skip


def ratings_of(events: Iterable[Interaction]) -> dict[str, float]:
    """The user's latest rating of each rated item (events oldest first)."""
    return {e.item_id: e.rating for e in events if e.rating is not None}
