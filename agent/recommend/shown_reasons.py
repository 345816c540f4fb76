"""Reasons for the items actually shown: one constrained request for the final top K, after
the order is settled (scored re-rank or the ranker), instead of a reason for every candidate.

The schema is the same for every user with the same K: items are explained in the order they
are listed, and a reason cites history by line number from a fixed range (the history shown is
capped at `MAX_LINES`). vLLM compiles the grammar once and caches it; the per-user enums of
the generated-list re-rank compiled a new grammar for every user. Line numbers are mapped back
to item ids before anything is stored or shown, and a number past the user's shown history is
a problem sent back to the model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from agent.prompts import RenderedPrompt, load_prompt
from agent.recommend.context import history_lines, item_line, profile_text
from agent.recommend.rerank import MAX_CITED, PickInfo, Reason
from agent.runtime.structured import GenerationMeta, StructuredGenerator, StructuredOutputError
from agent.schemas import Interaction, Item
from agent.schemas.profile import UserProfile

PROMPT_ID = "reasons"
MAX_LINES = 20
"""History lines shown and citable (the `rerank_history_events` setting is capped at this)."""
TOKENS_PER_REASON = 64


class ShownReason(BaseModel):
    reason: Reason = Field(description="One short sentence")
    cited: list[int] = Field(min_length=1, max_length=MAX_CITED)


class ShownReasons(BaseModel):
    reasons: list[ShownReason]


@cache
def reasons_schema(k: int) -> type[ShownReasons]:
    """Exactly `k` reasons, cited lines from 1..MAX_LINES: one schema per K, for every user."""
    line: Any = Literal[tuple(range(1, MAX_LINES + 1))]
    entry = create_model(
        "ShownReason",
        __base__=ShownReason,
        cited=(list[line], Field(min_length=1, max_length=MAX_CITED)),
    )
    return create_model(
        "ShownReasons",
        __base__=ShownReasons,
        reasons=(list[entry], Field(min_length=k, max_length=k)),
    )


@dataclass
class ReasonsRequest:
    user_id: str
    shown: list[str]
    """The items to explain, in the order shown (and listed in the prompt)."""
    line_ids: list[str]
    """History item id of each line: line n is `line_ids[n - 1]`."""
    prompt: RenderedPrompt
    schema: type[ShownReasons]
    max_tokens: int

    def problems(self, draft: ShownReasons) -> list[str]:
        found = []
        for n, entry in enumerate(draft.reasons):
            outside = [c for c in entry.cited if not 1 <= c <= len(self.line_ids)]
            if outside:
                found.append(f"reasons.{n}.cited: lines {outside} are not in the history "
                             f"(lines 1 to {len(self.line_ids)})")  # fmt: skip
        return found


def prepare_reasons(
    user_id: str,
    profile: UserProfile,
    history: Sequence[Interaction],
    items: Mapping[str, Item],
    shown: Sequence[str],
    history_events: int = MAX_LINES,
) -> ReasonsRequest:
    if not shown:
        raise ValueError("no items to explain")
    recent = list(history[-min(history_events, MAX_LINES) :])
    lines, _ = history_lines(recent, items, len(recent), with_id=False)
    prompt = load_prompt(PROMPT_ID).render(
        profile=profile_text(profile),
        history=[f"{n}. {line}" for n, line in enumerate(lines, start=1)],
        shown=len(lines),
        total=len(history),
        items=[f"{n}. {item_line(items[i], with_id=False)}" for n, i in enumerate(shown, 1)],
        k=len(shown),
    )
    return ReasonsRequest(
        user_id=user_id,
        shown=list(shown),
        line_ids=[e.item_id for e in recent],
        prompt=prompt,
        schema=reasons_schema(len(shown)),
        max_tokens=len(shown) * TOKENS_PER_REASON + 16,
    )


@dataclass
class ShownReasonsOutcome:
    picks: dict[str, PickInfo]
    meta: GenerationMeta | None
    error: str | None = None


async def areasons(generator: StructuredGenerator, request: ReasonsRequest) -> ShownReasonsOutcome:
    """The reasons by item id, with cited lines turned into history item ids. A reply that
    stays invalid after the re-asks leaves every item with its retrieval reason."""
    try:
        made = await generator.agenerate(
            request.prompt, request.schema, max_tokens=request.max_tokens, check=request.problems
        )
    except StructuredOutputError as err:
        return ShownReasonsOutcome({}, err.meta, str(err))
    picks = {}
    for item_id, entry in zip(request.shown, made.value.reasons, strict=True):
        cited = [request.line_ids[c - 1] for c in entry.cited if 1 <= c <= len(request.line_ids)]
        picks[item_id] = PickInfo(entry.reason.strip(), list(dict.fromkeys(cited)))
    return ShownReasonsOutcome(picks, made.meta)
