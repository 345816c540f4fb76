"""One run's reasons in the figures issue 29 sets targets for, from the per-reason checks, the
deletion tests and the texts: the same summary for the no-LLM retrieval reasons and for the
LLM's, so the two can stand side by side."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from pydantic import BaseModel

from agent.reasons.checks import ReasonCheck
from agent.reasons.deletion import Deletion, drop_ratio
from agent.reasons.variety import variety


class ReasonsSummary(BaseModel):
    reasons: int
    uncited_rate: float
    """Share of reasons citing no history item (left out of faithfulness)."""
    faithfulness: float | None
    deletion_items: int
    deletion_cited_drop: float
    deletion_random_drop: float
    deletion_ratio: float | None
    """Mean score drop with the cited items removed / with as many random ones removed."""
    deletion_cited_rank_drop: float
    deletion_random_rank_drop: float
    false_claim_rate: float
    false_category_rate: float
    seen_claim_rate: float
    distinct_1: float
    distinct_2: float
    template: str
    template_rate: float
    opening_3_rate: float
    copy_rate: float | None


def summarize(
    texts: Sequence[str],
    checks: Sequence[ReasonCheck],
    deletions: Sequence[Deletion | None],
    prompt_grams: frozenset[tuple[str, ...]] | None = None,
) -> ReasonsSummary:
    n = len(checks)

    def share(count: int) -> float:
        return count / n if n else 0.0

    faithful = [c.faithfulness for c in checks if c.faithfulness is not None]
    drops = drop_ratio(deletions)
    varied = variety(texts, prompt_grams)
    return ReasonsSummary(
        reasons=n,
        uncited_rate=share(n - len(faithful)),
        faithfulness=statistics.fmean(faithful) if faithful else None,
        deletion_items=drops.items,
        deletion_cited_drop=drops.cited_drop,
        deletion_random_drop=drops.random_drop,
        deletion_ratio=drops.ratio,
        deletion_cited_rank_drop=drops.cited_rank_drop,
        deletion_random_rank_drop=drops.random_rank_drop,
        false_claim_rate=share(sum(c.false_claim for c in checks)),
        false_category_rate=share(sum(bool(c.false_categories) for c in checks)),
        seen_claim_rate=share(sum(bool(c.seen_claims) for c in checks)),
        distinct_1=varied.distinct_1,
        distinct_2=varied.distinct_2,
        template=varied.template,
        template_rate=varied.template_rate,
        opening_3_rate=varied.opening_3_rate,
        copy_rate=varied.copy_rate,
    )
