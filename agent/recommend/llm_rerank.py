"""The LLM's part of `recommend`: re-rank the top of the retrieval, then reasons.

- scored (default): label log-probs over `rerank_score_shuffles` orders order the pool; then
  one request writes reasons for the K items shown (`shown_reasons`).
- generate: the model writes the ranked list with a reason per pick (`rerank`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from agent.config import Settings
from agent.recommend.retrieval import Retrieval
from agent.schemas import Item

if TYPE_CHECKING:
    from agent.recommend.rerank import RerankOutcome, RerankRequest
    from agent.recommend.scored import ScoreRequest
    from agent.runtime.structured import StructuredGenerator

ItemsOf = Callable[[list[str]], dict[str, Item]]


def rerank_request(
    settings: Settings, retrieval: Retrieval, items_of: ItemsOf, k: int
) -> ScoreRequest | RerankRequest | None:
    """The request for the top `rerank_top_n` fused candidates in the configured mode (None:
    nothing to re-rank)."""
    s = settings
    pool = [f.item_id for f in retrieval.fused[: s.rerank_top_n]]
    recent = [e.item_id for e in retrieval.history[-s.rerank_history_events :]]
    items = items_of(pool + recent)
    pool = [c for c in pool if c in items]
    if not pool:
        return None
    if s.rerank_mode == "scored":
        from agent.recommend.scored import prepare_scored

        return prepare_scored(
            retrieval.user_id, retrieval.profile, retrieval.history, items, pool,
            shuffles=s.rerank_score_shuffles, history_events=s.rerank_history_events,
            seed=s.seed, label_debias=s.rerank_label_debias,
        )  # fmt: skip
    from agent.recommend.rerank import prepare_rerank

    return prepare_rerank(
        retrieval.user_id, retrieval.profile, retrieval.history, items, pool,
        picks=min(k, len(pool)), shuffles=s.rerank_shuffles,
        history_events=s.rerank_history_events, tokens_per_pick=s.rerank_tokens_per_pick,
        reask_repeats=s.rerank_reask_repeats, seed=s.seed,
    )  # fmt: skip


async def llm_outcome(
    generator: StructuredGenerator, request: ScoreRequest | RerankRequest
) -> RerankOutcome:
    from agent.recommend.rerank import arerank
    from agent.recommend.scored import ScoreRequest, ascore

    if isinstance(request, ScoreRequest):
        from agent.runtime.label_probe import probe_for

        labels_checked(generator, "".join(request.labels))
        return await ascore(probe_for(generator), request)
    return await arerank(generator, request)


def labels_checked(generator: StructuredGenerator, labels: str) -> None:
    """`check_labels` once per server, model and label set in a process."""
    _check_once(generator.base_url, generator.model_name, labels, generator)


@cache
def _check_once(base_url: str, model: str, labels: str, generator: StructuredGenerator) -> None:
    from agent.runtime.label_probe import check_labels

    check_labels(generator, list(labels))


async def add_shown_reasons(
    settings: Settings,
    generator: StructuredGenerator,
    retrieval: Retrieval,
    items_of: ItemsOf,
    shown: list[str],
    outcome: RerankOutcome,
) -> None:
    """Reasons for the items shown, written into `outcome.picks` (the scored re-rank has
    none); on failure the items keep their retrieval reasons and the error is recorded."""
    from agent.recommend.shown_reasons import areasons, prepare_reasons

    recent = [e.item_id for e in retrieval.history[-settings.rerank_history_events :]]
    items = items_of(shown + recent)
    request = prepare_reasons(
        retrieval.user_id, retrieval.profile, retrieval.history, items,
        [i for i in shown if i in items], settings.rerank_history_events,
    )  # fmt: skip
    made = await areasons(generator, request)
    outcome.picks.update(made.picks)
    if made.meta is not None:
        outcome.tokens_in += made.meta.tokens_in
        outcome.tokens_out += made.meta.tokens_out
        outcome.attempts += made.meta.attempts
        outcome.reasks += made.meta.reasks
    if made.error is not None:
        outcome.errors.append(f"reasons: {made.error}")
