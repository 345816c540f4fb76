"""Reasons that need no LLM, built from what each retriever actually used: the history items
that drive the collaborative score, the profile interests whose topic matches the item (with
their evidence ids), or recent popularity. Shown with `--no-rerank`, for items the LLM did not
pick, and in explanations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.profiles.grounding import words
from agent.recommend.candidates import Source
from agent.recommend.collaborative import EaseModel
from agent.recommend.context import untrusted
from agent.recommend.fusion import SourceHit
from agent.recommend.popularity import PopularityModel
from agent.schemas import Item
from agent.schemas.profile import UserProfile


@dataclass(frozen=True)
class Reason:
    text: str
    cited: list[str]


def matching_interests(profile: UserProfile, item: Item) -> list[tuple[str, list[str]]]:
    """Profile interests sharing a word with the item's categories or title."""
    item_words = words(" ".join([item.title, *item.categories]))
    return [(i.topic, i.evidence) for i in profile.interests if words(i.topic) & item_words]


def retrieval_reason(
    item: Item,
    hits: Mapping[str, SourceHit],
    profile: UserProfile,
    history: Sequence[str],
    titles: Mapping[str, str],
    ease: EaseModel | None = None,
    popularity: PopularityModel | None = None,
) -> Reason:
    """The most specific reason the sources support, citing history item ids."""
    if Source.COLLABORATIVE in hits and ease is not None:
        drivers = ease.contributions(history, item.item_id, top=2)
        if drivers:
            named = " and ".join(untrusted(titles.get(d, d), 60) for d in drivers)
            return Reason(f"People who liked {named} also liked this.", drivers)
    matches = matching_interests(profile, item)
    if matches:
        topics = ", ".join(untrusted(t, 40) for t, _ in matches[:2])
        cited = list(dict.fromkeys(e for _, ev in matches for e in ev if e in titles))[:3]
        return Reason(f"Matches your interest in {topics}.", cited)
    if Source.DENSE in hits:
        return Reason("Close to your profile's interests and summary.", [])
    if popularity is not None and (standing := popularity.counts.get(item.item_id)):
        return Reason(f"Popular lately ({standing} interactions).", [])
    return Reason("Ranked by the retrievers.", [])
