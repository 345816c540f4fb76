"""Scored re-rank: each candidate's score is the next-token log-probability of its one-letter
label, averaged over shuffled orders (LlamaRec's verbalizer, LLMRank's shuffles).

Per order, one prefill and one output token: no list is decoded and no grammar is compiled,
so the cost per user is S prefills whose shared part (instructions, profile, history) comes
first and is served from vLLM's prefix cache after the first. A label missing from the
returned top log-probs gets the lowest returned value (an upper bound of its own); ties break
by retrieval order. The scores are kept, not only the order: the learned ranker reads them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.prompts import RenderedPrompt, load_prompt
from agent.recommend.context import history_lines, item_line, profile_text
from agent.recommend.rerank import RerankOutcome, check_candidates, shuffled_orders
from agent.runtime.label_probe import LABELS, LabelProbe, ProbeResult
from agent.schemas import Interaction, Item
from agent.schemas.profile import UserProfile

PROMPT_ID = "rerank_score"


@dataclass
class ScoreRequest:
    user_id: str
    candidates: list[str]
    """In retrieval order (best first)."""
    orders: list[list[str]]
    """The candidate order of each prompt (the first is the retrieval order)."""
    prompts: list[RenderedPrompt]

    @property
    def labels(self) -> list[str]:
        return list(LABELS[: len(self.candidates)])


def prepare_scored(
    user_id: str,
    profile: UserProfile,
    history: Sequence[Interaction],
    items: Mapping[str, Item],
    candidates: Sequence[str],
    *,
    shuffles: int = 3,
    history_events: int = 20,
    seed: int = 0,
) -> ScoreRequest:
    """One prompt per order over `candidates` (retrieval order, each must be in `items`)."""
    check_candidates(candidates, items)
    if len(candidates) > len(LABELS):
        raise ValueError(f"scored re-rank labels at most {len(LABELS)} candidates, not "
                         f"{len(candidates)}: lower rerank_top_n")  # fmt: skip
    lines, _ = history_lines(history, items, history_events, with_id=False)
    orders = shuffled_orders(list(candidates), shuffles, f"{seed}:{user_id}")
    template = load_prompt(PROMPT_ID)
    profile_block = profile_text(profile)
    labels = LABELS[: len(candidates)]
    prompts = [
        template.render(
            profile=profile_block,
            history=lines,
            shown=len(lines),
            total=len(history),
            candidates=[
                f"{label}. {item_line(items[c], with_id=False)}"
                for label, c in zip(labels, order, strict=True)
            ],
            first=labels[0],
            last=labels[-1],
        )  # fmt: skip
        for order in orders
    ]
    return ScoreRequest(user_id, list(candidates), orders, prompts)


async def ascore(probe: LabelProbe, request: ScoreRequest) -> RerankOutcome:
    """The first order alone, then the others concurrently: they find the shared prefix in
    vLLM's cache (requests in flight together cannot share blocks not yet computed)."""
    first = await probe.aprobe(request.prompts[0], request.labels)
    rest = await asyncio.gather(*(probe.aprobe(p, request.labels) for p in request.prompts[1:]))
    return aggregate_scores(request, [first, *rest])


def aggregate_scores(request: ScoreRequest, probes: Sequence[ProbeResult]) -> RerankOutcome:
    """Mean log-probability per candidate over the orders; LLM ranks by it, ties in retrieval
    order. `missing` counts (candidate, order) pairs scored at the floor."""
    labels = request.labels
    totals = dict.fromkeys(request.candidates, 0.0)
    missing = 0
    for order, probe in zip(request.orders, probes, strict=True):
        for label, item in zip(labels, order, strict=True):
            totals[item] += probe.of(label)
            missing += label not in probe.logprobs
    runs = len(probes)
    scores = {item: round(total / runs, 5) for item, total in totals.items()}
    retrieval = {item: i for i, item in enumerate(request.candidates)}
    ranked = sorted(request.candidates, key=lambda i: (-scores[i], retrieval[i]))
    return RerankOutcome(
        llm_ranks={item: rank for rank, item in enumerate(ranked, start=1)},
        scores=scores,
        runs=runs,
        prompt=request.prompts[0].ref,
        tokens_in=sum(p.tokens_in for p in probes),
        tokens_out=runs,
        attempts=runs,
        latency_s=max((p.latency_s for p in probes), default=0.0),
        missing_labels=missing,
        mode="scored",
    )
