"""`eval run`: split, fit the baselines on the training prefix, profile and re-rank with the
LLM (cached), run every protocol for every user, and write the run folder:

    per_user.jsonl   one `UserRecord` per user (candidates, every system's rank and metrics,
                     the profile, the re-rank with its reasons)
    summary.json     `RunSummary`: metrics with bootstrap intervals, quality, cost
    manifest.json    git commit, model, prompts, seeds, data hash, options
    report.md + *.png
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from agent.profiles.grounding import SemanticJudge
from agent.profiles.profiler import Profiler
from agent.rank.sources import Catalog
from agent.recommend.collaborative import fit_ease
from agent.recommend.dense import profile_query_text
from agent.recommend.filters import load_item_meta
from agent.recommend.popularity import fit_popularity
from agent.recommend.rerank import RerankRequest, prepare_rerank
from agent.recommend.scored import ScoreRequest, prepare_scored
from agent.runtime.label_probe import LABELS, check_labels, probe_for
from agent.schemas import Item
from evals.cache import JsonlCache
from evals.llm import LLMStages, ProfileResult, RerankResult
from evals.llm_evidence import TrainingLLM, test_stage_evidence
from evals.llmrank_reference import INTERACTION_ROWS, reference_candidates
from evals.prepare import EvalContext, Prepared, RunOptions, item_vectors, prepare
from evals.protocols import (
    TOP,
    DefaultPath,
    Protocol,
    ProtocolRecord,
    UserRecord,
    run_full,
    run_llmrank,
    run_two_stage,
)
from evals.ranked import (
    RANKER,
    RANKER_NO_LLM,
    SEQUENTIAL,
    RankerSystem,
    Ranking,
    SequentialSystem,
    TrainingEvidence,
    ablations,
    fit_ranking,
    mode_for,
    ranking_options,
    with_llm_columns,
)
from evals.reasons_stage import ReasonsStage, run_reasons
from evals.sampling import llmrank_candidates
from evals.splits import UserSplit
from evals.systems import (
    CollaborativeSystem,
    DenseSystem,
    FusionSystem,
    PopularitySystem,
    RandomSystem,
    System,
    Vectors,
    history_queries,
)
from evals.timed import Timed

Task = Callable[[str, int], Callable[[], None]]
"""progress(label, total) -> advance(): the CLI shows rich bars, tests pass a no-op."""


def no_progress(label: str, total: int) -> Callable[[], None]:
    return lambda: None


class Runner:
    def __init__(self, ctx: EvalContext, options: RunOptions, progress: Task = no_progress):
        self.ctx = ctx
        self.options = options
        self.progress = progress
        self.stages: LLMStages | None = None
        if ctx.generator is not None and options.use_llm:
            cache = JsonlCache(options.cache_dir / "llm-cache.jsonl")
            probe = probe_for(ctx.generator) if options.rerank_mode == "scored" else None
            self.stages = LLMStages(ctx.generator, cache, probe)
        self.system_seconds: dict[str, dict[str, float]] = {}
        self.ranking: Ranking | None = None
        self.rankers: dict[str, RankerSystem] = {}
        self.training_stages: LLMStages | None = None
        """The LLM stages run for the rankers' training groups (validation events)."""
        self.default: DefaultPath | None = None
        """What `recommend` gives by default, set once the systems are fitted."""
        self.reasons: ReasonsStage | None = None
        """Issue 29: reasons for each user's top K (`--reasons K`; evals/reasons_stage.py)."""

    @property
    def with_llm(self) -> bool:
        return self.stages is not None

    @property
    def reranked(self) -> bool:
        """The LLM re-ranks (without it, `llm-rerank` and `blended` are not reported)."""
        return self.with_llm and self.options.rerank

    def systems(self, prep: Prepared, profiles: dict[str, ProfileResult]) -> dict[str, System]:
        s = self.ctx.settings
        started = time.perf_counter()
        ease = fit_ease(prep.data.train_pairs, s.collaborative_lambda, s.collaborative_max_items)
        popularity = fit_popularity(prep.data.train_events, s.popularity_half_life_days)
        prep.timings["fit_s"] = round(time.perf_counter() - started, 3)
        ids, vectors = item_vectors(self.ctx.index, self.ctx.embedder)
        splits = {u: prep.data.splits[u] for u in prep.users}
        found: dict[str, System] = {
            "random": RandomSystem(prep.catalog, self.options.seed),
            "popularity": PopularitySystem(popularity),
            "collaborative": CollaborativeSystem(ease),
            "dense-history": DenseSystem("dense-history", ids, vectors,
                                         history_queries(splits, ids, vectors)),
        }  # fmt: skip
        found["fusion-history"] = self.fusion("fusion-history", found, found["dense-history"])
        if self.with_llm:
            dense = DenseSystem("dense-profile", ids, vectors, self.profile_queries(profiles))
            found["dense-profile"] = dense
            found["fusion"] = self.fusion("fusion", found, dense)
        if self.options.rank:
            found |= self.ranked_systems(prep, (ids, vectors))
        return found

    def ranked_systems(
        self, prep: Prepared, vectors: tuple[list[str], Vectors]
    ) -> dict[str, System]:
        """The sequential retriever and the rankers, trained one stage before this one."""
        started = time.perf_counter()
        names = [RANKER_NO_LLM]
        if self.with_llm:  # and one ranker per LLM column left out: each column's gain
            names += [RANKER, *ablations(self.options.label_scores)]
        modes = [mode_for(p) for p in dict.fromkeys(self.options.protocols)]
        self.ranking = fit_ranking(
            prep.histories, Catalog.from_meta(load_item_meta(self.ctx.record)),
            self.options.stage.held_out, names, list(dict.fromkeys(modes)),
            ranking_options(self.ctx.settings, self.options.seed), vectors,
            self.training_evidence(prep),
        )  # fmt: skip
        prep.timings["rank_fit_s"] = round(time.perf_counter() - started, 3)
        found: dict[str, System] = {SEQUENTIAL: SequentialSystem(self.ranking)}
        for name in names:
            found[name] = self.rankers[name] = RankerSystem(name, self.ranking)
        return found

    def training_evidence(self, prep: Prepared) -> TrainingEvidence | None:
        """The LLM columns for the rankers' training groups of the eval's users (llmrank only:
        its sampled groups are what the scored re-rank can label). Without the re-rank
        (`--no-rerank`) or in generate mode, the profile columns alone."""
        if self.stages is None:
            return None
        if Protocol.LLMRANK not in self.options.protocols:
            return None
        s = self.ctx.settings
        profiler = Profiler(s, self.ctx.record, SemanticJudge(self.ctx.embedder))
        # same cache and server, own counters: the report's cost keeps the two apart
        self.training_stages = LLMStages(self.stages.generator, self.stages.cache,
                                         self.stages.probe)  # fmt: skip
        make = TrainingLLM(
            profiler, self.training_stages, lambda ids: self.catalog_items(ids, prep),
            s.eval_history_cap, self.options.shuffles, s.rerank_history_events,
            self.options.seed, s.rerank_label_debias, self.progress, self.ctx.embedder.embed,
            rerank=self.options.label_scores,
        )  # fmt: skip
        return TrainingEvidence(frozenset(prep.users), make)

    def catalog_items(self, ids: list[str], prep: Prepared) -> dict[str, Item]:
        for i in ids:
            if i not in prep.items and (item := self.ctx.record.get_item(i)) is not None:
                prep.items[i] = item
        return {i: prep.items[i] for i in ids if i in prep.items}

    def fusion(self, name: str, found: dict[str, System], dense: System) -> FusionSystem:
        s = self.ctx.settings
        return FusionSystem(
            name,
            {"dense": dense, "collaborative": found["collaborative"],
             "popularity": found["popularity"]},
            {"dense": s.fusion_weight_dense, "collaborative": s.fusion_weight_collaborative,
             "popularity": s.fusion_weight_popularity},
            s.fusion_rrf_k,
            s.retrieve_depth,
        )  # fmt: skip

    def profile_queries(self, profiles: dict[str, ProfileResult]) -> dict[str, Vectors]:
        made = {u: r.profile for u, r in profiles.items() if r.profile is not None}
        if not made:
            return {}
        users = list(made)
        vectors = self.ctx.embedder.embed([profile_query_text(made[u]) for u in users])
        return {u: vectors[i] for i, u in enumerate(users)}

    def default_path(self) -> DefaultPath | None:
        """`recommend`'s default order as this run can rebuild it: the ranker's when rankers
        were fitted (`ranker` if it was trained with the LLM columns, else `ranker-no-llm`),
        else the profile fusion with the LLM rank blended in at the weight `recommend` would
        use (None without the LLM: `recommend` needs a profile)."""
        llm_trained = self.ranking is not None and bool(self.ranking.llm_alone)
        if RANKER in self.rankers and llm_trained:
            return DefaultPath(system=RANKER)
        if RANKER_NO_LLM in self.rankers:
            return DefaultPath(system=RANKER_NO_LLM)
        if not self.with_llm or self.ctx.generator is None:
            return None
        if self.options.default_blend is not None:
            return DefaultPath(system=self.fusion_name, weight=self.options.default_blend,
                               weight_from="option")  # fmt: skip
        if not self.options.rerank:  # no LLM ranks to blend in
            return DefaultPath(system=self.fusion_name, weight_from="no re-rank in this run")
        from agent.recommend.llm_rerank import llm_weight

        weight, source = llm_weight(self.ctx.settings, self.ctx.generator.model_name,
                                    self.options.rerank_mode)  # fmt: skip
        return DefaultPath(system=self.fusion_name, weight=weight, weight_from=source)

    @property
    def fusion_name(self) -> str:
        return "fusion" if self.with_llm else "fusion-history"

    # -- LLM stages --------------------------------------------------------------------------

    def profiles(self, prep: Prepared) -> dict[str, ProfileResult]:
        if self.stages is None:
            return {}
        profiler = Profiler(self.ctx.settings, self.ctx.record, SemanticJudge(self.ctx.embedder))
        requests = {u: profiler.prepare_full(u, list(prep.data.splits[u].history))
                    for u in prep.users}  # fmt: skip
        advance = self.progress("profiles (training prefix)", len(requests))
        return self.stages.profiles(profiler, requests, advance)

    def rerank_request(
        self, split: UserSplit, profile: ProfileResult | None, shown: list[str], prep: Prepared
    ) -> RerankRequest | ScoreRequest | None:
        if profile is None or profile.profile is None:
            return None
        s = self.ctx.settings
        items = self.catalog_items([*shown, *(e.item_id for e in split.history)], prep)
        if self.options.rerank_mode == "scored":
            return prepare_scored(
                split.user_id, profile.profile, list(split.history), items, shown,
                shuffles=self.options.shuffles, history_events=s.rerank_history_events,
                seed=self.options.seed, label_debias=s.rerank_label_debias,
            )  # fmt: skip
        return prepare_rerank(
            split.user_id, profile.profile, list(split.history), items, shown,
            picks=min(s.eval_rerank_picks, len(shown)), shuffles=self.options.shuffles,
            history_events=s.rerank_history_events, tokens_per_pick=s.rerank_tokens_per_pick,
            reask_repeats=s.rerank_reask_repeats, seed=self.options.seed,
        )  # fmt: skip

    def reranks(
        self, label: str, shown: dict[str, list[str]], prep: Prepared,
        profiles: dict[str, ProfileResult],
    ) -> dict[str, RerankResult]:  # fmt: skip
        if self.stages is None or self.ctx.generator is None or not self.options.rerank:
            return {}
        scored: dict[str, ScoreRequest] = {}
        generated: dict[str, RerankRequest] = {}
        for user_id, candidates in shown.items():
            split = prep.data.splits[user_id]
            request = self.rerank_request(split, profiles.get(user_id), candidates, prep)
            if isinstance(request, ScoreRequest):
                scored[user_id] = request
            elif request is not None:
                generated[user_id] = request
        mode = self.options.rerank_mode
        advance = self.progress(f"re-rank ({label}, {mode})", len(scored) + len(generated))
        if scored:
            widest = max(len(r.candidates) for r in scored.values())
            check_labels(self.ctx.generator, LABELS[:widest])
            return self.stages.scored(scored, advance)
        return self.stages.reranks(generated, advance)

    # -- protocols ---------------------------------------------------------------------------

    def timed_systems(self, protocol: Protocol, systems: dict[str, System]) -> dict[str, System]:
        """The same systems, with the wall time of each one's calls added up per protocol."""
        seconds = self.system_seconds.setdefault(protocol.value, {})
        return {name: Timed(system, seconds) for name, system in systems.items()}

    def run_protocol(
        self, protocol: Protocol, prep: Prepared, systems: dict[str, System],
        profiles: dict[str, ProfileResult],
    ) -> dict[str, ProtocolRecord]:  # fmt: skip
        timed = self.timed_systems(protocol, systems)
        splits = {u: prep.data.splits[u] for u in prep.users}
        weight, s = self.options.blend, self.ctx.settings
        if protocol is Protocol.FULL:
            return {u: run_full(split, timed) for u, split in splits.items()}
        if protocol.sampled:  # llmrank, or llmrank-ref (LLMRank's own lists)
            for ranker in self.rankers.values():  # the ranker trained on lists drawn this way
                ranker.sampled = mode_for(protocol)
            shown = (
                {u: llmrank_candidates(split, prep.catalog, s.eval_candidates, self.options.seed)
                 for u, split in splits.items()}
                if protocol is Protocol.LLMRANK
                else reference_candidates(self.ctx.record.conn.execute(INTERACTION_ROWS), splits,
                                          self.options.seed, s.eval_candidates)
            )  # fmt: skip
            reranks = self.reranks(protocol.value, shown, prep, profiles)
            if RANKER in self.rankers:
                evidence = test_stage_evidence(profiles, reranks, self.ctx.embedder.embed)
                for name, ranker in self.rankers.items():
                    if with_llm_columns(name):
                        ranker.evidence = evidence
            return {
                u: run_llmrank(split, shown[u], timed, self.fusion_name, reranks.get(u), weight,
                               self.reranked, self.default, protocol)
                for u, split in splits.items()
            }  # fmt: skip
        fusion = timed[self.fusion_name]
        retrieved = {u: [h.item_id for h in fusion.top(split, TOP)] for u, split in splits.items()}
        reranks = self.reranks("two-stage", {u: r for u, r in retrieved.items() if r}, prep,
                               profiles)  # fmt: skip
        return {
            u: run_two_stage(split, retrieved[u], self.fusion_name, reranks.get(u), weight,
                             self.reranked)
            for u, split in splits.items()
        }  # fmt: skip

    def run(self) -> tuple[Prepared, list[UserRecord]]:
        prep = prepare(self.ctx, self.options)
        profiles = self.profiles(prep)
        systems = self.systems(prep, profiles)
        self.default = self.default_path()
        by_protocol = {p: self.run_protocol(p, prep, systems, profiles)
                       for p in self.options.protocols}  # fmt: skip
        self.reasons = run_reasons(self, prep, systems, profiles)
        records = [
            UserRecord(
                user_id=u,
                stage=self.options.stage.value,
                target=prep.data.splits[u].target,
                history_ids=[e.item_id for e in prep.data.splits[u].history],
                profile=profiles.get(u),
                protocols={p.value: by_protocol[p][u] for p in self.options.protocols},
            )
            for u in prep.users
        ]
        return prep, records


def run_id(options: RunOptions, users: int) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    protocols = "+".join(p.value for p in options.protocols)
    return f"{stamp}-{options.stage.value}-{protocols}-{users}u-s{options.seed}"
