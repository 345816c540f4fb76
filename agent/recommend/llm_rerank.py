"""The LLM's part of `recommend`: re-rank the top of the retrieval, then reasons.

- scored (default): label log-probs over `rerank_score_shuffles` orders order the pool; then
  one request writes reasons for the K items shown (`shown_reasons`).
- generate: the model writes the ranked list with a reason per pick (`rerank`).

The LLM rank enters the order only where it earned it (`Ordering`): with a ranker the order is
the ranker's; without one the LLM rank is blended into the fusion order at the weight `eval
tune-blend` chose on validation for the served model and mode, 0 when none was chosen (the
`rerank_blend` setting overrides it). At weight 0 no re-rank request is sent, only the one for
the shown items' reasons."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal

from agent.config import Settings
from agent.recommend.retrieval import Retrieval
from agent.schemas import Item

if TYPE_CHECKING:
    from agent.reasons.evidence import ItemEvidence
    from agent.recommend.rerank import RerankOutcome, RerankRequest
    from agent.recommend.scored import ScoreRequest
    from agent.runtime.structured import StructuredGenerator

ItemsOf = Callable[[list[str]], dict[str, Item]]

WeightFrom = Literal["setting", "tuned", "none"]


@dataclass(frozen=True)
class Ordering:
    """The order `recommend` gives: the ranker's, or fusion's with the LLM rank blended in."""

    ranker: bool
    weight: float = 0.0
    """The LLM rank's weight in the fusion order (always 0 with a ranker)."""
    weight_from: WeightFrom = "none"

    @property
    def uses_llm(self) -> bool:
        """Whether the LLM's ranks change the order (else only its reasons are asked for)."""
        return not self.ranker and self.weight > 0

    def describe(self) -> str:
        if self.ranker:
            return "ranker"
        return f"fusion+LLM blend w={self.weight:g}" if self.weight > 0 else "fusion"


def llm_weight(settings: Settings, model: str | None, mode: str) -> tuple[float, WeightFrom]:
    """The LLM rank's weight in the fusion order and where it comes from: the `rerank_blend`
    setting when set, else the weight `eval tune-blend` stored for this model (served name)
    and re-rank mode, else 0."""
    if settings.rerank_blend is not None:
        return settings.rerank_blend, "setting"
    if model is not None:
        from agent.store.fitted import load_tuned_blend

        tuned = load_tuned_blend(settings.data_dir, model, mode)
        if tuned is not None:
            return tuned.weight, "tuned"
    return 0.0, "none"


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
    evidence: Mapping[str, ItemEvidence],
    catalog: Collection[str],
    outcome: RerankOutcome,
) -> None:
    """Reasons for the items shown (the keys of `evidence`, in order), written into
    `outcome.picks` (the scored re-rank has none); an item whose reason failed, cited nothing
    or made a false claim keeps its retrieval reason, and each is counted."""
    from agent.recommend.shown_reasons import reasons_for_shown

    made = await reasons_for_shown(
        settings, generator, retrieval.user_id, evidence, catalog, retrieval.profile,
        retrieval.history, items_of,
    )  # fmt: skip
    outcome.picks.update(made.picks)
    outcome.reason_slots_dropped += made.missing_slots
    outcome.reasons_uncited += made.uncited
    outcome.reasons_false += made.false_claims
    outcome.reasons_unusable += made.unusable
    if made.meta is not None:
        outcome.reasons_prompt = made.meta.prompt
        outcome.tokens_in += made.meta.tokens_in
        outcome.tokens_out += made.meta.tokens_out
        outcome.attempts += made.meta.attempts
        outcome.reasks += made.meta.reasks
    if made.error is not None:
        outcome.errors.append(f"reasons: {made.error}")
