"""Aggregate per-user records into `summary.json`: per protocol, per system, every metric's
mean with a bootstrap interval over users; two-stage also over the users whose item was
retrieved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from evals.metrics import bootstrap, paired_bootstrap
from evals.paired import PairedDifference, differences, per_user
from evals.protocols import DEFAULT, DefaultPath, Protocol, UserRecord
from evals.ranked import RANKER_NO_LLM
from evals.reasons_stage import ReasonsReport

GUARD_METRIC = "ndcg@10"
GUARD_NOTE = "the guard: what `recommend` gives by default against the ranker without the LLM"


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
    llm_model: str | None = None
    """The served model's name (None without the LLM): the key of a tuned blend weight."""
    default_path: DefaultPath | None = None
    """What the llmrank `default` system is (`recommend`'s default order)."""
    reasons: ReasonsReport | None = None
    """`--reasons K`: the reasons for each user's top K, retrieval vs LLM (issue 29)."""


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
    guard = default_difference(mine, protocol, samples, seed)
    if guard is not None:
        summary.differences.append(guard)
    if protocol is Protocol.TWO_STAGE:
        hit = [r for r in mine if r.protocols[protocol.value].retrieved]
        summary.retrieved_users = len(hit)
        summary.retrieved_only = system_summaries(hit, protocol, samples, seed) if hit else {}
    return summary


def default_difference(
    records: Sequence[UserRecord], protocol: Protocol, samples: int, seed: int
) -> PairedDifference | None:
    """`default` - `ranker-no-llm` per user on the same candidates, with a paired bootstrap
    interval (None unless every record has both)."""
    if not records or not all(
        {DEFAULT, RANKER_NO_LLM} <= set(r.protocols[protocol.value].systems) for r in records
    ):
        return None
    interval = paired_bootstrap(per_user(records, protocol.value, RANKER_NO_LLM, GUARD_METRIC),
                                per_user(records, protocol.value, DEFAULT, GUARD_METRIC),
                                samples, seed)  # fmt: skip
    return PairedDifference(
        a=RANKER_NO_LLM, b=DEFAULT, metric=GUARD_METRIC, mean=round(interval.mean, 3),
        low=round(interval.low, 3), high=round(interval.high, 3), n=interval.n, note=GUARD_NOTE,
    )  # fmt: skip


def default_guard(llmrank: ProtocolSummary, default: DefaultPath | None = None) -> dict[str, Any]:
    """The eval's check that the order users get by default is not significantly worse than
    the ranker without the LLM: it fails (False) when the 95% interval of the paired
    difference `default - ranker-no-llm` lies entirely below 0. Empty without the pair."""
    found = next((d for d in llmrank.differences if (d.a, d.b) == (RANKER_NO_LLM, DEFAULT)), None)
    if found is None:
        return {}
    checks: dict[str, Any] = {}
    if default is not None:
        checks["default path (llmrank)"] = default.describe()
    checks[f"default - {RANKER_NO_LLM} llmrank NDCG@10 (paired)"] = (
        f"{found.mean:+.2f} [{found.low:.2f}, {found.high:.2f}]"
    )
    checks[f"default not below {RANKER_NO_LLM} (95% CI not entirely below 0)"] = found.high >= 0
    return checks
