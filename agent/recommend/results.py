"""What `Recommender.recommend` returns: the ranked items with their reasons
(`Recommendation`), the LLM stage's cost and settings (`RerankSummary`), and the whole answer
(`Recommendations`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from agent.prompts import PromptRef

if TYPE_CHECKING:  # the re-rank needs openai and LangChain (~1-3 s to import): only when used
    from agent.recommend.llm_rerank import Ordering
    from agent.recommend.rerank import RerankOutcome


class Recommendation(BaseModel):
    rank: int
    item_id: str
    title: str
    year: int | None
    categories: list[str]
    score: float
    """Blended rank score in [0, 1] when the LLM rank is blended in (0 past the re-ranked
    pool); else the order's own score (the ranker's, or the fused RRF score)."""
    sources: list[str]
    source_ranks: dict[str, int]
    retrieval_rank: int
    llm_rank: int | None = None
    reason: str
    reason_by: Literal["llm", "retrieval"]
    cited: list[str]
    """History item ids the reason relies on (always ids from the user's history)."""


class RerankSummary(BaseModel):
    mode: Literal["generate", "scored", "reasons"] = "generate"
    """"reasons": no re-rank ran (the order does not use the LLM rank); the LLM wrote the
    reasons for the items shown."""
    prompt: PromptRef | None
    candidates: int
    runs: int
    failed_runs: int
    blend: float
    """The LLM rank's weight in the order (0 with a ranker, or without a tuned weight)."""
    blend_from: Literal["ranker", "setting", "tuned", "none"] = "none"
    """Where the weight came from: a ranker (always 0), the rerank_blend setting, the weight
    `eval tune-blend` stored for this model and mode, or none of them (0)."""
    tokens_in: int
    tokens_out: int
    attempts: int
    reasks: int
    latency_s: float
    dropped_picks: int = 0
    """Repeated picks discarded from replies kept after the re-asks ran out."""
    reasons_prompt: PromptRef | None = None
    """The prompt that wrote the reasons of the items shown (None: the re-rank wrote them)."""
    reason_slots_dropped: int = 0
    """Driver numbers the reasons cited that their item has no driver for (dropped)."""
    reasons_uncited: int = 0
    """LLM reasons left citing nothing: those items show their retrieval reason."""
    reasons_false: int = 0
    """LLM reasons with a false claim (the user rated or watched the item, a category it
    lacks): those items show their retrieval reason."""
    reasons_unusable: int = 0
    """LLM reasons cut off mid-sentence or naming none of their cited drivers: likewise."""
    errors: list[str]


class Recommendations(BaseModel):
    user_id: str
    k: int
    filters: list[str]
    reranked: bool
    """Whether LLM ranks were blended into the order."""
    ordering: str = "fusion"
    """Which order ran: "ranker", "fusion" or "fusion+LLM blend w=<weight>"."""
    profile_version: int
    items: list[Recommendation]
    rerank: RerankSummary | None = None
    timings: dict[str, float]


def rerank_summary(outcome: RerankOutcome, ordering: Ordering) -> RerankSummary:
    """What the LLM stage cost and which weight the order gave its ranks."""
    return RerankSummary(
        mode=outcome.mode if outcome.runs else "reasons",
        prompt=outcome.prompt,
        candidates=len(outcome.llm_ranks),
        runs=outcome.runs,
        failed_runs=outcome.failed_runs,
        blend=ordering.weight,
        blend_from="ranker" if ordering.ranker else ordering.weight_from,
        tokens_in=outcome.tokens_in,
        tokens_out=outcome.tokens_out,
        attempts=outcome.attempts,
        reasks=outcome.reasks,
        latency_s=round(outcome.latency_s, 3),
        dropped_picks=outcome.dropped,
        reasons_prompt=outcome.reasons_prompt,
        reason_slots_dropped=outcome.reason_slots_dropped,
        reasons_uncited=outcome.reasons_uncited,
        reasons_false=outcome.reasons_false,
        reasons_unusable=outcome.reasons_unusable,
        errors=outcome.errors,
    )
