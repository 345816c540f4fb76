"""Why an item is or is not recommended to a user, for any item in the catalog.

The facts are computed, not written by the LLM: whether the user already has the item (and
what they did with it), which filter excludes it, where each retriever ranks it among the items
the user could be recommended, its fused rank, and what drove it (`agent.reasons.evidence`,
the same evidence `recommend`'s reasons cite). The LLM only puts those facts into words,
citing history items by id (an enum of the history shown, checked again after decoding)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from agent.prompts import PromptRef, load_prompt
from agent.reasons.evidence import ItemEvidence
from agent.recommend.candidates import Allow, Scored, Source
from agent.recommend.context import history_lines, item_line, profile_text, untrusted
from agent.recommend.dense import profile_query_text
from agent.recommend.filters import ItemFilter
from agent.recommend.reasons import retrieval_reason
from agent.recommend.service import Recommender, Retrieval
from agent.recommend.signals import NEGATIVE, feedback_label
from agent.runtime.structured import StructuredGenerator, StructuredOutputError
from agent.schemas import Interaction, Item
from agent.schemas.text import NonEmpty, clip

DENSE_SCAN = 2000
"""Dense standing is exact for catalogs up to this size; beyond it, 'not in the top 2000'."""
MAX_CITED = 3


class SourceStanding(BaseModel):
    source: str
    rank: int | None
    """Rank among the items this user could be recommended (unseen, passing the filters);
    None when the source does not rank the item at all (or not within what was scanned)."""
    score: float | None
    in_candidates: bool
    """Within the `retrieve_depth` this source contributes to fusion."""


class ExplanationDraft(BaseModel):
    explanation: Annotated[str, NonEmpty, clip(240)] = Field(description="Two short sentences")
    cited: list[str] = Field(default_factory=list, max_length=MAX_CITED)


class RankerFeature(BaseModel):
    feature: str
    value: float | None
    contribution: float
    """Additive share of the learned ranker's score (LightGBM pred_contrib)."""


class Explanation(BaseModel):
    user_id: str
    item_id: str
    title: str
    recommended: bool
    verdict: str
    facts: list[str]
    fused_rank: int | None
    sources: list[SourceStanding]
    reason: str
    """The retrieval-side reason (no LLM)."""
    cited: list[str]
    llm_explanation: str | None = None
    llm_cited: list[str] = Field(default_factory=list)
    prompt: PromptRef | None = None
    llm_error: str | None = None
    ranker_features: list[RankerFeature] = Field(default_factory=list)
    """With a learned ranker: the features that moved the item's score most."""
    evidence: ItemEvidence | None = None
    """What drove the item for this user: its EASE drivers, facts and matched interests."""


def explanation_schema(history_ids: Sequence[str]) -> type[ExplanationDraft]:
    shown = tuple(dict.fromkeys(history_ids))
    if not shown:
        cited: Any = (list[str], Field(default_factory=list, max_length=0))
    else:
        history_id: Any = Literal[shown]
        cited = (list[history_id], Field(default_factory=list, max_length=MAX_CITED))
    return create_model("ExplanationDraft", __base__=ExplanationDraft, cited=cited)


def standing(
    ranked: Sequence[Scored], item_id: str, exclude: set[str], allow: Allow | None
) -> tuple[int | None, float | None]:
    """(rank, score) of `item_id` among the eligible items of a ranked list, counting only the
    eligible items ahead of it, so a seen or filtered item gets the place it would have."""
    ahead = 0
    for hit in ranked:
        if hit.item_id == item_id:
            return ahead + 1, hit.score
        if hit.item_id not in exclude and (allow is None or allow(hit.item_id)):
            ahead += 1
    return None, None


def seen_facts(item: Item, history: Sequence[Interaction]) -> list[str]:
    facts = []
    for event in history:
        if event.item_id != item.item_id:
            continue
        day = event.timestamp.date().isoformat()
        label = feedback_label(event)
        if event.rating is not None:
            facts.append(f"the user already rated it {event.rating:g} on {day}")
        elif label is not None:
            facts.append(f"the user gave feedback '{label}' on it on {day}")
        else:
            facts.append(f"the user already has it ({event.event_type.value} on {day})")
    return facts


class Explainer:
    def __init__(self, recommender: Recommender) -> None:
        self.rec = recommender

    def source_standings(
        self, retrieval: Retrieval, item_id: str, allow: Allow | None
    ) -> list[SourceStanding]:
        exclude = retrieval.exclude
        depth = self.rec.settings.retrieve_depth
        lists = {
            Source.DENSE: self.dense_ranking(retrieval),
            Source.COLLABORATIVE: self.rec.collaborative().ranked(retrieval.positive),
            Source.POPULARITY: self.rec.popularity().ranked,
        }
        out = []
        for source, ranked in lists.items():
            rank, score = standing(ranked, item_id, exclude, allow)
            eligible = item_id not in exclude and (allow is None or allow(item_id))
            out.append(
                SourceStanding(
                    source=source,
                    rank=rank,
                    score=score,
                    in_candidates=rank is not None and rank <= depth and eligible,
                )
            )
        return out

    def dense_ranking(self, retrieval: Retrieval) -> list[Scored]:
        """Unfiltered nearest items to the profile (filters are applied by `standing`)."""
        dense = self.rec.dense
        n = min(self.rec.catalog_size(), DENSE_SCAN)
        return dense.nearest(dense.embedder.embed([profile_query_text(retrieval.profile)])[0], n)

    def explain(
        self,
        user_id: str,
        item_id: str,
        k: int = 10,
        filters: ItemFilter | None = None,
        generator: StructuredGenerator | None = None,
    ) -> Explanation:
        item = self.rec.item(item_id)
        filters = filters or ItemFilter()
        retrieval = self.rec.retrieve(user_id, filters)
        allow = self.rec.allow(filters)
        facts = seen_facts(item, retrieval.history)
        failing = filters.failing(self.rec.item_meta.get(item_id))
        facts += [f"excluded by the filter {f}" for f in failing]
        fused_rank = next(
            (n for n, f in enumerate(retrieval.fused, start=1) if f.item_id == item_id), None
        )
        sources = self.source_standings(retrieval, item_id, allow)
        facts += [source_fact(s) for s in sources]
        verdict, recommended = self.verdict(retrieval, item_id, fused_rank, failing, k)
        hits = next((f.hits for f in retrieval.fused if f.item_id == item_id), {})
        history_items = self.rec.items([e.item_id for e in retrieval.history])
        titles = {i: it.title for i, it in history_items.items()}
        evidence = self.rec.evidence(retrieval, [item_id], {**history_items, item_id: item})
        found = evidence.get(item_id)
        facts += driver_facts(found)
        followed = self.rec.followed(retrieval, item_id, titles)
        reason = retrieval_reason(item, hits, retrieval.profile, found, titles,
                                  self.rec.popularity(), followed=followed)  # fmt: skip
        result = Explanation(
            user_id=user_id,
            item_id=item_id,
            title=item.title,
            recommended=recommended,
            verdict=verdict,
            facts=facts,
            fused_rank=fused_rank,
            sources=sources,
            reason=reason.text,
            cited=reason.cited,
            evidence=found,
        )
        self.add_ranker_features(result, retrieval)
        if generator is not None:
            self.write(result, retrieval, item, history_items, generator)
        return result

    def add_ranker_features(self, result: Explanation, retrieval: Retrieval) -> None:
        """The learned ranker's top feature contributions for the item, as data and a fact."""
        ranker = self.rec.ranker()
        if ranker is None:
            return
        evidence = self.rec.profile_evidence(ranker, retrieval.user_id, retrieval.profile)
        found = ranker.contributions(retrieval.user_id, retrieval.history, [result.item_id],
                                     evidence=evidence)  # fmt: skip
        moved = found.get(result.item_id, [])
        result.ranker_features = [
            RankerFeature(feature=c.feature, value=c.value, contribution=c.contribution)
            for c in moved
        ]
        if moved:
            parts = ", ".join(
                f"{c.feature}={'missing' if c.value is None else f'{c.value:g}'} "
                f"({c.contribution:+.3f})"
                for c in moved
            )
            result.facts.append(f"the learned ranker's score was moved most by {parts}")

    def verdict(
        self,
        retrieval: Retrieval,
        item_id: str,
        fused_rank: int | None,
        failing: list[str],
        k: int,
    ) -> tuple[str, bool]:
        top_n = self.rec.settings.rerank_top_n
        labels = {feedback_label(e) for e in retrieval.history if e.item_id == item_id}
        if labels & NEGATIVE:
            return "not recommended: the user rejected it (feedback)", False
        if item_id in retrieval.exclude:
            return "not recommended: the user already has it", False
        if failing:
            return "not recommended: the filters exclude it", False
        if fused_rank is None:
            return "not recommended: no retriever ranks it among its top candidates", False
        ordering = self.rec.ordering()
        by = "the learned ranker" if ordering.ranker else "retrieval"
        if fused_rank <= k:
            return f"recommended: rank {fused_rank} by {by} (top {k})", True
        if fused_rank <= top_n and ordering.uses_llm:  # only a blended LLM rank can move it
            return (
                f"a re-rank candidate: retrieval rank {fused_rank}, outside the top {k} unless "
                f"the LLM re-rank of the top {top_n} moves it up",
                False,
            )
        return f"not recommended: rank {fused_rank} by {by}, below the top {k}", False

    def write(
        self,
        result: Explanation,
        retrieval: Retrieval,
        item: Item,
        history_items: dict[str, Item],
        generator: StructuredGenerator,
    ) -> None:
        """Add the LLM's wording; a reply that stays invalid is reported, not raised."""
        limit = self.rec.settings.rerank_history_events
        lines, shown = history_lines(retrieval.history, history_items, limit)
        prompt = load_prompt("explain").render(
            profile=profile_text(retrieval.profile),
            history=lines,
            item=item_line(item),
            verdict=result.verdict,
            facts=result.facts + [f"retrieval reason: {result.reason}"],
        )
        allowed = set(shown)

        def check(draft: ExplanationDraft) -> list[str]:
            bad = [c for c in draft.cited if c not in allowed]
            problems = [f"cited: {bad} are not history item ids"] if bad else []
            if not draft.explanation.strip():
                problems.append("explanation: must not be empty")
            return problems

        result.prompt = prompt.ref
        try:
            made = generator.generate(
                prompt,
                explanation_schema(shown),
                max_tokens=self.rec.settings.explain_max_tokens,
                check=check,
            )
        except StructuredOutputError as err:
            result.llm_error = str(err)
            return
        result.llm_explanation = made.value.explanation.strip()
        result.llm_cited = [c for c in dict.fromkeys(made.value.cited) if c in allowed]


def driver_facts(evidence: ItemEvidence | None) -> list[str]:
    """The item's top EASE drivers (and matched interests) as facts."""
    if evidence is None:
        return []
    facts = []
    if evidence.drivers:
        named = ", ".join(f"{untrusted(d.title, 60)} [{d.item_id}] (+{d.contribution:.3g})"
                          for d in evidence.drivers[:MAX_CITED])  # fmt: skip
        facts.append(f"the history items that raised its collaborative score most: {named}")
    if evidence.interests:
        topics = "; ".join(untrusted(t, 40) for t in evidence.interests[:2])
        facts.append(f"profile interests it matches: {topics}")
    return facts


def source_fact(s: SourceStanding) -> str:
    if s.rank is None:
        return f"{s.source}: does not rank it"
    where = "among its candidates" if s.in_candidates else "not among its candidates"
    return f"{s.source}: rank {s.rank} (score {s.score:.3g}), {where}"
