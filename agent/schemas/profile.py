"""User profiles: what the LLM writes (`ProfileDraft`, bounded so small models terminate) and
what personae stores (`UserProfile`: the draft after grounding checks, computed facts that need
no LLM, and provenance)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic.json_schema import SkipJsonSchema

from agent.prompts import PromptRef
from agent.schemas.text import NonEmpty, clip

Topic = Annotated[str, NonEmpty, clip(40)]
Intent = Annotated[str, NonEmpty, clip(120)]
Summary = Annotated[str, NonEmpty, clip(240)]
SentimentLabel = Literal["positive", "neutral", "negative", "mixed"]
EntrySource = Literal["model", "user"]
"""Who made an interest or dislike: the LLM (checked against the history), or the user
through `personae profile edit` (`agent.profiles.edits`: weight 1.0, no evidence, never
checked or dropped by the grounding and claim checks)."""
Confidence = Literal["low", "medium", "high"]

MAX_INTERESTS = 5
MAX_DISLIKES = 3
MAX_EVIDENCE = 4
SELF_DESCRIPTION = "self-description"
"""Evidence id of a cold-start interest: it comes from the user's own text, not an item."""


class Sentiment(BaseModel):
    label: SentimentLabel
    score: float = Field(ge=-1.0, le=1.0, description="-1 very negative .. 1 very positive")


class Interest(BaseModel):
    topic: Topic
    weight: float = Field(ge=0.0, le=1.0, description="How strong, 0..1")
    sentiment: SentimentLabel
    evidence: list[str] = Field(
        max_length=MAX_EVIDENCE,
        description="Ids of history items showing it",
        json_schema_extra={"minItems": 1},
    )
    source: SkipJsonSchema[EntrySource] = Field(
        "model", description="Not in the model's schema: who made the entry"
    )

    @model_validator(mode="after")
    def _evidence_unless_user(self) -> Interest:
        """The model's entries cite at least one item; the user's need none."""
        if not self.evidence and self.source == "model":
            raise ValueError("evidence: at least one item id")
        return self


class ProfileDraft(BaseModel):
    """The LLM's part of a profile. `draft_schema` narrows evidence ids to the history."""

    interests: list[Interest] = Field(min_length=1, max_length=MAX_INTERESTS)
    dislikes: list[Interest] = Field(default_factory=list, max_length=MAX_DISLIKES)
    sentiment: Sentiment
    intent: Intent = Field(description="What they want next")
    summary: Summary = Field(description="Two or three sentences")

    @model_validator(mode="after")
    def _drafted_by_the_model(self) -> ProfileDraft:
        """Whatever a reply says, a draft's entries are the model's."""
        for entry in (*self.interests, *self.dislikes):
            if getattr(entry, "source", "model") != "model":
                entry.source = "model"
        return self


def draft_schema(evidence_ids: list[str], max_interests: int = MAX_INTERESTS) -> type[ProfileDraft]:
    """A `ProfileDraft` whose evidence ids must be one of `evidence_ids`: sent as a JSON-schema
    enum, so vLLM's constrained decoding cannot produce an id outside the user's history."""
    ids = tuple(dict.fromkeys(evidence_ids))
    evidence_type: Any = Literal[ids]
    grounded = create_model(
        "GroundedInterest",
        __base__=Interest,
        evidence=(list[evidence_type], Field(min_length=1, max_length=MAX_EVIDENCE)),
    )
    limit = max(1, min(max_interests, MAX_INTERESTS))
    return create_model(
        "ProfileDraft",
        __base__=ProfileDraft,
        interests=(list[grounded], Field(min_length=1, max_length=limit)),
        dislikes=(list[grounded], Field(default_factory=list, max_length=MAX_DISLIKES)),
    )


MAX_LINES = 60
"""Most history lines a line-citing profile prompt shows (`profiles.context`): the fixed range
of its evidence numbers, so every user's profile schema is the same."""


class LinedInterest(Interest):
    """An interest whose evidence is history line numbers (1 = the first line shown)."""

    evidence: list[int] = Field(  # type: ignore[assignment]
        min_length=1,
        max_length=MAX_EVIDENCE,
        description="Line numbers of history items showing it",
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": MAX_LINES}},
    )


class LinedDraft(ProfileDraft):
    """The draft of a line-citing prompt: one schema for every user, so vLLM compiles its
    grammar once per server instead of once per user (an enum of each user's ids made every
    schema distinct). The range is in the JSON schema only: a number past the user's own
    lines is not a validation error (no re-ask) but invalid evidence after `cited_ids`."""

    interests: list[LinedInterest] = Field(  # type: ignore[assignment]
        min_length=1, max_length=MAX_INTERESTS
    )
    dislikes: list[LinedInterest] = Field(  # type: ignore[assignment]
        default_factory=list, max_length=MAX_DISLIKES
    )


LIKED_GROUPS = ("A", "B", "C", "D", "E")
DISLIKED_GROUPS = ("X", "Y", "Z")
"""A grouped prompt (profile v5+) shows the liked items in groups A-E and the disliked ones in
groups X-Z, each group computed from the ratings (`profiles.groups`). The model names a group;
the group's items become the evidence. So the decoder cannot cite a 1-star item under an
interest, and one schema serves every user."""


class _Named(BaseModel):
    topic: Topic
    weight: float = Field(ge=0.0, le=1.0, description="How strong, 0..1")
    sentiment: SentimentLabel


class LikedGroup(_Named):
    group: Literal["A", "B", "C", "D", "E"]


class DislikedGroup(_Named):
    group: Literal["X", "Y", "Z"]


class GroupedDraft(ProfileDraft):
    """The LLM's part of a grouped profile: a name for each group it keeps (`grouped_ids`
    turns it into a plain `ProfileDraft`)."""

    interests: list[LikedGroup] = Field(  # type: ignore[assignment]
        min_length=1, max_length=MAX_INTERESTS
    )
    dislikes: list[DislikedGroup] = Field(  # type: ignore[assignment]
        default_factory=list, max_length=MAX_DISLIKES
    )


def grouped_ids(draft: GroupedDraft, groups: dict[str, list[str]]) -> tuple[ProfileDraft, int]:
    """`draft` with each group replaced by the ids of its items (at most `MAX_EVIDENCE`, the
    strongest first), and how many entries were dropped for naming a group already named.
    A group the prompt did not show gets `group:G`, which is in no history, so grounding
    counts it as invalid evidence."""
    named_twice = 0

    def entries(named: Sequence[LikedGroup | DislikedGroup]) -> list[Interest]:
        nonlocal named_twice
        found, seen = [], set()
        for entry in named:
            if entry.group in seen:
                named_twice += 1
                continue
            seen.add(entry.group)
            ids = groups.get(entry.group) or [f"group:{entry.group}"]
            found.append(
                Interest(
                    topic=entry.topic,
                    weight=entry.weight,
                    sentiment=entry.sentiment,
                    evidence=ids[:MAX_EVIDENCE],
                )  # fmt: skip
            )
        return found

    mapped = ProfileDraft(
        interests=entries(draft.interests),
        dislikes=entries(draft.dislikes),
        sentiment=draft.sentiment,
        intent=draft.intent,
        summary=draft.summary,
    )
    return mapped, named_twice


def cited_ids(draft: ProfileDraft, line_ids: list[str]) -> ProfileDraft:
    """`draft` with line numbers replaced by the ids of those lines; a number with no line
    becomes `line:N`, which is in no history, so grounding counts it as invalid evidence."""

    def ids(entry: Interest) -> Interest:
        mapped = [
            line_ids[n - 1] if isinstance(n, int) and 1 <= n <= len(line_ids) else f"line:{n}"
            for n in entry.evidence
        ]
        return Interest(**(entry.model_dump() | {"evidence": mapped}))

    mapped = {"interests": [ids(i) for i in draft.interests],
              "dislikes": [ids(i) for i in draft.dislikes]}  # fmt: skip
    return ProfileDraft.model_validate(draft.model_dump() | mapped)


class CategoryRating(BaseModel):
    """How a user rates one category (or era) against their own mean."""

    name: str
    mean: float
    count: int


class ClaimCheck(BaseModel):
    """Claims held against the user's own ratings, with no LLM (`agent.profiles.claims`).
    A claim is an interest or a dislike."""

    evidence_checked: int = Field(0, description="Claims whose cited items have ratings")
    evidence_agreeing: int = Field(
        0,
        description="Of those, interests whose cited items the user rated above their own mean "
        "on average, or dislikes rated below it",
    )
    history_checked: int = Field(
        0, description="Claims matching at least 3 rated items of the whole history"
    )
    history_contradicted: int = Field(
        0,
        description="Of those, claims whose matching items' mean rating is on the wrong side "
        "of the user's mean (an interest rated below it, a dislike above it)",
    )
    bare_topics: int = Field(0, description="Topics that are only category names")
    claims: int = 0


class CategoryShare(BaseModel):
    category: str
    share: float = Field(ge=0.0, le=1.0)


class ComputedFacts(BaseModel):
    """Facts about the history that need no LLM (also shown to the LLM in the prompt)."""

    event_count: int
    rated_count: int
    rating_mean: float | None
    review_count: int
    top_categories: list[CategoryShare]
    first_event: datetime | None
    last_event: datetime | None
    days_since_last: float | None = Field(
        description="Days between this user's last event and the newest event in the store"
    )
    category_ratings: list[CategoryRating] = Field(
        default_factory=list, description="Mean rating per category (3+ rated items)"
    )
    era_ratings: list[CategoryRating] = Field(
        default_factory=list, description="Mean rating per decade of release (3+ rated items)"
    )
    five_point: bool = Field(False, description="Every rating is on the 1-5 scale")


class Grounding(BaseModel):
    """How well the draft is backed by the history. Nothing invented reaches the store: ids
    outside the history are removed, and an interest left without evidence is dropped."""

    score: float = Field(ge=0.0, le=1.0, description="Kept interests backed by their evidence")
    cited: int = 0
    invalid_evidence: int = Field(0, description="Cited ids that are not in the history")
    duplicate_evidence: int = Field(0, description="Ids cited twice by one interest")
    dropped_interests: int = 0
    unsupported_topics: int = Field(
        0,
        description="Kept interests whose topic their evidence does not support (no shared "
        "word, and not semantically close where an embedder judged it)",
    )
    wrong_side_evidence: int = Field(
        0,
        description="Cited items removed for their rating: under an interest, an item not "
        "liked; under a dislike, an item not disliked (`agent.profiles.sentiment`)",
    )
    renamed_topics: int = Field(
        0,
        description="Grouped profiles: model topics replaced by a computed one (category and "
        "titles) because they were bare genres, unsupported or contradicted",
    )
    rewritten_texts: int = Field(
        0,
        description="Grouped profiles: intent or summary replaced by a computed one because "
        "it copied the prompt's instructions or example",
    )
    contradicted_claims: int = Field(
        0,
        description="Claims removed because the user's whole history contradicts them "
        "(`agent.profiles.claims`)",
    )
    claims: ClaimCheck | None = Field(
        None, description="The claims as the model wrote them, held against the ratings"
    )


class ProfileKind(StrEnum):
    FULL = "full"
    UPDATE = "update"
    COLD_START = "cold_start"
    EDIT = "edit"
    """The user's own edit (`personae profile edit`): no LLM call."""


USER_EDIT_MODEL = "user"
"""`Provenance.model` of an edit version: the user made it."""
USER_EDIT_PROMPT = PromptRef(id="user_edit", version=0, hash="none")
"""`Provenance.prompt` of an edit version: no prompt was sent (version 0 is no prompt file)."""


class Provenance(BaseModel):
    model: str
    prompt: PromptRef
    history_hash: str
    history_events: int
    created_at: datetime
    version: int = Field(ge=1)
    kind: ProfileKind
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 1
    reasks: int = 0
    latency_s: float = 0.0


class UserProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str
    interests: list[Interest]
    dislikes: list[Interest]
    sentiment: Sentiment
    intent: str
    summary: str
    confidence: Confidence = Field(
        description="Computed, not written by the model: see `agent.profiles.profiler.confidence`"
    )
    facts: ComputedFacts
    grounding: Grounding
    provenance: Provenance

    def embedding_text(self) -> str:
        """What the profile embedding is computed from: interests first, then the summary."""
        liked = ", ".join(i.topic for i in self.interests)
        disliked = ", ".join(i.topic for i in self.dislikes)
        parts = [f"Likes: {liked}."]
        if disliked:
            parts.append(f"Dislikes: {disliked}.")
        parts += [f"Wants: {self.intent}", self.summary]
        return " ".join(parts)
