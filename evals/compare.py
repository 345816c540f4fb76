"""`eval compare RUN_A RUN_B`: every metric both runs share, B minus A. When both runs scored
the same users on the same candidates (same seed and data), the difference gets a paired
bootstrap interval over users, which is far tighter than comparing two unpaired intervals."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from evals.execute import load_records, load_summary
from evals.metrics import paired_bootstrap
from evals.protocols import UserRecord


class Difference(BaseModel):
    protocol: str
    system: str
    metric: str
    a: float
    b: float
    diff: float
    low: float | None = None
    high: float | None = None


class Comparison(BaseModel):
    run_a: str
    run_b: str
    paired: bool
    notes: list[str]
    rows: list[Difference]


def same_candidates(a: dict[str, UserRecord], b: dict[str, UserRecord], protocol: str) -> bool:
    return set(a) == set(b) and all(
        a[u].target == b[u].target
        and a[u].protocols[protocol].candidates == b[u].protocols[protocol].candidates
        for u in a
        if protocol in a[u].protocols and protocol in b[u].protocols
    )


def compare_runs(run_a: Path, run_b: Path, samples: int = 1000, seed: int = 0) -> Comparison:
    sa, sb = load_summary(run_a), load_summary(run_b)
    ra = {r.user_id: r for r in load_records(run_a)}
    rb = {r.user_id: r for r in load_records(run_b)}
    notes = []
    if sa.stage != sb.stage:
        notes.append(f"different stages: {sa.stage} vs {sb.stage}")
    if sa.smoke or sb.smoke:
        notes.append("a smoke run is involved: differences mean nothing")
    rows: list[Difference] = []
    paired_any = False
    for name, pa in sa.protocols.items():
        pb = sb.protocols.get(name)
        if pb is None:
            continue
        paired = same_candidates(ra, rb, name)
        paired_any |= paired
        if not paired:
            notes.append(f"{name}: different users or candidates, differences are unpaired")
        for system, xa in pa.systems.items():
            xb = pb.systems.get(system)
            if xb is None:
                continue
            for metric, ma in xa.metrics.items():
                mb = xb.metrics[metric]
                row = Difference(protocol=name, system=system, metric=metric, a=ma.mean,
                                 b=mb.mean, diff=round(mb.mean - ma.mean, 3))  # fmt: skip
                if paired:
                    users = sorted(ra)
                    interval = paired_bootstrap(
                        [ra[u].protocols[name].systems[system].metrics[metric] for u in users],
                        [rb[u].protocols[name].systems[system].metrics[metric] for u in users],
                        samples,
                        seed,
                    )
                    row.low, row.high = round(interval.low, 3), round(interval.high, 3)
                rows.append(row)
    return Comparison(run_a=sa.run_id, run_b=sb.run_id, paired=paired_any, notes=notes, rows=rows)
