"""Popularity with recency: each positive event counts `0.5 ** (age / half_life)`, age
measured from the newest event in the data (so a 1998 dataset reads as it did in 1998). The
cold-start fallback, and a steady third voice in fusion.

`load_or_fit` keeps the fitted ranking under the data dir with the record state it was fitted
on (`agent.store.fitted`), like the collaborative model."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agent.recommend.candidates import Allow, Scored, take
from agent.recommend.signals import positive_events
from agent.store import fitted
from agent.store.record import RecordStore

DAY_MS = 86_400_000
MODEL_DIR = "models/popularity"


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

    def save(self, path: Path) -> None:
        ranked = [[hit.item_id, hit.score, self.counts.get(hit.item_id, 0)] for hit in self.ranked]
        path.write_text(json.dumps({"ranked": ranked}))

    @classmethod
    def load(cls, path: Path) -> PopularityModel:
        rows = json.loads(path.read_text())["ranked"]
        return cls(
            [Scored(str(i), float(score)) for i, score, _ in rows],
            {str(i): int(count) for i, _, count in rows},
        )


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


ARTIFACT = fitted.Artifact[PopularityModel](
    "popularity",
    MODEL_DIR,
    ".json",
    PopularityModel.save,
    PopularityModel.load,
    "popularity model",
    events="event_type != 'feedback'",  # what `positive_events(record, False)` reads from
)


def load_or_fit(
    record: RecordStore, data_dir: Path, half_life_days: float
) -> tuple[PopularityModel, bool]:
    """The popularity model of the record's current positive events (feedback left out, see
    `positive_events`), and whether it was refitted."""

    def fit() -> PopularityModel:
        events = ((e.item_id, e.ts_ms) for e in positive_events(record, False))
        return fit_popularity(events, half_life_days)

    found = fitted.load_or_fit(record, data_dir, ARTIFACT, {"half_life_days": half_life_days}, fit)
    return found.model, found.refitted
