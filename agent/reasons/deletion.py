"""The deletion test of a reason's citations, after LXR (Barkan et al., WWW'24).

If the cited history items really drove a recommendation, taking them out of the user's
history must lower its score (and rank) more than taking out as many history items at random.
The score is recomputed with EASE on the history row without them: for EASE the drop is the
sum of the removed items' contributions, and the rank is recounted among the user's
candidates. Random draws come from the whole history row (a random citation is the null),
seeded per user and item so a run is reproducible, and averaged over `DRAWS`.

Summarised over a run as the ratio of the mean drops (`drop_ratio`): a mean of per-item ratios
would be dominated by items whose random drop is near zero."""

from __future__ import annotations

import random
import statistics
from collections.abc import Collection, Iterable, Sequence

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from agent.recommend.collaborative import EaseModel

DRAWS = 5


class Deletion(BaseModel):
    item_id: str
    removed: list[str]
    """The cited items that are in the history row (the ones taken out)."""
    score: float
    rank: int
    cited_drop: float
    cited_rank_drop: float
    """Places the item falls with the cited items removed (positive: it fell)."""
    random_drop: float
    random_rank_drop: float
    draws: int

    @property
    def ratio(self) -> float | None:
        return self.cited_drop / self.random_drop if self.random_drop > 0 else None


def rank_of(scores: npt.NDArray[np.float32], target: int, eligible: npt.NDArray[np.bool_]) -> int:
    """1 + the eligible items scoring above the target (ties in its favour)."""
    return 1 + int(np.count_nonzero(eligible & (scores > scores[target])))


def deletion_test(
    ease: EaseModel,
    history: Sequence[str],
    item_id: str,
    cited: Iterable[str],
    exclude: Collection[str],
    seed: int = 0,
    draws: int = DRAWS,
    user_id: str = "",
) -> Deletion | None:
    """Score and rank drop of `item_id` with `cited` removed from `history` (the user's
    positive items, what EASE scores from), against `draws` random removals of as many items.
    `exclude` is what the user may not be recommended (their seen items): rank is among the
    rest. None when the item is not in the model or no cited item is in the history row."""
    row = [h for h in dict.fromkeys(history) if h in ease]
    in_row = set(row)
    removed = [c for c in dict.fromkeys(cited) if c in in_row]
    if item_id not in ease or not removed:
        return None
    target = ease.item_ids.index(item_id)
    eligible = np.array([i not in exclude or i == item_id for i in ease.item_ids])

    def after(taken: Collection[str]) -> tuple[float, int]:
        scores = ease.scores([h for h in row if h not in taken])
        return float(scores[target]), rank_of(scores, target, eligible)

    score, rank = after(())
    cited_score, cited_rank = after(set(removed))
    rng = random.Random(f"{seed}:deletion:{user_id}:{item_id}")
    drawn = [after(set(rng.sample(row, len(removed)))) for _ in range(draws)]
    return Deletion(
        item_id=item_id,
        removed=removed,
        score=score,
        rank=rank,
        cited_drop=score - cited_score,
        cited_rank_drop=cited_rank - rank,
        random_drop=score - statistics.fmean(s for s, _ in drawn),
        random_rank_drop=statistics.fmean(r for _, r in drawn) - rank,
        draws=draws,
    )


class DropSummary(BaseModel):
    items: int
    cited_drop: float
    random_drop: float
    ratio: float | None
    cited_rank_drop: float
    random_rank_drop: float


def drop_ratio(results: Iterable[Deletion | None]) -> DropSummary:
    """Mean drops over the tested items and their ratio, cited / random."""
    done = [r for r in results if r is not None]
    if not done:
        return DropSummary(items=0, cited_drop=0.0, random_drop=0.0, ratio=None,
                           cited_rank_drop=0.0, random_rank_drop=0.0)  # fmt: skip
    cited = statistics.fmean(r.cited_drop for r in done)
    rand = statistics.fmean(r.random_drop for r in done)
    return DropSummary(
        items=len(done),
        cited_drop=cited,
        random_drop=rand,
        ratio=cited / rand if rand > 0 else None,
        cited_rank_drop=statistics.fmean(r.cited_rank_drop for r in done),
        random_rank_drop=statistics.fmean(r.random_rank_drop for r in done),
    )
