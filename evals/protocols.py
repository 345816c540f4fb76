"""The three protocols, per user: which candidates a user gets, how each system's order turns
into a rank of the held-out item, and the per-user record written to `per_user.jsonl`.

- llmrank (Hou et al., ECIR'24): order 20 candidates (held-out + 19 random unseen, shuffled).
- llmrank-ref: the same with LLMRank's own lists (19 drawn from all items by its seeded
  `sample_candidates.py`, a user's own items among them; `evals.llmrank_reference`).
- full: each retriever's top 20 among every item the user has not seen.
- two-stage (LlamaRec-style): fusion's top 20, re-ranked by the LLM; `retrieved` says whether
  the held-out item made it into the 20 (metrics are reported over all users and over those)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum

from pydantic import BaseModel

from agent.recommend.rerank import blend
from evals.llm import ProfileResult, RerankResult
from evals.metrics import FULL_METRICS, LLMRANK_METRICS, metrics_for, rank_of
from evals.splits import UserSplit
from evals.systems import System

TOP = 20
LLM = "llm-rerank"
BLENDED = "blended"
DEFAULT = "default"
"""llmrank: the order `recommend` gives users by default (`DefaultPath`)."""


class Protocol(StrEnum):
    LLMRANK = "llmrank"
    LLMRANK_REF = "llmrank-ref"
    FULL = "full"
    TWO_STAGE = "two-stage"

    @property
    def sampled(self) -> bool:
        """Whether its candidates are the target plus sampled items (not retrieved)."""
        return self in (Protocol.LLMRANK, Protocol.LLMRANK_REF)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return FULL_METRICS if self is Protocol.FULL else LLMRANK_METRICS


class DefaultPath(BaseModel):
    """What `recommend` gives users by default, as this eval rebuilds it: a fitted ranker's
    order, else the fusion order with the LLM rank blended in at `weight` (the rerank_blend
    setting, else the weight tuned for the eval's model and mode, else 0)."""

    system: str
    """The system whose order it is (a ranker, or the fusion the LLM rank is blended into)."""
    weight: float = 0.0
    weight_from: str = "ranker"
    """"ranker" (no blend), "setting", "tuned", "none" (0) or "option" (given to the run)."""

    def describe(self) -> str:
        if self.weight > 0:
            return f"{self.system}+LLM blend w={self.weight:g} ({self.weight_from})"
        return self.system if self.weight_from == "ranker" else f"{self.system} (LLM weight 0)"


class SystemOutcome(BaseModel):
    rank: int | None
    top: list[str]
    metrics: dict[str, float]
    covered: bool = True
    """False when the system had nothing to go on for this user (e.g. no valid profile)."""


class ProtocolRecord(BaseModel):
    protocol: Protocol
    candidates: list[str]
    """llmrank: the shuffled candidates; two-stage: fusion's top 20; full: empty."""
    target_position: int | None
    retrieved: bool | None = None
    systems: dict[str, SystemOutcome]
    rerank: RerankResult | None = None


class UserRecord(BaseModel):
    user_id: str
    stage: str
    target: str
    history_ids: list[str]
    profile: ProfileResult | None = None
    protocols: dict[str, ProtocolRecord]


def outcome(
    protocol: Protocol, target: str, order: Sequence[str], covered: bool = True
) -> SystemOutcome:
    rank = rank_of(target, order)
    return SystemOutcome(
        rank=rank,
        top=list(order[:TOP]),
        metrics=metrics_for(rank, protocol.metric_names),
        covered=covered,
    )


def llm_order(shown: Sequence[str], rerank: RerankResult | None) -> list[str]:
    """The LLM's order; the shown order when there is no valid ranking (a failed re-rank is
    scored, not dropped: on llmrank the shown order is random)."""
    if rerank is None or not rerank.valid:
        return list(shown)
    return sorted(shown, key=lambda i: rerank.llm_ranks.get(i, len(shown) + 1))


def blended_order(
    retrieval: Sequence[str], rerank: RerankResult | None, weight: float
) -> list[str]:
    ranks = rerank.llm_ranks if rerank is not None else {}
    return [item for item, _ in blend(retrieval, ranks, weight)]


def llm_outcomes(
    protocol: Protocol,
    split: UserSplit,
    shown: Sequence[str],
    retrieval: Sequence[str],
    rerank: RerankResult | None,
    weight: float,
) -> dict[str, SystemOutcome]:
    valid = rerank is not None and rerank.valid
    return {
        LLM: outcome(protocol, split.target, llm_order(shown, rerank), valid),
        BLENDED: outcome(protocol, split.target, blended_order(retrieval, rerank, weight), valid),
    }


def run_llmrank(
    split: UserSplit,
    candidates: Sequence[str],
    systems: Mapping[str, System],
    fusion: str,
    rerank: RerankResult | None,
    weight: float,
    with_llm: bool,
    default: DefaultPath | None = None,
    protocol: Protocol = Protocol.LLMRANK,
) -> ProtocolRecord:
    """Every system's order of the candidates; with `default`, also the `default` system
    (what `recommend` gives: the ranker's order, or fusion with the LLM rank blended in).
    `protocol`: llmrank or llmrank-ref (the same scoring, other candidates)."""
    orders = {name: system.order(split, candidates) for name, system in systems.items()}
    results = {
        name: outcome(protocol, split.target, order, systems[name].covers(split))
        for name, order in orders.items()
    }
    if with_llm:
        results |= llm_outcomes(protocol, split, candidates, orders[fusion], rerank, weight)
    if default is not None and default.system in orders:
        base = default.system
        order = orders[base]
        if default.weight > 0:
            order = blended_order(order, rerank if with_llm else None, default.weight)
        results[DEFAULT] = outcome(protocol, split.target, order, systems[base].covers(split))
    return ProtocolRecord(
        protocol=protocol,
        candidates=list(candidates),
        target_position=rank_of(split.target, candidates),
        systems=results,
        rerank=rerank,
    )


def run_full(split: UserSplit, systems: Mapping[str, System]) -> ProtocolRecord:
    protocol = Protocol.FULL
    results = {
        name: outcome(
            protocol,
            split.target,
            [hit.item_id for hit in system.top(split, TOP)],
            system.covers(split),
        )
        for name, system in systems.items()
    }
    return ProtocolRecord(protocol=protocol, candidates=[], target_position=None, systems=results)


def run_two_stage(
    split: UserSplit,
    retrieved: Sequence[str],
    fusion: str,
    rerank: RerankResult | None,
    weight: float,
    with_llm: bool,
) -> ProtocolRecord:
    protocol = Protocol.TWO_STAGE
    results = {fusion: outcome(protocol, split.target, retrieved)}
    if with_llm:
        results |= llm_outcomes(protocol, split, retrieved, retrieved, rerank, weight)
    position = rank_of(split.target, retrieved)
    return ProtocolRecord(
        protocol=protocol,
        candidates=list(retrieved),
        target_position=position,
        retrieved=position is not None,
        systems=results,
        rerank=rerank,
    )
