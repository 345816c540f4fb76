"""`Retrieval`: everything retrieval produced for one user, the input of the re-rank, the
assembly of the result and `explain`. Its own module so the LLM re-rank (`llm_rerank`) and the
`Recommender` (`service`) both depend on it and not on each other."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.recommend.candidates import Scored
from agent.recommend.filters import ItemFilter
from agent.recommend.fusion import Fused
from agent.schemas import Interaction
from agent.schemas.profile import UserProfile


@dataclass
class Retrieval:
    """Everything retrieval produced for one user, kept for re-rank, assembly and explain."""

    user_id: str
    profile: UserProfile
    history: list[Interaction]
    exclude: set[str]
    positive: list[str]
    lists: dict[str, list[Scored]]
    fused: list[Fused]
    filters: ItemFilter
    timings: dict[str, float] = field(default_factory=dict)
