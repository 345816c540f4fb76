"""LLM re-rank of fused candidates: a ranked list whose item ids can only be candidate ids and
whose cited ids can only be ids of history items shown in the prompt (JSON-schema enums built
per request, so vLLM's constrained decoding cannot produce anything else). The `check`
callback repeats every rule (a server that ignores the schema is caught and re-asked), and
`aggregate` trusts nothing it did not verify.

Position bias: with `shuffles > 1` the candidates are ranked in several orders (the first is
the retrieval order, the others seeded permutations) and Borda points are summed. `blend`
mixes the LLM rank with the retrieval rank by a weight: 0 is retrieval alone, 1 the LLM alone.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, create_model

from agent.prompts import PromptRef, RenderedPrompt, load_prompt
from agent.recommend.context import history_lines, item_line, profile_text
from agent.runtime.structured import Generated, StructuredGenerator, StructuredOutputError
from agent.schemas import Interaction, Item
from agent.schemas.profile import UserProfile
from agent.schemas.text import NonEmpty, clip

Reason = Annotated[str, NonEmpty, clip(100, as_pattern=True, digits=False)]
"""A pattern: the grammar cannot write a blank reason, which validation would refuse, and
the reason starts with a letter and has no digits. Allowed digits, the default model filled
nearly every reason with a digit loop (`10.1.1.1...`) to its bound: 4 users' replies
averaged 1,068 tokens out, against 399 without digits and 638 with digits after a first
letter (greedy, 10 picks, 2026-11-24). The price: a reason cannot quote a number ("Se7en",
"rated 5"); the `cited` ids still name the history items it relies on."""
MAX_CITED = 3
PROMPT_ID = "rerank"


class Pick(BaseModel):
    item_id: str
    reason: Reason = Field(description="One short sentence")
    cited: list[str] = Field(min_length=1, max_length=MAX_CITED)


class RerankDraft(BaseModel):
    ranking: list[Pick] = Field(min_length=1)


def rerank_schema(
    candidate_ids: Sequence[str], history_ids: Sequence[str], picks: int
) -> type[RerankDraft]:
    """`RerankDraft` with item ids limited to the candidates, cited ids to the shown history
    and exactly `picks` entries (duplicates are caught by the check: JSON schema cannot say
    'distinct objects' in a way xgrammar enforces)."""
    item_type: Any = Literal[tuple(dict.fromkeys(candidate_ids))]
    shown = tuple(dict.fromkeys(history_ids))
    cited: Any = (
        (list[Literal[shown]], Field(min_length=1, max_length=MAX_CITED))  # type: ignore[valid-type]
        if shown
        else (list[str], Field(default_factory=list, max_length=0))
    )
    pick = create_model("RankedPick", __base__=Pick, item_id=(item_type, ...), cited=cited)
    return create_model(
        "RerankDraft",
        __base__=RerankDraft,
        ranking=(list[pick], Field(min_length=picks, max_length=picks)),
    )


@dataclass
class RerankRequest:
    user_id: str
    candidates: list[str]
    """In retrieval order (best first)."""
    orders: list[list[str]]
    """The candidate order shown in each shuffle (the first is the retrieval order)."""
    prompts: list[RenderedPrompt]
    schema: type[RerankDraft]
    history_ids: list[str]
    picks: int
    max_tokens: int
    reask_repeats: bool
    """Whether a repeated candidate is a problem to re-ask about (else `aggregate` drops it)."""

    def problems(self, draft: RerankDraft) -> list[str]:
        """Every rule of a valid ranking, stated so the model can fix it on a re-ask."""
        allowed, history = set(self.candidates), set(self.history_ids)
        problems: list[str] = []
        seen: set[str] = set()
        for n, pick in enumerate(draft.ranking):
            where = f"ranking.{n}"
            if pick.item_id not in allowed:
                problems.append(f"{where}.item_id: {pick.item_id!r} is not a candidate id")
            elif pick.item_id in seen and self.reask_repeats:
                problems.append(f"{where}.item_id: {pick.item_id} is listed twice; list each "
                                "candidate at most once")  # fmt: skip
            seen.add(pick.item_id)
            if not pick.reason.strip():
                problems.append(f"{where}.reason: must not be empty")
            invented = [c for c in pick.cited if c not in history]
            if invented:
                problems.append(f"{where}.cited: {invented} are not history item ids")
        return problems


@dataclass(frozen=True)
class PickInfo:
    reason: str
    cited: list[str]


@dataclass
class RerankOutcome:
    llm_ranks: dict[str, int] = field(default_factory=dict)
    """Every candidate's LLM rank (empty when every shuffle failed)."""
    picks: dict[str, PickInfo] = field(default_factory=dict)
    runs: int = 0
    failed_runs: int = 0
    errors: list[str] = field(default_factory=list)
    prompt: PromptRef | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 0
    reasks: int = 0
    latency_s: float = 0.0
    dropped: int = 0
    """Picks discarded at aggregation (repeats, ids outside the candidates) from replies kept
    by `salvage` after the re-asks ran out."""
    mode: Literal["generate", "scored"] = "generate"
    scores: dict[str, float] = field(default_factory=dict)
    """Scored mode: each candidate's mean label log-probability (higher is better)."""
    missing_labels: int = 0
    """Scored mode: (candidate, order) pairs whose label was not among the top log-probs."""
    reasons_prompt: PromptRef | None = None
    """The prompt that wrote the reasons of the items shown (`shown_reasons`)."""
    reason_slots_dropped: int = 0
    """Driver numbers cited that the item has no driver for."""
    reasons_uncited: int = 0
    """Reasons of shown items left citing nothing: the retrieval reason is shown instead."""
    reasons_false: int = 0
    """Reasons of shown items with a false claim: the retrieval reason is shown instead."""
    reasons_unusable: int = 0
    """Reasons cut off or naming none of their cited drivers: likewise."""


def prepare_rerank(
    user_id: str,
    profile: UserProfile,
    history: Sequence[Interaction],
    items: Mapping[str, Item],
    candidates: Sequence[str],
    *,
    picks: int,
    tokens_per_pick: int,
    reask_repeats: bool,
    shuffles: int = 1,
    history_events: int = 20,
    seed: int = 0,
) -> RerankRequest:
    """One prompt per shuffle over `candidates` (retrieval order, each must be in `items`)."""
    check_candidates(candidates, items)
    picks = max(1, min(picks, len(candidates)))
    lines, shown_ids = history_lines(history, items, history_events)
    orders = shuffled_orders(list(candidates), shuffles, f"{seed}:{user_id}")
    template = load_prompt(PROMPT_ID)
    profile_block = profile_text(profile)
    prompts = [
        template.render(
            profile=profile_block,
            history=lines,
            shown=len(lines),
            total=len(history),
            candidates=[item_line(items[c]) for c in order],
            picks=picks,
        )
        for order in orders
    ]
    return RerankRequest(
        user_id=user_id,
        candidates=list(candidates),
        orders=orders,
        prompts=prompts,
        schema=rerank_schema(candidates, shown_ids, picks),
        history_ids=shown_ids,
        picks=picks,
        max_tokens=picks * tokens_per_pick + 16,
        reask_repeats=reask_repeats,
    )


def check_candidates(candidates: Sequence[str], items: Mapping[str, Item]) -> None:
    """Raise ValueError unless there are candidates and every one is in the catalog."""
    if not candidates:
        raise ValueError("nothing to re-rank: no candidates")
    missing = [c for c in candidates if c not in items]
    if missing:
        raise ValueError(f"candidates missing from the catalog: {missing[:5]}")


def shuffled_orders(candidates: list[str], shuffles: int, seed: str) -> list[list[str]]:
    orders = [list(candidates)]
    rng = random.Random(seed)
    for _ in range(1, shuffles):
        order = list(candidates)
        rng.shuffle(order)
        orders.append(order)
    return orders


Result = Generated[RerankDraft] | StructuredOutputError


async def arerank(generator: StructuredGenerator, request: RerankRequest) -> RerankOutcome:
    """All shuffles concurrently; a shuffle that fails validation is counted, not raised."""

    async def one(prompt: RenderedPrompt) -> Result:
        try:
            return await generator.agenerate(
                prompt, request.schema, max_tokens=request.max_tokens, check=request.problems
            )
        except StructuredOutputError as err:
            return salvage(request, err)

    results = await asyncio.gather(*(one(p) for p in request.prompts))
    return aggregate(request, list(results))


def rerank(generator: StructuredGenerator, request: RerankRequest) -> RerankOutcome:
    """Blocking form of `arerank`, under `asyncio.run`: not for code inside a running event
    loop, nor for a generator whose async HTTP client cannot cross loops (those made by
    `StructuredGenerator.for_endpoint` get one per loop)."""
    return asyncio.run(arerank(generator, request))


def salvage(request: RerankRequest, err: StructuredOutputError) -> Result:
    """Keep a last reply that matches the schema although the re-asks did not fix the rules
    it broke (with `reask_repeats` on: the small default model repeats a candidate however
    it is asked).
    `aggregate` keeps first occurrences only and counts the rest in `dropped`, which beats
    losing the whole ranking. Anything that does not even parse stays a failed run."""
    try:
        draft = request.schema.model_validate_json(err.last_raw)
    except ValidationError:  # the schema's enum already limits ids to the candidates
        return err
    return Generated[RerankDraft](value=draft, meta=err.meta)


def aggregate(request: RerankRequest, results: Sequence[Result]) -> RerankOutcome:
    """Borda points over the shuffles (a pick at position p of P gets P - p points); the LLM
    order is by points, ties and unpicked candidates in retrieval order. Each item keeps the
    reason from the shuffle that ranked it highest."""
    outcome = RerankOutcome(runs=len(results), prompt=request.prompts[0].ref)
    points: dict[str, float] = {}
    best: dict[str, int] = {}
    allowed, history = set(request.candidates), set(request.history_ids)
    for result in results:
        meta = result.meta
        outcome.tokens_in += meta.tokens_in
        outcome.tokens_out += meta.tokens_out
        outcome.attempts += meta.attempts
        outcome.reasks += meta.reasks
        outcome.latency_s = max(outcome.latency_s, meta.latency_s)
        if isinstance(result, StructuredOutputError):
            outcome.failed_runs += 1
            outcome.errors.append(str(result))
            continue
        ranking = valid_picks(result.value.ranking, allowed)
        outcome.dropped += len(result.value.ranking) - len(ranking)
        for position, pick in enumerate(ranking):
            points[pick.item_id] = points.get(pick.item_id, 0.0) + (request.picks - position)
            if pick.item_id not in best or position < best[pick.item_id]:
                best[pick.item_id] = position
                cited = [c for c in dict.fromkeys(pick.cited) if c in history]
                outcome.picks[pick.item_id] = PickInfo(pick.reason.strip(), cited)
    if outcome.failed_runs < outcome.runs:
        retrieval = {item: i for i, item in enumerate(request.candidates)}
        order = sorted(request.candidates, key=lambda i: (-points.get(i, 0.0), retrieval[i]))
        outcome.llm_ranks = {item: rank for rank, item in enumerate(order, start=1)}
    return outcome


def valid_picks(ranking: Sequence[Pick], allowed: set[str]) -> list[Pick]:
    """Candidate picks in order, first occurrence only."""
    kept: dict[str, Pick] = {}
    for pick in ranking:
        if pick.item_id in allowed and pick.item_id not in kept:
            kept[pick.item_id] = pick
    return list(kept.values())


def blend(
    retrieval_order: Sequence[str], llm_ranks: Mapping[str, int], weight: float
) -> list[tuple[str, float]]:
    """Final order: `weight * llm + (1 - weight) * retrieval`, both as rank scores in [0, 1]
    (1 for first place). Without LLM ranks, or at weight 0, it is the retrieval order."""
    n = len(retrieval_order)
    span = max(n - 1, 1)
    if not llm_ranks:
        weight = 0.0
    scored = []
    for index, item in enumerate(retrieval_order):
        retrieval_rank = index + 1
        llm_rank = llm_ranks.get(item, retrieval_rank)
        score = weight * (n - llm_rank) / span + (1 - weight) * (n - retrieval_rank) / span
        scored.append((item, round(score, 6), retrieval_rank))
    scored.sort(key=lambda t: (-t[1], t[2]))
    return [(item, score) for item, score, _ in scored]
