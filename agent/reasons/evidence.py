"""What drove each shown item, computed before any LLM writes a word about it.

EASE scores item j for user u as `Σ_k X[u,k] * B[k,j]` (Steck, WWW'19): each history item k
adds exactly its own term, so the items that raised j most are read off the fitted model,
not guessed. A reason that cites them is true by construction; the LLM may only put this
evidence into words (issue 29), and `checks` holds what it wrote against it.

The contributions come from `EaseModel.contribution_scores`, the same numbers behind today's
"People who liked A and B also liked this" (`agent.recommend.reasons.retrieval_reason`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from agent.recommend.collaborative import EaseModel
from agent.schemas import Item

TOP_DRIVERS = 5
"""Drivers kept per item: enough for a reason to cite three and for faithfulness's top 3."""


class Driver(BaseModel):
    """A history item and what it added to the shown item's EASE score."""

    item_id: str
    title: str
    contribution: float = Field(description="X[u,k] * B[k,j]: exact, positive")


class ItemEvidence(BaseModel):
    """The facts a reason for one shown item may state."""

    item_id: str
    title: str
    categories: list[str] = Field(default_factory=list)
    year: int | None = None
    score: float | None = Field(None, description="EASE score: Σ of every history term")
    drivers: list[Driver] = Field(
        default_factory=list, description="Positive contributors, largest first"
    )

    def top_ids(self, n: int = 3) -> list[str]:
        return [d.item_id for d in self.drivers[:n]]


def item_evidence(
    ease: EaseModel,
    history: Sequence[str],
    item: Item,
    titles: Mapping[str, str],
    top: int = TOP_DRIVERS,
) -> ItemEvidence:
    """Evidence for one item: its `top` positive EASE contributors over the user's positive
    history, and its own facts (categories, year) from the catalog."""
    terms = ease.contribution_scores(history, item.item_id)
    return ItemEvidence(
        item_id=item.item_id,
        title=item.title,
        categories=list(item.categories),
        year=item.year,
        score=sum(w for _, w in terms) if item.item_id in ease else None,
        drivers=[
            Driver(item_id=k, title=titles.get(k, k), contribution=w)
            for k, w in terms[:top]
            if w > 0
        ],
    )


def shown_evidence(
    ease: EaseModel,
    history: Sequence[str],
    items: Mapping[str, Item],
    shown: Sequence[str],
    titles: Mapping[str, str],
    top: int = TOP_DRIVERS,
) -> dict[str, ItemEvidence]:
    """Evidence for each shown item, by id, in the order shown. `history` is the user's
    positive history (what EASE scores from); `titles` names its items."""
    return {j: item_evidence(ease, history, items[j], titles, top) for j in shown}
