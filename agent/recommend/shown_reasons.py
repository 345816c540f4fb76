"""Reasons for the items actually shown: one constrained request for the final top K, after
the order is settled (scored re-rank or the ranker), instead of a reason for every candidate.

The schema is the same for every user with the same K: exactly K entries in the order shown,
each citing numbers from a fixed range, so vLLM compiles the grammar once and caches it. What
a number stands for depends on the prompt version (`reasons_prompt_version`):

- v2 (the default): the item's own drivers (`agent.reasons.evidence`: the history items that
  raised its EASE score most), numbered 1..3 within the item. The prompt lists each item with
  its own evidence only (title, year, categories, drivers, matched interests) and no other
  title, so a reason cannot cite another item's evidence by construction. After decoding, a
  number the item has no driver for is dropped and counted; a reason left citing nothing, or
  one in which the model-free checks (`agent.reasons.checks`) find a false claim (the user
  rated or watched the item, a category it lacks), is left out and counted: the item keeps
  its retrieval reason, computed and true.
- v1 (issue 29's "before", for measurements): the user's last `MAX_LINES` history lines, the
  same for every item; a line past the history shown is re-asked; no checks."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from agent.config import Settings
from agent.prompts import RenderedPrompt, load_prompt
from agent.reasons.checks import check_reason
from agent.reasons.evidence import CITABLE_DRIVERS, Driver, ItemEvidence
from agent.recommend.context import history_lines, item_line, profile_text, untrusted
from agent.recommend.rerank import MAX_CITED, PickInfo, Reason
from agent.runtime.structured import GenerationMeta, StructuredGenerator, StructuredOutputError
from agent.schemas import Interaction, Item
from agent.schemas.profile import UserProfile

PROMPT_ID = "reasons"
LINES_VERSION = 1
"""The prompt version that cites history lines (every later one cites the item's drivers)."""
SLOTS = CITABLE_DRIVERS
"""Drivers shown and citable per item (v2)."""
MAX_LINES = 20
"""History lines shown and citable in v1 (the `rerank_history_events` setting is capped at
this)."""
MAX_INTERESTS = 2
TOKENS_PER_REASON = 64


class ShownReason(BaseModel):
    reason: Reason = Field(description="One short sentence")
    cited: list[int] = Field(min_length=1, max_length=MAX_CITED)


class ShownReasons(BaseModel):
    reasons: list[ShownReason]


def reasons_schema(k: int, slots: int = SLOTS) -> type[ShownReasons]:
    """Exactly `k` reasons, each citing numbers from 1..`slots`: one schema per K (and
    prompt version), for every user."""
    return _reasons_schema(k, slots)


@cache
def _reasons_schema(k: int, slots: int) -> type[ShownReasons]:
    number: Any = Literal[tuple(range(1, slots + 1))]
    entry = create_model(
        "ShownReason",
        __base__=ShownReason,
        cited=(list[number], Field(min_length=1, max_length=MAX_CITED)),
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
    slot_ids: list[list[str]]
    """Per shown item, the history item id each cited number stands for: number n of item i
    is `slot_ids[i][n - 1]` (v2: the item's own drivers; v1: the history lines, alike)."""
    prompt: RenderedPrompt
    schema: type[ShownReasons]
    max_tokens: int
    lines: bool = False
    """v1: numbers are history lines; one past the history is re-asked, nothing is checked."""

    def problems(self, draft: ShownReasons) -> list[str]:
        if not self.lines:
            return []  # a driver the item lacks is dropped and counted, not re-asked
        found = []
        for n, entry in enumerate(draft.reasons):
            known = len(self.slot_ids[n]) if n < len(self.slot_ids) else 0
            outside = [c for c in entry.cited if not 1 <= c <= known]
            if outside:
                found.append(f"reasons.{n}.cited: lines {outside} are not in the history "
                             f"(lines 1 to {known})")  # fmt: skip
        return found


def driver_text(driver: Driver) -> str:
    """A driver's title, and the user's rating of it when known."""
    title = untrusted(driver.title, 80)
    return title if driver.rating is None else f"{title} | rated {driver.rating:g}"


def evidence_entry(evidence: ItemEvidence) -> dict[str, Any]:
    """One item of the v2 prompt: its line (title, year, categories), its drivers by title
    (numbered 1..SLOTS in the prompt) and the interests it matches."""
    title = untrusted(evidence.title)
    year = f" ({evidence.year})" if evidence.year and f"({evidence.year})" not in title else ""
    categories = ", ".join(untrusted(c, 30) for c in evidence.categories) or "none listed"
    return {
        "line": f"{title}{year} | categories: {categories}",
        "drivers": [driver_text(d) for d in evidence.drivers[:SLOTS]],
        "interests": "; ".join(untrusted(t, 40) for t in evidence.interests[:MAX_INTERESTS]),
    }


def prepare_evidence_reasons(
    user_id: str, evidence: Sequence[ItemEvidence], version: int | None = None
) -> ReasonsRequest:
    """The v2 request: each shown item with its own evidence, nothing else."""
    if not evidence:
        raise ValueError("no items to explain")
    template = load_prompt(PROMPT_ID, version)
    if template.version == LINES_VERSION:
        raise ValueError(f"{PROMPT_ID} v{LINES_VERSION} cites history lines: use prepare_reasons")
    prompt = template.render(items=[evidence_entry(e) for e in evidence], k=len(evidence))
    return ReasonsRequest(
        user_id=user_id,
        shown=[e.item_id for e in evidence],
        slot_ids=[e.top_ids(SLOTS) for e in evidence],
        prompt=prompt,
        schema=reasons_schema(len(evidence), SLOTS),
        max_tokens=len(evidence) * TOKENS_PER_REASON + 16,
    )


def prepare_reasons(
    user_id: str,
    profile: UserProfile | None,
    history: Sequence[Interaction],
    items: Mapping[str, Item],
    shown: Sequence[str],
    history_events: int = MAX_LINES,
) -> ReasonsRequest:
    """The v1 request: the profile, the last history lines (cited by number) and the items."""
    if not shown:
        raise ValueError("no items to explain")
    recent = list(history[-min(history_events, MAX_LINES) :])
    lines, _ = history_lines(recent, items, len(recent), with_id=False)
    prompt = load_prompt(PROMPT_ID, LINES_VERSION).render(
        profile=profile_text(profile) if profile is not None else "-",
        history=[f"{n}. {line}" for n, line in enumerate(lines, start=1)],
        shown=len(lines),
        total=len(history),
        items=[f"{n}. {item_line(items[i], with_id=False)}" for n, i in enumerate(shown, 1)],
        k=len(shown),
    )
    line_ids = [e.item_id for e in recent]
    return ReasonsRequest(
        user_id=user_id,
        shown=list(shown),
        slot_ids=[line_ids] * len(shown),
        prompt=prompt,
        schema=reasons_schema(len(shown), MAX_LINES),
        max_tokens=len(shown) * TOKENS_PER_REASON + 16,
        lines=True,
    )


@dataclass
class ShownReasonsOutcome:
    picks: dict[str, PickInfo]
    """The reasons kept, by item id; an item without one keeps its retrieval reason."""
    meta: GenerationMeta | None
    error: str | None = None
    drafts: dict[str, PickInfo] = field(default_factory=dict)
    """Every decoded reason with its numbers mapped to ids, before the checks."""
    missing_slots: int = 0
    """Cited numbers the item has no driver for (dropped)."""
    uncited: int = 0
    """Reasons left citing nothing (the retrieval reason is shown instead)."""
    false_claims: int = 0
    """Reasons with a false claim (the retrieval reason is shown instead)."""
    unusable: int = 0
    """Reasons cut off mid-sentence or naming none of their cited drivers (likewise)."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Why each left-out reason was left out, by item id."""


async def areasons(generator: StructuredGenerator, request: ReasonsRequest) -> ShownReasonsOutcome:
    """The reasons by item id, cited numbers turned into history item ids (numbers the item
    has no id for are dropped and counted). A reply that stays invalid after the re-asks
    leaves every item with its retrieval reason."""
    try:
        made = await generator.agenerate(
            request.prompt, request.schema, max_tokens=request.max_tokens, check=request.problems
        )
    except StructuredOutputError as err:
        return ShownReasonsOutcome({}, err.meta, str(err))
    outcome = ShownReasonsOutcome({}, made.meta)
    entries = zip(request.shown, request.slot_ids, made.value.reasons, strict=True)
    for item_id, ids, entry in entries:
        numbers = list(dict.fromkeys(entry.cited))
        cited = [ids[c - 1] for c in numbers if 1 <= c <= len(ids)]
        outcome.missing_slots += len(numbers) - len(cited)
        outcome.drafts[item_id] = PickInfo(entry.reason.strip(), list(dict.fromkeys(cited)))
    outcome.picks = dict(outcome.drafts)
    return outcome


def keep_true(
    outcome: ShownReasonsOutcome, evidence: Mapping[str, ItemEvidence], catalog: Collection[str]
) -> None:
    """Leave out (and count) every reason citing no driver, making a false claim about its
    item, cut off mid-sentence or naming none of the drivers it cites; the item then shows its
    retrieval reason."""
    for item_id, pick in list(outcome.picks.items()):
        found = evidence.get(item_id)
        if not pick.cited or found is None:
            outcome.uncited += 1
            outcome.rejected[item_id] = "cites no driver of the item"
            del outcome.picks[item_id]
            continue
        names = [d.title for d in found.drivers[:SLOTS]]  # the titles shown: names, not claims
        check = check_reason(pick.reason, pick.cited, found, catalog, names)
        if check.problems:
            outcome.false_claims += check.false_claim
            outcome.unusable += not check.false_claim
            why = "; ".join(check.problems)
            outcome.rejected[item_id] = f"false claim: {why}" if check.false_claim else why
            del outcome.picks[item_id]


ItemsOf = Callable[[list[str]], dict[str, Item]]


async def reasons_for_shown(
    settings: Settings,
    generator: StructuredGenerator,
    user_id: str,
    evidence: Mapping[str, ItemEvidence],
    catalog: Collection[str],
    profile: UserProfile | None,
    history: Sequence[Interaction],
    items_of: ItemsOf,
) -> ShownReasonsOutcome:
    """The LLM's reasons for the items shown (the keys of `evidence`, in the order shown),
    with the `reasons_prompt_version` prompt: what `recommend` runs, and bench/reasons.py.
    `catalog` is every category name; `profile` and `history` feed v1 only."""
    version = load_prompt(PROMPT_ID, settings.reasons_prompt_version).version
    if version != LINES_VERSION:
        request = prepare_evidence_reasons(user_id, list(evidence.values()), version)
        made = await areasons(generator, request)
        keep_true(made, evidence, catalog)
        return made
    events = min(settings.rerank_history_events, MAX_LINES)
    shown = list(evidence)
    items = items_of(shown + [e.item_id for e in history[-events:]])
    request = prepare_reasons(
        user_id, profile, history, items, [i for i in shown if i in items], events
    )
    return await areasons(generator, request)
