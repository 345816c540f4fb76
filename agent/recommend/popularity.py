"""Popularity with recency: each positive event counts `0.5 ** (age / half_life)`, age
measured from the newest event in the data (so a 1998 dataset reads as it did in 1998). The
cold-start fallback, and a steady third voice in fusion."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from agent.recommend.candidates import Allow, Scored, take

DAY_MS = 86_400_000


@dataclass
class PopularityModel:
    ranked: list[Scored]
    counts: dict[str, int]
    _rank: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._rank = {hit.item_id: i + 1 for i, hit in enumerate(self.ranked)}

    def top(
        self, n: int, exclude: Collection[str] = (), allow: Allow | None = None
    ) -> list[Scored]:
        return take(self.ranked, n, exclude, allow)

    def standing(self, item_id: str) -> tuple[int, float] | None:
        """Rank among all items (1 = most popular) and score, or None if never interacted."""
        rank = self._rank.get(item_id)
        return (rank, self.ranked[rank - 1].score) if rank else None


def fit_popularity(events: Iterable[tuple[str, int]], half_life_days: float) -> PopularityModel:
    """`events` are (item id, timestamp in ms) of positive events."""
    rows = list(events)
    if not rows:
        return PopularityModel([], {})
    newest = max(ts for _, ts in rows)
    half_life_ms = half_life_days * DAY_MS
    scores: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for item_id, ts in rows:
        scores[item_id] += 0.5 ** ((newest - ts) / half_life_ms)
        counts[item_id] += 1
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], -counts[kv[0]], kv[0]))
    return PopularityModel([Scored(i, round(s, 6)) for i, s in ranked], dict(counts))
