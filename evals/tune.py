"""`eval tune-blend`: choose the weight of the LLM rank in the blended order on the
validation split (second-to-last event), never on the test split. The LLM ranks are computed
once per user; every weight is then scored offline on the same ranks. The chosen weight is
stored for the model and re-rank mode (`tuned`), and `recommend` blends at it when no ranker
is fitted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel

from agent.store.fitted import TunedBlend
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


def tuned(
    found: BlendSweep,
    model: str,
    mode: str,
    shuffles: int | None = None,
    data_hash: str | None = None,
    run_dir: str | None = None,
) -> TunedBlend:
    """What `recommend` reads back: the chosen weight with the facts it was chosen on."""
    at = {p.weight: p for p in found.points}
    return TunedBlend(
        weight=found.best, model=model, mode=mode, metric=found.metric, users=found.users,
        protocol=found.protocol, tuned_at=datetime.now(UTC).isoformat(timespec="seconds"),
        shuffles=shuffles, data_hash=data_hash, run_dir=run_dir,
        mean=at[found.best].mean if found.best in at else None,
        mean_at_zero=at[0.0].mean if 0.0 in at else None,
    )  # fmt: skip
