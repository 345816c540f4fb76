"""The learned ranker's LLM columns in an eval, computed without leakage.

`ranker` differs from `ranker-no-llm` only by these columns, so their paired difference is the
LLM's marginal value. Both rankers learn from every user's validation event; for the users the
LLM stages run on, the columns of a training group come from a profile written from the events
before that user's validation target (never the target, never the test event) and from the
scored re-rank of exactly the group's candidates, in the order the ranker sees them. Judging
the test event, the same columns come from the test-stage profile (the training prefix) and
the llmrank re-rank scores. Users the LLM did not run on have NaN columns, in training and in
judging, for both rankers alike (`ranker-no-llm` has no such columns at all)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from agent.profiles.profiler import Profiler
from agent.rank.features import LlmEvidence
from agent.rank.profile_match import Embed
from agent.rank.profile_training import profile_evidence
from agent.recommend.scored import ScoreRequest, prepare_scored
from agent.schemas import Item
from evals.llm import LLMStages, ProfileResult, RerankResult
from evals.ranked import TrainingGroup


def test_stage_evidence(
    profiles: Mapping[str, ProfileResult], reranks: Mapping[str, RerankResult], embed: Embed
) -> dict[str, LlmEvidence]:
    """The profile columns as `rank fit` and `recommend` compute them (`profile_evidence`),
    plus `llm_score` per candidate from a scored re-rank."""
    made = {u: r.profile for u, r in profiles.items() if r.profile is not None}
    from_profiles = profile_evidence(made, embed)
    found = {}
    for user_id in profiles:
        base = from_profiles.get(user_id, LlmEvidence())
        rerank = reranks.get(user_id)
        scores = {"llm_score": dict(rerank.scores)} if rerank is not None and rerank.scores else {}
        found[user_id] = replace(base, per_item={**base.per_item, **scores})
    return found


@dataclass
class TrainingLLM:
    """Profiles and scored re-ranks for the ranker's training groups (validation events)."""

    profiler: Profiler
    stages: LLMStages
    items_of: Callable[[list[str]], dict[str, Item]]
    history_cap: int
    shuffles: int
    history_events: int
    seed: int
    label_debias: bool
    progress: Callable[[str, int], Callable[[], None]]
    """The runner's progress: (label, total) -> advance."""
    embed: Embed
    """The item index's embedder, for the profile columns."""
    rerank: bool = True
    """Score the groups' candidates too (`llm_score`); False: the profile columns only."""

    def __call__(self, groups: Mapping[str, TrainingGroup]) -> dict[str, LlmEvidence]:
        histories = {u: list(g.before[-self.history_cap :]) for u, g in groups.items()}
        requests = {u: self.profiler.prepare_full(u, h) for u, h in histories.items()}
        advance = self.progress("profiles (ranker training: before each validation event)",
                                len(requests))  # fmt: skip
        profiles = self.stages.profiles(self.profiler, requests, advance)
        if not self.rerank:
            return test_stage_evidence(profiles, {}, self.embed)
        scored: dict[str, ScoreRequest] = {}
        for user_id, group in groups.items():
            made = profiles.get(user_id)
            if made is None or made.profile is None:
                continue
            items = self.items_of([*group.candidates, *(e.item_id for e in histories[user_id])])
            scored[user_id] = prepare_scored(
                user_id, made.profile, histories[user_id], items, group.candidates,
                shuffles=self.shuffles, history_events=self.history_events, seed=self.seed,
                label_debias=self.label_debias,
            )  # fmt: skip
        advance = self.progress("re-rank (ranker training, scored)", len(scored))
        reranks = self.stages.scored(scored, advance)
        return test_stage_evidence(profiles, reranks, self.embed)
