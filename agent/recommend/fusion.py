"""Weighted reciprocal-rank fusion: `score(i) = Σ_s w_s / (k + rank_s(i))`.

Ranks, not scores, are combined, so cosine similarities, EASE weights and decayed counts need
no calibration against each other. Exclusions (seen, disliked, dismissed) and metadata
filters are applied here once more, so that every source is held to the same rules even if
one of them was called without them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from agent.recommend.candidates import Allow, Scored

RRF_K = 60
"""The constant from Cormack et al. (SIGIR'09); damps the head of each list."""


@dataclass(frozen=True)
class SourceHit:
    rank: int
    score: float


@dataclass
class Fused:
    item_id: str
    score: float
    hits: dict[str, SourceHit] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        return sorted(self.hits, key=lambda s: self.hits[s].rank)


def fuse(
    lists: Mapping[str, Sequence[Scored]],
    weights: Mapping[str, float],
    *,
    k: int = RRF_K,
    exclude: Collection[str] = (),
    allow: Allow | None = None,
    limit: int | None = None,
) -> list[Fused]:
    """Fused candidates, best first. Ties go to the item with the better best rank, then to
    the id, so the order is deterministic."""
    fused: dict[str, Fused] = {}
    for source, ranked in lists.items():
        weight = weights.get(source, 0.0)
        rank = 0
        for hit in ranked:
            if hit.item_id in exclude or (allow is not None and not allow(hit.item_id)):
                continue
            rank += 1
            entry = fused.setdefault(hit.item_id, Fused(hit.item_id, 0.0))
            if source in entry.hits:
                continue  # a source listing an item twice votes once
            entry.hits[source] = SourceHit(rank, hit.score)
            entry.score += weight / (k + rank)
    ordered = sorted(
        fused.values(),
        key=lambda f: (-f.score, min(h.rank for h in f.hits.values()), f.item_id),
    )
    for entry in ordered:
        entry.score = round(entry.score, 6)
    return ordered[:limit] if limit is not None else ordered
