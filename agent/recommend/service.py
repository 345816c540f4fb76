"""`Recommender`: a user's profile and history in, ranked unseen items with reasons out.

retrieve (dense + collaborative + popularity, same filters and exclusions) -> fuse (weighted
RRF) -> the learned ranker's order when one is fitted -> top k, with the LLM's reasons for the
k shown. Without a ranker, the LLM's rank of the top N is blended into the fusion order at the
tuned weight (`llm_rerank.Ordering`); at weight 0 (the default) no re-rank request is sent.

A `Recommender` fits or loads its collaborative and popularity models on first use and keeps
them: it sees the interactions as they were then (commands and benchmarks are short-lived;
a new instance picks up new events)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from agent.config import Settings
from agent.reasons.evidence import ItemEvidence, shown_evidence, user_facts
from agent.reasons.sequence import followed_reason
from agent.recommend.candidates import Allow, Scored, Source
from agent.recommend.collaborative import EaseModel, load_or_fit
from agent.recommend.dense import DenseItems, dense_candidates, profile_query_text
from agent.recommend.filters import ItemFilter, ItemMeta, load_item_meta, parse_filters
from agent.recommend.fusion import fuse
from agent.recommend.popularity import PopularityModel
from agent.recommend.popularity import load_or_fit as load_or_fit_popularity
from agent.recommend.reasons import Phrasing, retrieval_reason
from agent.recommend.results import Recommendation, Recommendations, rerank_summary
from agent.recommend.retrieval import Retrieval
from agent.recommend.signals import interactions_fingerprint, positive_items, seen_items
from agent.recommend.steer import Steering
from agent.schemas import Item
from agent.schemas.profile import UserProfile
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore

if TYPE_CHECKING:  # the re-rank needs openai and LangChain (~1-3 s to import): only when used
    from agent.rank.features import LlmEvidence
    from agent.rank.serve import ServingRanker
    from agent.recommend.llm_rerank import Ordering, WeightFrom
    from agent.recommend.rerank import RerankOutcome, RerankRequest
    from agent.recommend.scored import ScoreRequest
    from agent.runtime.structured import StructuredGenerator
    from agent.store.item_index import ItemIndex


class NoProfileError(LookupError):
    """The user is known but has no profile yet."""


class UnknownUserError(LookupError):
    """Neither events nor a profile for this user."""


class UnknownItemError(LookupError):
    """The item is not in the record."""


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - started


EVIDENCE_KEPT = 256
"""Users whose profile columns a `Recommender` keeps (a batch over thousands stays bounded)."""


class Recommender:
    def __init__(
        self,
        settings: Settings,
        record: RecordStore,
        items: ItemIndex | DenseItems,
        generator: StructuredGenerator | None = None,
        use_ranker: bool = True,
    ) -> None:
        self.settings = settings
        self.record = record
        self.dense = items if isinstance(items, DenseItems) else DenseItems.of(items)
        self.generator = generator
        self.profiles = ProfileStore(record)
        self._meta: dict[str, ItemMeta] | None = None
        self._ease: EaseModel | None = None
        self._popularity: PopularityModel | None = None
        self._catalog_size: int | None = None
        self._ranker: ServingRanker | None = None
        self._ranker_loaded = not use_ranker
        self._weight: tuple[float, WeightFrom] | None = None
        self._evidence: dict[tuple[str, int, str], LlmEvidence] = {}
        self.refitted = False
        """Whether a model (collaborative, popularity) had to be fitted (not loaded) by this
        instance."""

    # -- models and catalog ----------------------------------------------------------------

    @property
    def item_meta(self) -> dict[str, ItemMeta]:
        if self._meta is None:
            self._meta = load_item_meta(self.record)
        return self._meta

    def collaborative(self) -> EaseModel:
        if self._ease is None:
            s = self.settings
            self._ease, refitted = load_or_fit(
                self.record, s.data_dir, s.collaborative_lambda, s.collaborative_max_items
            )
            self.refitted = self.refitted or refitted
        return self._ease

    def popularity(self) -> PopularityModel:
        if self._popularity is None:
            s = self.settings
            self._popularity, refitted = load_or_fit_popularity(
                self.record, s.data_dir, s.popularity_half_life_days
            )
            self.refitted = self.refitted or refitted
        return self._popularity

    def ranker(self) -> ServingRanker | None:
        """The ranker of `personae rank fit`, loaded once; None (warned): fusion orders."""
        if not self._ranker_loaded:
            from agent.rank.serve import load_serving

            fingerprint = interactions_fingerprint(self.record)
            self._ranker = load_serving(self.settings.data_dir, fingerprint)
            self._ranker_loaded = True
        return self._ranker

    def ordering(self) -> Ordering:
        """The ranker's order when one is loaded; else fusion, with the LLM rank blended in at
        the `rerank_blend` setting, else the weight tuned for the generator's model and the
        re-rank mode, else 0 (looked up once per Recommender)."""
        from agent.recommend.llm_rerank import Ordering, llm_weight

        if self.ranker() is not None:
            return Ordering(ranker=True)
        if self._weight is None:
            model = self.generator.model_name if self.generator is not None else None
            self._weight = llm_weight(self.settings, model, self.settings.rerank_mode)
        weight, source = self._weight
        return Ordering(False, weight, source)

    @property
    def index(self) -> ItemIndex:
        """The item index in Chroma, opened on first use (a snapshot may make it unneeded)."""
        return self.dense.index

    def catalog_size(self) -> int:
        if self._catalog_size is None:
            self._catalog_size = self.dense.count()
        return self._catalog_size

    def weights(self) -> dict[str, float]:
        s = self.settings
        return {
            Source.DENSE: s.fusion_weight_dense,
            Source.COLLABORATIVE: s.fusion_weight_collaborative,
            Source.POPULARITY: s.fusion_weight_popularity,
        }

    def categories(self) -> set[str]:
        """Every category name in the catalog."""
        return {c for meta in self.item_meta.values() for c in meta.categories}

    def parse_filters(self, specs: list[str]) -> ItemFilter:
        return parse_filters(specs, self.categories())

    def item(self, item_id: str) -> Item:
        item = self.record.get_item(item_id)
        if item is None:
            raise UnknownItemError(f"no item {item_id!r} in the record")
        return item

    def items(self, ids: list[str]) -> dict[str, Item]:
        found = {}
        for item_id in dict.fromkeys(ids):
            item = self.record.get_item(item_id)
            if item is not None:
                found[item_id] = item
        return found

    def profile_of(self, user_id: str) -> UserProfile:
        profile = self.profiles.get(user_id)
        if profile is not None:
            return profile
        if self.record.get_user(user_id) is None:
            raise UnknownUserError(f"user {user_id!r} is not in the record")
        raise NoProfileError(
            f"user {user_id} has no profile yet: run `personae profile --users {user_id}`"
        )

    # -- retrieval ---------------------------------------------------------------------------

    def allow(self, filters: ItemFilter) -> Allow | None:
        if not filters:
            return None
        meta = self.item_meta
        return lambda item_id: filters.matches(meta.get(item_id))

    def retrieve(
        self, user_id: str, filters: ItemFilter | None = None, depth: int | None = None
    ) -> Retrieval:
        """Candidate lists from every source and their fusion, seen items excluded."""
        depth = depth or self.settings.retrieve_depth
        timings: dict[str, float] = {}
        started = time.perf_counter()
        profile = self.profile_of(user_id)
        steering = Steering.load(self.profiles, profile, self.categories())  # the user's edits
        filters = steering.filters(filters or ItemFilter())  # with their --never categories
        history = self.record.history(user_id)
        exclude = seen_items(history)
        positive = positive_items(history)
        allow = self.allow(filters)
        lists: dict[str, list[Scored]] = {}
        with timed(timings, "dense_s"):
            lists[Source.DENSE] = dense_candidates(
                self.dense,
                profile_query_text(profile),
                depth,
                where=filters.where(),
                allow=allow,
                exclude=exclude,
                catalog_size=self.catalog_size(),
            )
        with timed(timings, "collaborative_s"):
            ease = self.collaborative()
            lists[Source.COLLABORATIVE] = ease.recommend(positive, depth, exclude, allow)
        with timed(timings, "popularity_s"):
            lists[Source.POPULARITY] = self.popularity().top(depth, exclude, allow)
        with timed(timings, "fusion_s"):
            fused = fuse(
                lists,
                self.weights(),
                k=self.settings.fusion_rrf_k,
                exclude=exclude,
                allow=allow,
            )
        with timed(timings, "ranker_load_s"):  # once per Recommender (torch, lightgbm, files)
            ranker = self.ranker()
        if ranker is not None:
            from agent.rank.serve import ranked_fusion

            with timed(timings, "rank_s"):
                evidence = self.profile_evidence(ranker, user_id, profile)
                fused, _ = ranked_fusion(ranker, user_id, history, fused, exclude, allow,
                                         evidence)  # fmt: skip
            fused = steering.reorder_ranked(fused, self.item_meta, self.settings.steer_strength)
        else:  # the user's own dislikes and interests
            fused = steering.reorder(fused, self.item_meta, self.settings.steer_strength)
        timings["retrieve_s"] = time.perf_counter() - started
        return Retrieval(
            user_id, profile, history, exclude, positive, lists, fused, filters, timings
        )

    def profile_evidence(
        self, ranker: ServingRanker, user_id: str, profile: UserProfile | None
    ) -> LlmEvidence | None:
        """The profile columns of a ranker trained with them, from the user's latest profile
        (embedded with the item index's embedder; no LLM call)."""
        if profile is None or not ranker.uses_profile():
            return None
        from agent.rank.profile_training import profile_evidence

        p = profile.provenance
        key = (user_id, p.version, p.created_at.isoformat())  # an edit is a new version
        if key not in self._evidence:  # `recommend` then `explain` embed the profile once
            if len(self._evidence) >= EVIDENCE_KEPT:
                self._evidence.pop(next(iter(self._evidence)))
            self._evidence[key] = profile_evidence({user_id: profile}, self.dense.embedder.embed)[
                user_id
            ]
        return self._evidence[key]

    def followed(
        self, retrieval: Retrieval, item_id: str, titles: Mapping[str, str]
    ) -> Callable[[], tuple[str, list[str]] | None]:
        """The sequence model's reason for the item (`agent.reasons.sequence`), made when
        called: only the items whose reason gets that far pay its forward passes."""
        ranker = self.ranker()
        model = ranker.sources.sequential if ranker is not None else None
        return lambda: followed_reason(model, retrieval.history, retrieval.positive, item_id,
                                       titles)  # fmt: skip

    def evidence(
        self, retrieval: Retrieval, item_ids: list[str], items: dict[str, Item] | None = None
    ) -> dict[str, ItemEvidence]:
        """What drove each item for this user (`agent.reasons.evidence`), by id, in the order
        given: its EASE drivers over the user's positive history, its facts and the profile
        interests it matches. The one source for every reason and explanation."""
        history = [e.item_id for e in retrieval.history]
        items = items if items is not None else self.items(item_ids + history)
        titles = {h: items[h].title for h in history if h in items}
        shown = [i for i in item_ids if i in items]
        facts = user_facts(retrieval.history, items)
        return shown_evidence(self.collaborative(), retrieval.positive, items, shown, titles,
                              profile=retrieval.profile, facts=facts)  # fmt: skip

    # -- recommend ---------------------------------------------------------------------------

    def rerank_request(self, retrieval: Retrieval, k: int) -> ScoreRequest | RerankRequest | None:
        from agent.recommend.llm_rerank import rerank_request

        return rerank_request(self.settings, retrieval, self.items, k)

    def _generator(self) -> StructuredGenerator:
        if self.generator is None:
            raise RuntimeError("re-rank needs an LLM: pass a generator, or rerank=False")
        return self.generator

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        filters: ItemFilter | None = None,
        rerank_with_llm: bool = True,
    ) -> Recommendations:
        """Blocking form of `arecommend`, under `asyncio.run`: not for code inside a running
        event loop (await `arecommend` there). Without the re-rank nothing is awaited, so no
        loop is started for the calls that skip it (chat tools, `--no-rerank`)."""
        if not rerank_with_llm:
            return self.assemble(self.retrieve(user_id, filters), k, None)
        return asyncio.run(self.arecommend(user_id, k, filters))

    async def arecommend(
        self,
        user_id: str,
        k: int = 10,
        filters: ItemFilter | None = None,
        rerank_with_llm: bool = True,
    ) -> Recommendations:
        """Retrieval, then the LLM: the re-rank (its shuffles run concurrently) only when the
        order blends its ranks in (`ordering`), and the reasons for the k items shown."""
        retrieval = self.retrieve(user_id, filters)
        if not rerank_with_llm:
            return self.assemble(retrieval, k, None)
        from agent.recommend.llm_rerank import add_shown_reasons, llm_outcome
        from agent.recommend.rerank import RerankOutcome

        if self.ordering().uses_llm:
            request = self.rerank_request(retrieval, k)
            if request is None:
                return self.assemble(retrieval, k, None)
            with timed(retrieval.timings, "rerank_s"):
                outcome = await llm_outcome(self._generator(), request)
            if outcome.mode == "generate":  # its picks carry their reasons
                return self.assemble(retrieval, k, outcome)
        else:
            outcome = RerankOutcome()  # no LLM ranks: the order is the ranker's or fusion's
        shown = [i for i, _ in self.final_order(retrieval, outcome)[:k]]
        if shown:
            with timed(retrieval.timings, "reasons_s"):
                evidence = self.evidence(retrieval, shown)
                await add_shown_reasons(self.settings, self._generator(), retrieval, self.items,
                                        evidence, self.categories(), outcome)  # fmt: skip
        return self.assemble(retrieval, k, outcome)

    def final_order(
        self, retrieval: Retrieval, outcome: RerankOutcome | None
    ) -> list[tuple[str, float]]:
        """Every fused item with its final score. With a ranker, or at LLM weight 0, or
        without LLM ranks: the fused order (the ranker's when one is loaded) and its scores.
        Else the re-ranked pool blended with retrieval, then the rest in fused order (scored
        0, below every blended score)."""
        ordering = self.ordering()
        if outcome is None or not outcome.llm_ranks or not ordering.uses_llm:
            return [(f.item_id, f.score) for f in retrieval.fused]
        from agent.recommend.rerank import blend

        order = [f.item_id for f in retrieval.fused]
        pool = self.settings.rerank_top_n
        head = blend(order[:pool], outcome.llm_ranks, ordering.weight)
        return head + [(i, 0.0) for i in order[pool:]]

    def assemble(
        self, retrieval: Retrieval, k: int, outcome: RerankOutcome | None
    ) -> Recommendations:
        fused = {f.item_id: f for f in retrieval.fused}
        order = [f.item_id for f in retrieval.fused]
        ordering = self.ordering()
        ranks = outcome.llm_ranks if outcome is not None else {}
        blended = outcome is not None and bool(ranks) and ordering.uses_llm
        chosen = self.final_order(retrieval, outcome)[:k]
        items = self.items([i for i, _ in chosen] + [e.item_id for e in retrieval.history])
        titles = {
            e.item_id: items[e.item_id].title for e in retrieval.history if e.item_id in items
        }
        evidence = self.evidence(retrieval, [i for i, _ in chosen], items)
        popularity = self.popularity()
        phrasing = Phrasing()  # one per list: its retrieval reasons vary (agent.reasons.phrasing)
        results = []
        for rank, (item_id, score) in enumerate(chosen, start=1):
            entry, item = fused[item_id], items[item_id]
            pick = outcome.picks.get(item_id) if outcome is not None else None
            if pick is not None:
                reason, cited, by = pick.reason, pick.cited, "llm"
            else:
                made = retrieval_reason(item, entry.hits, retrieval.profile,
                                        evidence.get(item_id), titles, popularity, phrasing,
                                        self.followed(retrieval, item_id, titles))  # fmt: skip
                reason, cited, by = made.text, made.cited, "retrieval"
            results.append(
                Recommendation(
                    rank=rank,
                    item_id=item_id,
                    title=item.title,
                    year=item.year,
                    categories=list(item.categories),
                    score=score,
                    sources=entry.sources,
                    source_ranks={s: h.rank for s, h in entry.hits.items()},
                    retrieval_rank=order.index(item_id) + 1,
                    llm_rank=ranks.get(item_id),
                    reason=reason,
                    reason_by=by,
                    cited=cited,
                )
            )
        return Recommendations(
            user_id=retrieval.user_id,
            k=k,
            filters=retrieval.filters.specs(),
            reranked=blended,
            ordering=ordering.describe() if blended or ordering.ranker else "fusion",
            profile_version=retrieval.profile.provenance.version,
            items=results,
            rerank=rerank_summary(outcome, ordering) if outcome is not None else None,
            timings={key: round(v, 4) for key, v in retrieval.timings.items()},
        )
