"""The learned ranker and the sequential retriever as eval systems, fitted without leakage.

`fit_ranking` trains each ranker one stage before the judged one: judging the test event
(held_out = 1), the ranker learns from every user's validation event with every source fitted
on the events before it; then the sources are refitted on the events before the test event,
and the ranker scores the test candidates with those. No test event (of any user) reaches the
sources, the training groups or the features; `tests/test_rank_leakage.py` checks it by
changing every test event and comparing.

Systems:
- `sequential`: the SASRec-family model over the user's last `max_len` positive items;
- `ranker-no-llm`: LambdaRank over `NO_LLM_FEATURES`;
- `ranker`: over `ALL_FEATURES` (the LLM columns NaN where no LLM evidence was computed).

Per protocol the ranker is trained on candidates drawn the way that protocol draws them:
llmrank on the target plus random unseen items, llmrank-ref on the target plus random items
from the whole catalog (the user's own earlier items included, as LLMRank's lists are drawn),
full and two-stage on the retrievers' union."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from agent.config import Settings
from agent.rank.features import (
    ALL_FEATURES,
    LLM_FEATURES,
    NO_LLM_FEATURES,
    LlmEvidence,
    UserScores,
    candidate_union,
    feature_matrix,
    user_scores,
)
from agent.rank.model import Groups, Ranker, RankerParams, train_ranker
from agent.rank.sources import Array, Catalog, SourceParams, Sources, UserState, fit_sources
from agent.rank.training import (
    Candidates,
    Judged,
    build_groups,
    group_rows,
    judged_events,
    prefixes,
)
from agent.recommend.candidates import Scored
from agent.recommend.sequential import SasRecParams
from agent.schemas import Interaction
from evals.metrics import ndcg
from evals.protocols import Protocol
from evals.splits import UserSplit
from evals.systems import by_score

RANKER = "ranker"
RANKER_NO_LLM = "ranker-no-llm"
SEQUENTIAL = "sequential"
FEATURE_SETS = {RANKER_NO_LLM: NO_LLM_FEATURES, RANKER: ALL_FEATURES}
ABLATED = "ranker-without-"
"""`ranker-without-<column>`: the ranker trained and judged without one LLM column, so the
paired difference ranker - ranker-without-<column> is that column's gain."""


def ablations(rerank: bool) -> list[str]:
    """One drop-one ranker per LLM column the run fills (`llm_score` only with the re-rank)."""
    return [ABLATED + c for c in LLM_FEATURES if rerank or c != "llm_score"]


def feature_set(name: str) -> tuple[str, ...]:
    """The columns of a ranker system: FEATURE_SETS, or every column but one ablated."""
    if name.startswith(ABLATED):
        dropped = name.removeprefix(ABLATED)
        if dropped not in LLM_FEATURES:
            raise ValueError(f"{name}: {dropped} is not an LLM column")
        return tuple(f for f in ALL_FEATURES if f != dropped)
    return FEATURE_SETS[name]


def with_llm_columns(name: str) -> bool:
    """The ranker systems that read the test stage's LLM evidence."""
    return name == RANKER or name.startswith(ABLATED)


@dataclass(frozen=True)
class RankingOptions:
    sources: SourceParams = SourceParams()
    sequential: SasRecParams | None = SasRecParams()
    ranker: RankerParams = RankerParams()
    sampled_size: int = 20
    """Candidates per training group for llmrank and llmrank-ref (the protocols' own count)."""
    depth: int = 50
    """Top items each retriever adds to the candidate union (full, two-stage)."""
    min_history: int = 3
    seed: int = 0


def mode_for(protocol: Protocol) -> Candidates:
    """Candidates a protocol's ranker is trained on: drawn as the protocol draws them."""
    if protocol is Protocol.LLMRANK_REF:
        return Candidates.SAMPLED_ANY
    return Candidates.SAMPLED if protocol.sampled else Candidates.RETRIEVED


def ranking_options(settings: Settings, seed: int) -> RankingOptions:
    s = settings
    sources = SourceParams(s.collaborative_lambda, s.collaborative_max_items,
                           s.popularity_half_life_days)  # fmt: skip
    return RankingOptions(sources=sources, sampled_size=s.eval_candidates,
                          min_history=s.eval_min_history, seed=seed)  # fmt: skip


@dataclass
class Ranking:
    """Sources fitted for judging and the rankers trained one stage earlier."""

    sources: Sources
    rankers: dict[str, dict[Candidates, Ranker]]
    options: RankingOptions
    timings: dict[str, float] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    llm_alone: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    """Per mode, per LLM column: NDCG@10 of that column alone on the training groups."""
    _scored: dict[str, UserScores] = field(default_factory=dict, repr=False)

    def scored(self, split: UserSplit) -> UserScores:
        found = self._scored.get(split.user_id)
        if found is None:
            state = self.sources.user(split.user_id, split.prefix)
            found = self._scored[split.user_id] = user_scores(self.sources, state)
        return found

    def state(self, split: UserSplit) -> UserState:
        return self.scored(split).user

    def report(self) -> dict[str, object]:
        """Training facts and gain importance of every ranker, for the run summary."""
        found: dict[str, object] = {"timings_s": self.timings, "groups": self.groups}
        if self.llm_alone:
            found["LLM columns alone on training groups"] = self.llm_alone
        for name, by_mode in self.rankers.items():
            for mode, ranker in by_mode.items():
                found[f"{name} ({mode.value})"] = {
                    "train_s": ranker.train_seconds,
                    "trees": ranker.best_rounds,
                    "cv_ndcg@10": ranker.valid_ndcg10,
                    "gain": ranker.importance(),
                }
        return found


def fit_ranking(
    histories: Mapping[str, Sequence[Interaction]],
    catalog: Catalog,
    held_out: int,
    systems: Sequence[str],
    modes: Sequence[Candidates],
    options: RankingOptions,
    vectors: tuple[list[str], Array] | None = None,
    training_evidence: TrainingEvidence | None = None,
) -> Ranking:
    """Rankers for `systems` (names in FEATURE_SETS) trained on the `held_out + 1`-th last
    events, and the sources for judging the `held_out`-th last ones. `training_evidence`
    (llmrank's sampled groups only; sampled-any groups keep NaN LLM columns) gets each user's
    training target, the events before it and the group's candidates in the order shown, and
    returns the LLM evidence for them."""
    o, timings, groups = options, {}, {}
    started = time.perf_counter()
    train_sources = fit_sources(prefixes(histories, held_out + 1), catalog, o.sources,
                                o.sequential, vectors)  # fmt: skip
    timings["fit_sources_train_s"] = round(time.perf_counter() - started, 3)
    judged = judged_events(histories, held_out + 1, o.min_history)
    if training_evidence is not None:  # equal terms: every training group has the LLM columns
        judged = {u: j for u, j in judged.items() if u in training_evidence.users}
    rankers: dict[str, dict[Candidates, Ranker]] = {name: {} for name in systems}
    llm_alone: dict[str, dict[str, dict[str, float]]] = {}
    for mode in modes:
        size = o.sampled_size if mode.sampled else o.depth
        started = time.perf_counter()
        evidence = None
        if training_evidence is not None and mode is Candidates.SAMPLED:
            started_llm = time.perf_counter()
            training_groups = sampled_groups(train_sources, judged, size, o.seed)
            evidence = training_evidence.make(training_groups)
            timings["llm_evidence_train_s"] = round(time.perf_counter() - started_llm, 3)
        every = build_groups(train_sources, judged, ALL_FEATURES, mode, size, o.seed, evidence)
        timings[f"features_{mode.value}_s"] = round(time.perf_counter() - started, 3)
        groups[mode.value] = len(every.sizes)
        if evidence is not None:
            llm_alone[mode.value] = {name: feature_alone(every, ALL_FEATURES.index(name))
                                     for name in LLM_FEATURES}  # fmt: skip
        for name in systems:
            names = list(feature_set(name))
            columns = [ALL_FEATURES.index(n) for n in names]
            part = every.columns(columns)
            rankers[name][mode] = train_ranker(part, names, o.ranker)
    started = time.perf_counter()
    judge_sources = fit_sources(prefixes(histories, held_out), catalog, o.sources, o.sequential,
                                vectors)  # fmt: skip
    timings["fit_sources_judge_s"] = round(time.perf_counter() - started, 3)
    for name, by_mode in rankers.items():
        for mode, ranker in by_mode.items():
            timings[f"train_{name}_{mode.value}_s"] = ranker.train_seconds
    return Ranking(judge_sources, rankers, o, timings, groups, llm_alone)


def feature_alone(groups: Groups, column: int, k: int = 10) -> dict[str, float]:
    """NDCG@k (x100) of ranking each training group by one feature, over the groups where it
    is set: validation events, so a choice made on it (such as `rerank_label_debias`) never
    looks at the test split. Ties go in the group's shown order (shuffled per user)."""
    values, starts = groups.x[:, column], [0, *np.cumsum(groups.sizes).tolist()]
    gains = []
    for start, end in zip(starts, starts[1:], strict=False):
        v, target = values[start:end], int(np.argmax(groups.y[start:end]))
        if np.isnan(v).all():
            continue
        v = np.nan_to_num(v, nan=-np.inf)
        rank = 1 + int((v > v[target]).sum()) + int((v[:target] == v[target]).sum())
        gains.append(ndcg(rank, k))
    return {f"ndcg@{k}": round(float(np.mean(gains)), 2) if gains else float("nan"),
            "groups": len(gains)}  # fmt: skip


@dataclass(frozen=True)
class TrainingGroup:
    """What the LLM may see of one training group: the events before its target (never the
    target or anything after it) and the candidates, the target among them."""

    before: tuple[Interaction, ...]
    candidates: list[str]


@dataclass(frozen=True)
class TrainingEvidence:
    """The LLM evidence for the training groups of `users` (the others get NaN columns)."""

    users: frozenset[str]
    make: Callable[[Mapping[str, TrainingGroup]], Mapping[str, LlmEvidence]]


def sampled_groups(
    sources: Sources, judged: Mapping[str, Judged], size: int, seed: int
) -> dict[str, TrainingGroup]:
    found = {}
    for user_id, j in judged.items():
        group = group_rows(sources, j, Candidates.SAMPLED, size, seed)
        if group is not None:
            ids = [sources.catalog.item_ids[r] for r in group[1]]
            found[user_id] = TrainingGroup(j.before, ids)
    return found


@dataclass
class RankerSystem:
    name: str
    ranking: Ranking
    evidence: Mapping[str, LlmEvidence] = field(default_factory=dict)
    sampled: Candidates = Candidates.SAMPLED
    """The ranker `order` uses: the one trained as the running sampled protocol draws
    (`mode_for`), set by the runner before each protocol."""

    def covers(self, split: UserSplit) -> bool:
        return True

    def _scores(self, split: UserSplit, mode: Candidates, items: Sequence[str]) -> dict[str, float]:
        ranker = self.ranking.rankers[self.name][mode]
        sources = self.ranking.sources
        rows = sources.catalog.rows(items)
        x = feature_matrix(sources, self.ranking.scored(split), rows, ranker.features,
                           self.evidence.get(split.user_id))  # fmt: skip
        values = ranker.score(x)
        return {sources.catalog.item_ids[r]: float(v) for r, v in zip(rows, values, strict=True)}

    def order(self, split: UserSplit, candidates: Sequence[str]) -> list[str]:
        return by_score(candidates, self._scores(split, self.sampled, candidates))

    def top(self, split: UserSplit, n: int) -> list[Scored]:
        sources = self.ranking.sources
        rows = candidate_union(self.ranking.scored(split), self.ranking.options.depth)
        items = [sources.catalog.item_ids[r] for r in rows]
        scores = self._scores(split, Candidates.RETRIEVED, items)
        ordered = by_score(items, scores)[:n]
        return [Scored(i, round(scores[i], 6)) for i in ordered]


@dataclass
class SequentialSystem:
    ranking: Ranking
    name: str = SEQUENTIAL

    def covers(self, split: UserSplit) -> bool:
        model = self.ranking.sources.sequential
        return model is not None and any(i in model for i in split.prefix_positive)

    def order(self, split: UserSplit, candidates: Sequence[str]) -> list[str]:
        scored = self.ranking.scored(split).scores[SEQUENTIAL]
        index = self.ranking.sources.catalog.index
        known = {c: float(scored[index[c]]) for c in candidates if c in index}
        return by_score(candidates, {c: v for c, v in known.items() if v == v})

    def top(self, split: UserSplit, n: int) -> list[Scored]:
        scored = self.ranking.scored(split)
        ids = self.ranking.sources.catalog.item_ids
        return [
            Scored(ids[r], round(float(scored.scores[SEQUENTIAL][r]), 6))
            for r in scored.top(SEQUENTIAL, n)
        ]
