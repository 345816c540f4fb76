"""Aggregate per-user records into `summary.json`: per protocol, per system, every metric's
mean with a bootstrap interval over users; two-stage also over the users whose item was
retrieved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from evals.metrics import bootstrap
from evals.paired import PairedDifference, differences
from evals.protocols import Protocol, UserRecord


class MetricSummary(BaseModel):
    mean: float
    low: float
    high: float
    n: int


class SystemSummary(BaseModel):
    metrics: dict[str, MetricSummary]
    covered: int
    """Users the system had something to go on for (the others count as misses)."""
    ms_per_user: float | None = None


class ProtocolSummary(BaseModel):
    protocol: Protocol
    users: int
    metrics: list[str]
    systems: dict[str, SystemSummary]
    retrieved_users: int | None = None
    retrieved_only: dict[str, SystemSummary] | None = None
    position_bias: dict[str, dict[str, float | None]] | None = None
    differences: list[PairedDifference] = []
    """Paired B - A of the headline metric (rankers, sequential, EASE)."""
    beyond: dict[str, dict[str, float]] | None = None
    """full: coverage, diversity, novelty and head share of each system's top 10."""


class RunSummary(BaseModel):
    run_id: str
    stage: str
    seed: int
    users: int
    smoke: bool
    backends: dict[str, str]
    protocols: dict[str, ProtocolSummary]
    quality: dict[str, Any]
    cost: dict[str, Any]
    skipped: dict[str, int]
    checks: dict[str, Any]
    ranking: dict[str, Any] = {}
    """How the rankers were trained (timings, groups, trees, gain importance)."""


def system_summaries(
    records: Sequence[UserRecord], protocol: Protocol, samples: int, seed: int
) -> dict[str, SystemSummary]:
    names: list[str] = []
    for record in records:
        for name in record.protocols[protocol.value].systems:
            if name not in names:
                names.append(name)
    summaries = {}
    for name in names:
        outcomes = [
            r.protocols[protocol.value].systems[name]
            for r in records
            if name in r.protocols[protocol.value].systems
        ]
        metrics = {}
        for metric in protocol.metric_names:
            interval = bootstrap([o.metrics[metric] for o in outcomes], samples, seed)
            metrics[metric] = MetricSummary(
                mean=round(interval.mean, 3),
                low=round(interval.low, 3),
                high=round(interval.high, 3),
                n=interval.n,
            )
        summaries[name] = SystemSummary(metrics=metrics, covered=sum(o.covered for o in outcomes))
    return summaries


def protocol_summary(
    records: Sequence[UserRecord], protocol: Protocol, samples: int, seed: int
) -> ProtocolSummary:
    mine = [r for r in records if protocol.value in r.protocols]
    summary = ProtocolSummary(
        protocol=protocol,
        users=len(mine),
        metrics=list(protocol.metric_names),
        systems=system_summaries(mine, protocol, samples, seed),
        differences=differences(mine, protocol.value, "ndcg@10", samples, seed),
    )
    if protocol is Protocol.TWO_STAGE:
        hit = [r for r in mine if r.protocols[protocol.value].retrieved]
        summary.retrieved_users = len(hit)
        summary.retrieved_only = system_summaries(hit, protocol, samples, seed) if hit else {}
    return summary
