"""The non-LLM systems, each able to (a) order a given candidate list (llmrank) and (b) return
its top items among everything the user has not seen (full, two-stage).

They are the recommend package's retrievers, fitted here on the training prefix of the stage
(never on the record's full history, which holds the held-out items): EASE via `fit_ease`,
popularity via `fit_popularity`, dense via the item vectors of the Chroma item index, and
weighted RRF via `fuse`. Ties are broken by the candidates' shown order, which is shuffled, so
a tie never favours the held-out item."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from agent.recommend.candidates import Scored
from agent.recommend.collaborative import EaseModel
from agent.recommend.fusion import fuse
from agent.recommend.popularity import PopularityModel
from evals.sampling import rng_for
from evals.splits import UserSplit

Vectors = npt.NDArray[np.float32]


class System(Protocol):
    @property
    def name(self) -> str: ...

    def order(self, split: UserSplit, candidates: Sequence[str]) -> list[str]:
        """`candidates` best first."""
        ...

    def top(self, split: UserSplit, n: int) -> list[Scored]:
        """The `n` best items the user has not interacted with before the target."""
        ...

    def covers(self, split: UserSplit) -> bool:
        """Whether the system has anything to say about this user."""
        ...


def by_score(candidates: Sequence[str], scores: Mapping[str, float]) -> list[str]:
    """Candidates by descending score; missing scores rank last; ties keep the shown order."""
    position = {item: i for i, item in enumerate(candidates)}
    floor = float("-inf")
    return sorted(candidates, key=lambda i: (-scores.get(i, floor), position[i]))


@dataclass
class RandomSystem:
    catalog: Sequence[str]
    seed: int
    name: str = "random"

    def covers(self, split: UserSplit) -> bool:
        return True

    def order(self, split: UserSplit, candidates: Sequence[str]) -> list[str]:
        shuffled = list(candidates)
        rng_for(self.seed, "random-system", split.user_id).shuffle(shuffled)
        return shuffled

    def top(self, split: UserSplit, n: int) -> list[Scored]:
        pool = [i for i in self.catalog if i not in split.prior]
        picked = rng_for(self.seed, "random-system", split.user_id).sample(pool, min(n, len(pool)))
        return [Scored(item, 0.0) for item in picked]


@dataclass
class PopularitySystem:
    model: PopularityModel
    name: str = "popularity"
    _scores: dict[str, float] = field(default_factory=dict, repr=False)

    def covers(self, split: UserSplit) -> bool:
        return bool(self._scores)

    def __post_init__(self) -> None:
        self._scores = {hit.item_id: hit.score for hit in self.model.ranked}

    def order(self, split: UserSplit, candidates: Sequence[str]) -> list[str]:
        return by_score(candidates, self._scores)

    def top(self, split: UserSplit, n: int) -> list[Scored]:
        return self.model.top(n, split.prior)


@dataclass
class CollaborativeSystem:
    """EASE over the user's whole training prefix (LLMRank's CF baselines see the whole
    training sequence; the 50-event cap is the prompt's bound)."""

    model: EaseModel
    name: str = "collaborative"

    def covers(self, split: UserSplit) -> bool:
        return any(i in self.model for i in split.prefix_positive)

    def order(self, split: UserSplit, candidates: Sequence[str]) -> list[str]:
        scores = {hit.item_id: hit.score for hit in self.model.ranked(split.prefix_positive)}
        return by_score(candidates, scores)

    def top(self, split: UserSplit, n: int) -> list[Scored]:
        return self.model.recommend(split.prefix_positive, n, split.prior)


@dataclass
class DenseSystem:
    """Cosine similarity between a per-user query vector and the item vectors. `dense-profile`
    embeds `profile_query_text(profile)` (what `Recommender` queries Chroma with);
    `dense-history` averages the vectors of the history items (no LLM at all). Users without
    a query (their profile failed) get no ranking: they count as misses."""

    name: str
    item_ids: list[str]
    vectors: Vectors
    queries: dict[str, Vectors]
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {item: i for i, item in enumerate(self.item_ids)}

    def covers(self, split: UserSplit) -> bool:
        return split.user_id in self.queries

    def _scores(self, user_id: str) -> npt.NDArray[np.float32] | None:
        query = self.queries.get(user_id)
        return None if query is None else self.vectors @ query

    def order(self, split: UserSplit, candidates: Sequence[str]) -> list[str]:
        scores = self._scores(split.user_id)
        if scores is None:
            return list(candidates)
        known = {c: float(scores[self._index[c]]) for c in candidates if c in self._index}
        return by_score(candidates, known)

    def top(self, split: UserSplit, n: int) -> list[Scored]:
        scores = self._scores(split.user_id)
        if scores is None:
            return []
        found: list[Scored] = []
        for i in np.argsort(-scores, kind="stable"):
            item = self.item_ids[i]
            if item not in split.prior:
                found.append(Scored(item, round(float(scores[i]), 6)))
                if len(found) >= n:
                    break
        return found


def history_queries(
    splits: Mapping[str, UserSplit], item_ids: list[str], vectors: Vectors
) -> dict[str, Vectors]:
    """Mean of the history items' vectors, normalized: a dense query without any LLM."""
    index = {item: i for i, item in enumerate(item_ids)}
    queries: dict[str, Vectors] = {}
    for user_id, split in splits.items():
        rows = [index[i] for i in dict.fromkeys(split.positive) if i in index]
        if not rows:
            continue
        mean = vectors[rows].mean(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm > 0:
            queries[user_id] = (mean / norm).astype(np.float32)
    return queries


@dataclass
class FusionSystem:
    """Weighted RRF of its parts, as `Recommender.retrieve` fuses its sources."""

    name: str
    parts: dict[str, System]
    """Source name (dense, collaborative, popularity) -> the system that supplies it."""
    weights: dict[str, float]
    rrf_k: int
    depth: int

    def covers(self, split: UserSplit) -> bool:
        return any(system.covers(split) for system in self.parts.values())

    def order(self, split: UserSplit, candidates: Sequence[str]) -> list[str]:
        lists = {
            source: [Scored(i, 0.0) for i in system.order(split, candidates)]
            for source, system in self.parts.items()
            if system.covers(split)
        }
        fused = [f.item_id for f in fuse(lists, self.weights, k=self.rrf_k)]
        return fused + [c for c in candidates if c not in set(fused)]

    def top(self, split: UserSplit, n: int) -> list[Scored]:
        lists = {source: system.top(split, self.depth) for source, system in self.parts.items()}
        fused = fuse(lists, self.weights, k=self.rrf_k, exclude=split.prior, limit=n)
        return [Scored(f.item_id, f.score) for f in fused]
