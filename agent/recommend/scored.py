"""Scored re-rank: each candidate's score is the next-token log-probability of its one-letter
label, averaged over shuffled orders (LlamaRec's verbalizer, LLMRank's shuffles).

Per order, one prefill and one output token: no list is decoded and no grammar is compiled,
so the cost per user is S prefills whose shared part (instructions, profile, history) comes
first and is served from vLLM's prefix cache after the first. A label missing from the
returned top log-probs gets the lowest returned value (an upper bound of its own); ties break
by retrieval order. The scores are kept, not only the order: the learned ranker reads them.

Label debiasing (`label_debias`): a small model gives the first labels more probability
whatever they name (measured on 100 ML-100K users with the default model: the held-out item
shown at A-E got NDCG@10 49, at F-T 14 to 21). With S >= 2 orders every candidate sits under
several labels and every label over several candidates, so a candidate's score can be its own
effect in the additive model `log p(order, label) = order + label + candidate`, fitted per
user by least squares. It needs no other user and no target. With S = 1 the two effects
cannot be told apart and the score is the raw log-probability. It is off by default: on the
ranker's validation groups (the same 100 users, S = 3) the debiased score ranked at NDCG@10
27.3 against 29.9 raw. (On the test split it flattened the position curve; that was reported,
not used to choose.)"""

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
    label_debias: bool = False
    """Score each candidate by its effect net of the label's (see the module docstring)."""

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
    label_debias: bool = False,
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
    return ScoreRequest(user_id, list(candidates), orders, prompts, label_debias)


async def ascore(probe: LabelProbe, request: ScoreRequest) -> RerankOutcome:
    """The first order alone, then the others concurrently: they find the shared prefix in
    vLLM's cache (requests in flight together cannot share blocks not yet computed)."""
    first = await probe.aprobe(request.prompts[0], request.labels)
    rest = await asyncio.gather(*(probe.aprobe(p, request.labels) for p in request.prompts[1:]))
    return aggregate_scores(request, [first, *rest])


def aggregate_scores(request: ScoreRequest, probes: Sequence[ProbeResult]) -> RerankOutcome:
    """Mean log-probability per candidate over the orders (or, `label_debias`, its effect net
    of the label's); LLM ranks by it, ties in retrieval order. `missing` counts (candidate,
    order) pairs scored at the floor."""
    labels = request.labels
    observed = [[probe.of(label) for label in labels] for probe in probes]
    missing = sum(label not in probe.logprobs for probe in probes for label in labels)
    if request.label_debias:
        raw = candidate_effects(request.orders, observed)
    else:
        raw = mean_scores(request.orders, observed)
    runs = len(probes)
    scores = {item: round(value, 5) for item, value in raw.items()}
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


def mean_scores(
    orders: Sequence[Sequence[str]], observed: Sequence[Sequence[float]]
) -> dict[str, float]:
    """Each candidate's mean log-probability over the orders (`observed[order][label]`)."""
    totals: dict[str, float] = {}
    for order, row in zip(orders, observed, strict=True):
        for item, value in zip(order, row, strict=True):
            totals[item] = totals.get(item, 0.0) + value
    return {item: total / len(orders) for item, total in totals.items()}


def candidate_effects(
    orders: Sequence[Sequence[str]], observed: Sequence[Sequence[float]]
) -> dict[str, float]:
    """Least-squares candidate effects of `observed[order][label] = order + label +
    candidate` (numpy's minimum-norm solution; effects are defined up to one constant, shifted
    here so their mean is the raw mean). With one order every observation is explained by its
    label alone, so the raw log-probabilities are given back."""
    import numpy as np

    if len(orders) < 2:
        return mean_scores(orders, observed)
    items = list(dict.fromkeys(orders[0]))
    column = {item: i for i, item in enumerate(items)}
    n, labels = len(items), len(observed[0])
    rows, values = [], []
    for o, (order, row) in enumerate(zip(orders, observed, strict=True)):
        for label, (item, value) in enumerate(zip(order, row, strict=True)):
            x = np.zeros(n + labels + len(orders))
            x[column[item]] = x[n + label] = x[n + labels + o] = 1.0
            rows.append(x)
            values.append(value)
    fitted = np.linalg.lstsq(np.array(rows), np.array(values), rcond=None)[0][:n]
    shift = float(np.mean(values)) - float(fitted.mean())
    return {item: float(fitted[column[item]]) + shift for item in items}
