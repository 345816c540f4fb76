"""From a user in the record to a validated, grounded `UserProfile`.

`Profiler.prepare_*` builds one request (prompt, a draft schema whose evidence ids are limited
to the user's history, and everything needed to check the reply); `Profiler.finish` turns the
model's draft into the stored profile. Batch orchestration is in `agent.profiles.batch`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.config import Settings
from agent.profiles.claims import check_claims, drop_contradicted
from agent.profiles.context import facts_text, history_context, taste_text
from agent.profiles.copying import copies, prompt_ngrams
from agent.profiles.edits import load_edits, reapply
from agent.profiles.facts import compute_facts, history_hash
from agent.profiles.grounding import SemanticJudge, TopicJudge, ground, ground_cold_start
from agent.profiles.groups import grouped_context
from agent.profiles.naming import computed_intent, computed_summary, settle_topics
from agent.profiles.scrub import scrub_user_text
from agent.profiles.sentiment import RatingScale, Side, sides_of
from agent.prompts import PromptTemplate, RenderedPrompt, load_prompt
from agent.runtime.structured import Generated
from agent.schemas import Interaction, Item
from agent.schemas.profile import (
    MAX_INTERESTS,
    SELF_DESCRIPTION,
    ComputedFacts,
    Confidence,
    Grounding,
    GroupedDraft,
    Interest,
    LinedDraft,
    ProfileDraft,
    ProfileKind,
    Provenance,
    UserProfile,
    cited_ids,
    draft_schema,
    grouped_ids,
)
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore

FEW_EVENTS = 5
"""Below this many events a profile is low confidence."""
MANY_EVENTS = 30
"""From this many events a well-grounded profile is high confidence."""
WELL_GROUNDED = 0.5
"""Below this grounding score a profile loses one confidence level."""
COLD_START_TEXT_CHARS = 1000


class UnknownUserError(LookupError):
    """The user has no events in the record (and no text for a cold start)."""


@dataclass
class ProfileRequest:
    user_id: str
    kind: ProfileKind
    prompt: RenderedPrompt
    schema: type[ProfileDraft]
    facts: ComputedFacts
    history_hash: str
    history_events: int
    version: int
    history_ids: set[str] = field(default_factory=set)
    items: dict[str, Item] = field(default_factory=dict)
    text: str | None = None
    line_ids: list[str] | None = None
    """For a line-citing prompt: the item id of each line shown (line 1 first)."""
    groups: dict[str, list[str]] | None = None
    """For a grouped prompt: group label -> the item ids it stands for, strongest first."""
    group_categories: dict[str, str] = field(default_factory=dict)
    """For a grouped prompt: group label -> the category the group is built around."""
    sides: dict[str, Side] = field(default_factory=dict)
    """Item id -> liked/disliked (`profiles.sentiment`): evidence on the wrong side is removed."""
    ratings: dict[str, float] = field(default_factory=dict)
    """Item id -> the user's last rating of it: what the claim check holds claims to."""


class Profiler:
    def __init__(
        self, settings: Settings, record: RecordStore, judge: TopicJudge | None = None
    ) -> None:
        """`judge` decides whether a topic is supported by its evidence: pass a
        `SemanticJudge` (embedding similarity) where an embedder is at hand; without one,
        word matching only."""
        self.settings = settings
        self.record = record
        self.judge = judge
        self.profiles = ProfileStore(record)
        self._newest: datetime | None = None

    def newest_event(self) -> datetime | None:
        """The latest event in the store: 'recency' is measured against it, so that old
        datasets (MovieLens 1998) read the same today as when they were collected."""
        if self._newest is None:
            row = self.record.conn.execute("SELECT max(ts_ms) FROM interactions").fetchone()
            self._newest = datetime.fromtimestamp(row[0] / 1000, tz=UTC) if row[0] else None
        return self._newest

    def history(self, user_id: str) -> list[Interaction]:
        """The whole history: facts and the history hash cover all of it."""
        return self.record.history(user_id)

    def recent(self, history: list[Interaction]) -> list[Interaction]:
        """The events a prompt may draw lines from."""
        return history[-self.settings.profile_history_events :]

    def items_of(self, history: list[Interaction]) -> dict[str, Item]:
        found = {}
        for item_id in dict.fromkeys(e.item_id for e in history):
            item = self.record.get_item(item_id)
            if item is not None:
                found[item_id] = item
        return found

    def prepare_full(
        self, user_id: str, history: list[Interaction] | None = None
    ) -> ProfileRequest:
        history = self.history(user_id) if history is None else history
        if not history:
            raise UnknownUserError(
                f"user {user_id} has no events: ingest some, or give --text for a cold start"
            )
        items = self.items_of(history)
        facts = compute_facts(history, items, self.newest_event())
        template = load_prompt("profile", self.settings.profile_prompt_version)
        line_ids: list[str] | None = None
        groups: dict[str, list[str]] | None = None
        categories: dict[str, str] = {}
        schema: type[ProfileDraft]
        if template.cites == "groups":
            prompt, groups, categories = self.grouped_prompt(template, history, items, facts)
            schema = GroupedDraft
        else:
            prompt, line_ids, schema = self.lined_prompt(template, history, items, facts)
        return ProfileRequest(
            user_id=user_id,
            kind=ProfileKind.FULL,
            prompt=prompt,
            schema=schema,
            line_ids=line_ids,
            groups=groups,
            group_categories=categories,
            sides=sides_of(history),
            ratings=ratings_of(history),
            facts=facts,
            history_hash=history_hash(history),
            history_events=len(history),
            version=self.profiles.latest_version(user_id) + 1,
            history_ids={e.item_id for e in history},
            items=items,
        )

    def grouped_prompt(
        self,
        template: PromptTemplate,
        history: list[Interaction],
        items: dict[str, Item],
        facts: ComputedFacts,
    ) -> tuple[RenderedPrompt, dict[str, list[str]], dict[str, str]]:
        """Liked and disliked items in named groups (profile v5+): the prompt, each group's
        item ids and each group's category."""
        budget = self.settings.profile_history_tokens
        scale = RatingScale.of(history)
        context = grouped_context(
            self.recent(history), items, facts.category_ratings, budget, scale
        )
        prompt = template.render(
            activity=facts_text(facts, categories=False),
            taste=taste_text(facts, categories=False),
            liked_label=scale.describe("liked"),
            disliked_label=scale.describe("disliked"),
            liked_lines=context.block("liked"),
            disliked_lines=context.block("disliked"),
            liked_total=context.liked_total,
            disliked_total=context.disliked_total,
        )
        return prompt, context.groups(), context.categories()

    def lined_prompt(
        self,
        template: PromptTemplate,
        history: list[Interaction],
        items: dict[str, Item],
        facts: ComputedFacts,
    ) -> tuple[RenderedPrompt, list[str] | None, type[ProfileDraft]]:
        """One list of lines, cited by number (v4) or by item id (v1-v3)."""
        numbered = template.cites == "lines"
        budget = self.settings.profile_history_tokens
        context = history_context(self.recent(history), items, facts, budget, numbered)
        prompt = template.render(
            facts=facts_text(facts),
            activity=facts_text(facts, categories=False),
            lines=context.lines,
            shown=context.shown,
            total=context.total,
        )
        if numbered:
            return prompt, context.shown_ids, LinedDraft
        distinct = len(set(context.shown_ids))
        limit = min(MAX_INTERESTS, distinct)
        return prompt, None, draft_schema(context.shown_ids, max_interests=limit)

    def prepare_update(self, user_id: str, previous: UserProfile) -> ProfileRequest:
        """Previous profile plus the events newer than it; a full profile when the history
        changed without newer events (edits or back-dated events)."""
        history = self.history(user_id)
        cutoff = previous.facts.last_event
        new_events = [e for e in history if cutoff is None or e.timestamp > cutoff]
        if not new_events:
            return self.prepare_full(user_id, history)
        items = self.items_of(history)
        facts = compute_facts(history, items, self.newest_event())
        budget = self.settings.profile_history_tokens
        context = history_context(self.recent(new_events), items, facts, budget)
        kept_ids = [i for p in (*previous.interests, *previous.dislikes) for i in p.evidence]
        allowed = [i for i in kept_ids if i != SELF_DESCRIPTION] + context.shown_ids
        prompt = load_prompt("profile_update").render(
            previous=previous_text(previous),
            facts=facts_text(facts),
            activity=facts_text(facts, categories=False),
            lines=context.lines,
            shown=context.shown,
            total=context.total,
        )
        return ProfileRequest(
            user_id=user_id,
            kind=ProfileKind.UPDATE,
            prompt=prompt,
            schema=draft_schema(allowed, max_interests=min(MAX_INTERESTS, len(set(allowed)))),
            facts=facts,
            history_hash=history_hash(history),
            history_events=len(history),
            version=previous.provenance.version + 1,
            history_ids={e.item_id for e in history},
            items=items,
            sides=sides_of(history),
            ratings=ratings_of(history),
        )

    def prepare_cold_start(self, user_id: str, text: str) -> ProfileRequest:
        clean = scrub_user_text(text)[:COLD_START_TEXT_CHARS]  # what the user wrote
        if not clean:
            raise ValueError("--text is empty after removing personal data")
        history = self.history(user_id)
        items = self.items_of(history)
        return ProfileRequest(
            user_id=user_id,
            kind=ProfileKind.COLD_START,
            prompt=load_prompt("profile_cold_start").render(text=clean),
            schema=draft_schema([SELF_DESCRIPTION], max_interests=3),
            facts=compute_facts(history, items, self.newest_event()),
            history_hash=history_hash(history),
            history_events=len(history),
            version=self.profiles.latest_version(user_id) + 1,
            text=clean,
        )

    def finish(self, request: ProfileRequest, result: Generated[ProfileDraft]) -> UserProfile:
        """Ground the draft and add facts, a computed confidence and provenance; then put the
        user's own edits back on it (`profiles.edits`: an update never overwrites them)."""
        profile = self.written(request, result)
        return reapply(profile, load_edits(self.profiles, request.user_id))

    def warm(self, topics: list[str], request: ProfileRequest) -> None:
        """One embedding batch for the checks that follow (`SemanticJudge.warm`)."""
        if isinstance(self.judge, SemanticJudge):
            self.judge.warm(topics, request.items.values())

    def written(self, request: ProfileRequest, result: Generated[ProfileDraft]) -> UserProfile:
        """The profile as the model wrote it, after the checks."""
        named_twice = 0
        intent, summary = result.value.intent.strip(), result.value.summary.strip()
        if isinstance(result.value, GroupedDraft):
            draft, named_twice = grouped_ids(result.value, request.groups or {})
        elif request.line_ids is not None:
            draft = cited_ids(result.value, request.line_ids)
        else:
            draft = result.value
        if request.kind is ProfileKind.COLD_START:
            semantic = self.judge if isinstance(self.judge, SemanticJudge) else None
            interests, grounding = ground_cold_start(draft, request.text or "", semantic)
            dislikes: list[Interest] = []
        else:
            self.warm([e.topic for e in (*draft.interests, *draft.dislikes)], request)
            interests, dislikes, grounding = ground(
                draft, request.history_ids, request.items, self.judge, request.sides
            )
            grounding.dropped_interests += named_twice
            grounding.claims = check_claims(
                interests, dislikes, request.ratings, request.items, self.judge
            )
            if request.groups is not None:
                interests, dislikes = self.settle(request, interests, dislikes, grounding)
                intent, summary = self.own_words(request, draft, interests, grounding)
            self.warm([e.topic for e in (*interests, *dislikes)], request)
            interests, dislikes, grounding.contradicted_claims = drop_contradicted(
                interests, dislikes, request.ratings, request.items, self.judge
            )
        meta = result.meta
        return UserProfile(
            user_id=request.user_id,
            interests=interests,
            dislikes=dislikes,
            sentiment=draft.sentiment,
            intent=intent,
            summary=summary,
            confidence=confidence(request.kind, request.facts, grounding),
            facts=request.facts,
            grounding=grounding,
            provenance=Provenance(
                model=meta.model,
                prompt=meta.prompt,
                history_hash=request.history_hash,
                history_events=request.history_events,
                created_at=datetime.now(UTC),
                version=request.version,
                kind=request.kind,
                tokens_in=meta.tokens_in,
                tokens_out=meta.tokens_out,
                attempts=meta.attempts,
                reasks=meta.reasks,
                latency_s=round(meta.latency_s, 3),
            ),
        )

    def settle(
        self,
        request: ProfileRequest,
        interests: list[Interest],
        dislikes: list[Interest],
        grounding: Grounding,
    ) -> tuple[list[Interest], list[Interest]]:
        """Grouped profiles: the model's topic where it passes the checks, else a computed
        one (`profiles.naming`)."""
        category_of = {i: request.group_categories[g] for g, ids in (request.groups or {}).items()
                       for i in ids if g in request.group_categories}  # fmt: skip
        renamed = 0
        settled: list[list[Interest]] = []
        for liked, entries in ((True, interests), (False, dislikes)):
            kept, count = settle_topics(entries, liked, category_of, request.ratings,
                                        request.items, self.judge)  # fmt: skip
            settled.append(kept)
            renamed += count
        grounding.renamed_topics = renamed
        return settled[0], settled[1]

    def own_words(
        self,
        request: ProfileRequest,
        draft: ProfileDraft,
        interests: list[Interest],
        grounding: Grounding,
    ) -> tuple[str, str]:
        """Intent and summary, each replaced by a computed one when it copies a 4-word
        sequence of the prompt's instructions or example (`profiles.copying`)."""
        grams = prompt_ngrams(request.prompt.ref.id, request.prompt.ref.version)
        intent, summary = draft.intent.strip(), draft.summary.strip()
        if copies(intent, grams) and (made := computed_intent(interests, request.items)):
            intent, grounding.rewritten_texts = made, grounding.rewritten_texts + 1
        if copies(summary, grams) and (said := computed_summary(request.facts)):
            summary, grounding.rewritten_texts = said, grounding.rewritten_texts + 1
        return intent, summary


def confidence(kind: ProfileKind, facts: ComputedFacts, grounding: Grounding) -> Confidence:
    """How far a profile can be trusted, from facts rather than the model's word (asked for
    it, the default model said "low" for 119 of 121 users with up to hundreds of events):
    low under 5 events and for a cold start, medium under 30, else high; one level lower when
    the grounding score is under 0.5 (fewer than half of the interests and dislikes have a
    topic that their evidence supports, see `agent.profiles.grounding`)."""
    if kind is ProfileKind.COLD_START or facts.event_count < FEW_EVENTS:
        return "low"
    levels: list[Confidence] = ["low", "medium", "high"]
    level = 1 if facts.event_count < MANY_EVENTS else 2
    return levels[level - 1 if grounding.score < WELL_GROUNDED else level]


def ratings_of(history: list[Interaction]) -> dict[str, float]:
    """Item id -> the user's last rating of it."""
    return {e.item_id: e.rating for e in history if e.rating is not None}


def previous_text(profile: UserProfile) -> str:
    """The previous profile as the update prompt shows it: the LLM-written part only (the
    user's own entries are put back after the update, `profiles.edits`)."""
    keep = {"interests", "dislikes", "sentiment", "intent", "summary"}
    data = profile.model_dump(mode="json", include=keep)
    for side in ("interests", "dislikes"):
        data[side] = [{k: v for k, v in e.items() if k != "source"}
                      for e in data[side] if e.get("source", "model") == "model"]  # fmt: skip
    return json.dumps(data, separators=(",", ":"))
