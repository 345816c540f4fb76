"""Paired differences the report leads with: each learned ranker against the best single
source and against EASE, the sequential model against EASE, and the ranker with LLM features
against the ranker without them (the LLM's marginal contribution, whatever its sign), and the
dense retrieval from the profile against the one from the history it was written from.

Per user, B - A on the same candidates, with a paired bootstrap interval over users. "Best
single source" is the single retriever with the highest mean of the metric in this run; picking
it on the judged data favours the baseline, never the ranker."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from evals.metrics import paired_bootstrap
from evals.protocols import UserRecord
from evals.ranked import ABLATED, RANKER, RANKER_NO_LLM, SEQUENTIAL

SINGLE_SOURCES = ("popularity", "collaborative", "dense-history", "dense-profile", SEQUENTIAL)
EASE = "collaborative"


class PairedDifference(BaseModel):
    a: str
    b: str
    metric: str
    mean: float
    low: float
    high: float
    n: int
    note: str = ""


def per_user(records: Sequence[UserRecord], protocol: str, system: str, metric: str) -> list[float]:
    return [r.protocols[protocol].systems[system].metrics[metric] for r in records]


def best_single(records: Sequence[UserRecord], protocol: str, present: set[str],
                metric: str) -> str | None:  # fmt: skip
    singles = [s for s in SINGLE_SOURCES if s in present]
    if not singles:
        return None
    means = {s: sum(per_user(records, protocol, s, metric)) / len(records) for s in singles}
    return max(singles, key=lambda s: (means[s], s == EASE))


def differences(
    records: Sequence[UserRecord], protocol: str, metric: str, samples: int, seed: int
) -> list[PairedDifference]:
    mine = [r for r in records if protocol in r.protocols]
    if not mine:
        return []
    present = set.intersection(*(set(r.protocols[protocol].systems) for r in mine))
    best = best_single(mine, protocol, present, metric)
    pairs: list[tuple[str, str, str]] = []
    for ranker in (RANKER_NO_LLM, RANKER):
        if ranker in present and best is not None:
            pairs.append((best, ranker, "best single source"))
            if best != EASE and EASE in present:
                pairs.append((EASE, ranker, ""))
    if RANKER in present and RANKER_NO_LLM in present:
        pairs.append((RANKER_NO_LLM, RANKER, "the LLM features' marginal contribution"))
    if RANKER in present:
        pairs += [(name, RANKER, f"gain of {name.removeprefix(ABLATED)}")
                  for name in sorted(present) if name.startswith(ABLATED)]  # fmt: skip
    if SEQUENTIAL in present and EASE in present:
        pairs.append((EASE, SEQUENTIAL, ""))
    if "dense-profile" in present and "dense-history" in present:
        pairs.append(("dense-history", "dense-profile", "the profile against its history"))
    found = []
    for a, b, note in pairs:
        interval = paired_bootstrap(per_user(mine, protocol, a, metric),
                                    per_user(mine, protocol, b, metric), samples, seed)  # fmt: skip
        found.append(PairedDifference(a=a, b=b, metric=metric, mean=round(interval.mean, 3),
                                      low=round(interval.low, 3), high=round(interval.high, 3),
                                      n=interval.n, note=note))  # fmt: skip
    return found
