"""Ranking metrics for one relevant item per user (leave-one-out), and bootstrap intervals.

With a single relevant item the ideal DCG is 1, so NDCG@K is `1 / log2(rank + 1)` when the
item is in the top K and 0 otherwise; HR@K (= Recall@K) is 1 when it is in the top K; MRR is
`1 / rank`. Every value is scaled by 100, as LLMRank reports them. `rank` is 1-based; None means
the system did not rank the item at all (it counts as a miss everywhere)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SCALE = 100.0
LLMRANK_METRICS = ("ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "hr@1", "hr@5", "hr@10", "mrr")
FULL_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def rank_of(target: str, order: Sequence[str]) -> int | None:
    """1-based position of `target` in `order`, None when absent."""
    for position, item in enumerate(order, start=1):
        if item == target:
            return position
    return None


def ndcg(rank: int | None, k: int) -> float:
    return SCALE / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def hit(rank: int | None, k: int) -> float:
    return SCALE if rank is not None and rank <= k else 0.0


def mrr(rank: int | None) -> float:
    return SCALE / rank if rank is not None else 0.0


def metric(name: str, rank: int | None) -> float:
    """One metric by name: `ndcg@K`, `hr@K`, `recall@K` or `mrr`."""
    if name == "mrr":
        return mrr(rank)
    kind, _, k = name.partition("@")
    if kind == "ndcg":
        return ndcg(rank, int(k))
    if kind in ("hr", "recall"):
        return hit(rank, int(k))
    raise ValueError(f"unknown metric {name!r}")


def metrics_for(rank: int | None, names: Sequence[str]) -> dict[str, float]:
    return {name: round(metric(name, rank), 6) for name in names}


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def text(self, digits: int = 2) -> str:
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap(values: Sequence[float], samples: int, seed: int, level: float = 0.95) -> Interval:
    """Mean and percentile interval of the mean, resampling users with replacement. The
    seed makes the interval itself reproducible."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(samples, data.size))].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(data.mean()), float(low), float(high), int(data.size))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], samples: int, seed: int) -> Interval:
    """Interval of mean(b - a) over the same users: differences are read per user, so user
    difficulty cancels out."""
    if len(a) != len(b):
        raise ValueError("paired values need the same users")
    return bootstrap([y - x for x, y in zip(a, b, strict=True)], samples, seed)


def expected_random_ndcg(k: int, candidates: int) -> float:
    """NDCG@k of a uniformly random order of `candidates` items (22.72 for k=10 of 20)."""
    return sum(ndcg(r, k) for r in range(1, candidates + 1)) / candidates
