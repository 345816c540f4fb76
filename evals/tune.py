"""`eval tune-blend`: choose the weight of the LLM rank in the blended order on the
validation split (second-to-last event), never on the test split. The LLM ranks are computed
once per user; every weight is then scored offline on the same ranks."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from evals.metrics import bootstrap, metric, rank_of
from evals.protocols import Protocol, UserRecord, blended_order

GRID = tuple(round(0.1 * i, 1) for i in range(11))


class BlendPoint(BaseModel):
    weight: float
    mean: float
    low: float
    high: float


class BlendSweep(BaseModel):
    protocol: str
    metric: str
    users: int
    reranked_users: int
    best: float
    points: list[BlendPoint]


def sweep(
    records: Sequence[UserRecord],
    protocol: Protocol,
    retrieval: str,
    metric_name: str = "ndcg@10",
    grid: Sequence[float] = GRID,
    samples: int = 1000,
    seed: int = 0,
) -> BlendSweep:
    """Score every weight on the same users; ties go to the smaller weight (less LLM)."""
    points = []
    for weight in grid:
        values = []
        for record in records:
            entry = record.protocols[protocol.value]
            order = entry.systems[retrieval].top
            if protocol is Protocol.TWO_STAGE:
                order = entry.candidates
            ranked = blended_order(order, entry.rerank, weight)
            values.append(metric(metric_name, rank_of(record.target, ranked)))
        interval = bootstrap(values, samples, seed)
        mean, low, high = (round(v, 3) for v in (interval.mean, interval.low, interval.high))
        points.append(BlendPoint(weight=weight, mean=mean, low=low, high=high))
    best = max(points, key=lambda p: (p.mean, -p.weight))
    reranked = sum(
        1 for r in records if (e := r.protocols[protocol.value].rerank) is not None and e.valid
    )
    return BlendSweep(
        protocol=protocol.value, metric=metric_name, users=len(records),
        reranked_users=reranked, best=best.weight, points=points,
    )  # fmt: skip
