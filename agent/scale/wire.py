"""A `ProfileRequest` as JSON, so that a worker can hand it to the engine and the driver.

The request holds the draft schema as a class made by `draft_schema(ids, limit)`; classes do
not travel well between processes, so the wire form carries `ids` and `limit` and rebuilds
the class on the other side. `draft_args` reads them back from the class and checks that the
rebuilt class has the same JSON schema, so a change to `draft_schema` cannot slip through as
a silently different schema. A line-citing request (profile prompt v4+) has one schema for
every user, `LinedDraft`, and carries the ids of its lines instead; a grouped one (v5+) has
`GroupedDraft` and carries its groups' ids."""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel

from agent.profiles.profiler import ProfileRequest
from agent.profiles.sentiment import Side
from agent.prompts import RenderedPrompt
from agent.schemas import Item
from agent.schemas.profile import (
    ComputedFacts,
    GroupedDraft,
    LinedDraft,
    ProfileDraft,
    ProfileKind,
    draft_schema,
)


class WireFormatError(ValueError):
    """A draft schema that `draft_schema` cannot rebuild from ids and a limit."""


def draft_args(schema: type[ProfileDraft]) -> tuple[list[str], int]:
    """The evidence ids and the interest limit `schema` was made with."""
    try:
        interests = schema.model_fields["interests"]
        (grounded,) = get_args(interests.annotation)
        (allowed,) = get_args(grounded.model_fields["evidence"].annotation)
        ids = [str(i) for i in get_args(allowed)]
        limit = next(m.max_length for m in interests.metadata if hasattr(m, "max_length"))
    except (KeyError, ValueError, AttributeError, StopIteration) as err:
        raise WireFormatError(f"{schema.__name__} is not a draft_schema(...) class") from err
    if not ids:  # evidence is a plain str: not limited to a history
        raise WireFormatError(f"{schema.__name__} is not a draft_schema(...) class")
    if draft_schema(ids, limit).model_json_schema() != schema.model_json_schema():
        raise WireFormatError(f"draft_schema({ids!r}, {limit}) does not rebuild {schema}")
    return ids, int(limit)


class WireRequest(BaseModel):
    """Everything `Profiler.finish` needs, as plain data."""

    user_id: str
    kind: ProfileKind
    prompt: RenderedPrompt
    evidence_ids: list[str]
    max_interests: int
    facts: ComputedFacts
    history_hash: str
    history_events: int
    version: int
    history_ids: list[str]
    items: list[Item]
    text: str | None = None
    line_ids: list[str] | None = None
    """For a line-citing request: the item id of each line shown (its schema is LinedDraft,
    or SidedDraft when `sided`)."""
    groups: dict[str, list[str]] | None = None
    """For a grouped request (profile v5+): group label -> item ids; its schema is GroupedDraft."""
    group_categories: dict[str, str] = {}
    sides: dict[str, Side] = {}
    ratings: dict[str, float] = {}

    @classmethod
    def of(cls, request: ProfileRequest) -> WireRequest:
        lined = request.line_ids is not None or request.groups is not None  # one shared schema
        ids, limit = ([], 0) if lined else draft_args(request.schema)
        return cls(
            user_id=request.user_id,
            kind=request.kind,
            prompt=request.prompt,
            evidence_ids=ids,
            max_interests=limit,
            facts=request.facts,
            history_hash=request.history_hash,
            history_events=request.history_events,
            version=request.version,
            history_ids=sorted(request.history_ids),
            items=list(request.items.values()),
            text=request.text,
            line_ids=request.line_ids,
            groups=request.groups,
            group_categories=request.group_categories,
            sides=request.sides,
            ratings=request.ratings,
        )

    def schema_class(self) -> type[ProfileDraft]:
        if self.groups is not None:
            return GroupedDraft
        if self.line_ids is not None:
            return LinedDraft
        return draft_schema(self.evidence_ids, self.max_interests)

    def request(self) -> ProfileRequest:
        return ProfileRequest(
            user_id=self.user_id,
            kind=self.kind,
            prompt=self.prompt,
            schema=self.schema_class(),
            facts=self.facts,
            history_hash=self.history_hash,
            history_events=self.history_events,
            version=self.version,
            history_ids=set(self.history_ids),
            items={item.item_id: item for item in self.items},
            text=self.text,
            line_ids=self.line_ids,
            groups=self.groups,
            group_categories=self.group_categories,
            sides=self.sides,
            ratings=self.ratings,
        )

    def messages(self) -> list[dict[str, Any]]:
        """The prompt as chat messages for `vllm.LLM.chat`."""
        return [{"role": m.role, "content": m.content} for m in self.prompt.messages]
