"""Reasons that need no LLM, built from what each retriever actually used: the history items
that drive the collaborative score, the recent items the sequence model followed on from, the
profile interests whose topic matches the item (with
their evidence ids), or recent popularity. Shown with `--no-rerank`, for items the LLM did not
pick or whose LLM reason failed its checks, and in explanations. The drivers are read from the
item's computed evidence (`agent.reasons.evidence`), the same the LLM's reasons cite."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.reasons.evidence import ItemEvidence, matching_interests
from agent.reasons.phrasing import Phrasing, evidence_reason
from agent.reasons.sequence import SEQUENTIAL
from agent.recommend.candidates import Source
from agent.recommend.context import untrusted
from agent.recommend.fusion import SourceHit
from agent.recommend.popularity import PopularityModel
from agent.schemas import Item
from agent.schemas.profile import UserProfile


@dataclass(frozen=True)
class Reason:
    text: str
    cited: list[str]


__all__ = ["Phrasing", "Reason", "matching_interests", "retrieval_reason"]


def retrieval_reason(
    item: Item,
    hits: Mapping[str, SourceHit],
    profile: UserProfile | None,
    evidence: ItemEvidence | None,
    titles: Mapping[str, str],
    popularity: PopularityModel | None = None,
    phrasing: Phrasing | None = None,
    followed: Callable[[], tuple[str, list[str]] | None] | None = None,
) -> Reason:
    """The most specific reason the sources support, citing history item ids. `evidence` is
    the item's (`agent.reasons.evidence.item_evidence`); `titles` names the user's history.
    With collaborative drivers, the reason is worded from the evidence
    (`agent.reasons.phrasing`); pass one `phrasing` per user's list so its reasons vary.
    `followed` makes the sequential model's reason (`agent.reasons.sequence`: a forward pass
    per recent item), called only for an item that model listed and no collaborative reason
    covers."""
    if Source.COLLABORATIVE in hits and evidence is not None:
        made = evidence_reason(evidence, phrasing)
        if made is not None:
            return Reason(*made)
    if SEQUENTIAL in hits and followed is not None and (made_seq := followed()) is not None:
        return Reason(*made_seq)
    matches = matching_interests(profile, item) if profile is not None else []
    if matches:
        topics = ", ".join(untrusted(t, 40) for t, _ in matches[:2])
        cited = list(dict.fromkeys(e for _, ev in matches for e in ev if e in titles))[:3]
        return Reason(f"Matches your interest in {topics}.", cited)
    if Source.DENSE in hits:
        return Reason("Close to your profile's interests and summary.", [])
    if popularity is not None and (standing := popularity.counts.get(item.item_id)):
        return Reason(f"Popular lately ({standing} interactions).", [])
    return Reason("Ranked by the retrievers.", [])
