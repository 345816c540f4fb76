"""The chat eval (issue 30): questions with checkable answers, filled per user from their own
data (`evals.chat_cases`), asked one per fresh session, scored without an LLM.

Per turn: the right tool called (with the right item or filters), every call's arguments
valid against the session's schemas, every tool call succeeded, the model's answer grounded
(every title it names was shown by a tool this turn), the answer contradicts the ratings
(`agent.chat.answer_check`), whether it was re-asked or replaced, seconds and tokens.
Results are appended to a JSONL cache as they come (key: model, prompt hash, mode, router,
user, template), so an interrupted run resumes where it stopped."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import openai
from pydantic import BaseModel, Field

from agent.chat.session import ChatSession
from agent.chat.turn import ToolCallRecord, Turn
from evals.chat_cases import TEMPLATES, Case
from tools.catalog import Catalog
from tools.errors import ToolInputError
from tools.item_tools import decade_years

TARGETS = {
    "right_tool": (">=", 0.90),
    "args_valid": (">=", 1.0),
    "tool_error": ("<=", 0.05),
    "grounded": (">=", 0.95),
    "contradicts": ("<=", 0.05),
}
"""Issue 30's targets on the default model."""

SessionFactory = Callable[[str, str, bool], ChatSession]
"""(user id, tool-calling mode, router on) -> a fresh session."""


class TurnScore(BaseModel):
    key: str
    user_id: str
    template: str
    mode: str
    router: bool
    question: str
    answer: str
    tools: list[str] = Field(default_factory=list)
    right_tool: bool
    args_valid: bool
    tool_error: bool
    grounded: bool
    """The model's (last) answer names only titles the tools showed this turn."""
    first_grounded: bool
    contradicts: bool
    """The model's (last) answer contradicts the user's ratings."""
    answered: bool = True
    """The model's (last) answer uses every result it needed (names an explanation's
    drivers, an item of a list it was given)."""
    reasked: bool
    replaced: bool
    routed: bool
    error: str | None = None
    seconds: float
    tokens_in: int
    tokens_out: int
    ungrounded: list[str] = Field(default_factory=list)
    contradictions: list[str] = Field(default_factory=list)


# -- scoring -------------------------------------------------------------------------------


def resolves_to(catalog: Catalog, text: object, item_id: object) -> bool:
    if not isinstance(text, str) or not isinstance(item_id, str):
        return False
    try:
        return catalog.same_title(catalog.resolve(text), item_id)
    except ToolInputError:
        return False


def call_matches(case: Case, call: ToolCallRecord, catalog: Catalog) -> bool:
    if call.name != case.tool:
        return False
    args, expect = call.args, case.expect
    if "item" in expect:
        return resolves_to(catalog, args.get("item"), expect["item"])
    if "like" in expect:
        return resolves_to(catalog, args.get("like"), expect["like"])
    if "category" in expect:
        return args.get("category") == expect["category"] and within(args, expect["decade"])
    return True


def within(args: dict[str, object], decade: str) -> bool:
    """The call's years are the decade's, or a non-empty range inside it."""
    if args.get("decade") == decade:
        return True
    low, high = decade_years(decade)
    first, last = args.get("min_year"), args.get("max_year")
    if not isinstance(first, int) or not isinstance(last, int):
        return False
    return low is not None and high is not None and low <= first <= last <= high


def score(case: Case, turn: Turn, catalog: Catalog, key: str, router: bool) -> TurnScore:
    check, first = turn.check, turn.first_check or turn.check
    calls = turn.tool_calls
    return TurnScore(
        key=key,
        user_id=case.user_id,
        template=case.template,
        mode=turn.mode,
        router=router,
        question=case.question,
        answer=turn.answer,
        tools=[c.name for c in calls],
        right_tool=any(call_matches(case, c, catalog) for c in calls),
        args_valid=bool(calls) and all(c.valid for c in calls),
        tool_error=any(not c.ok for c in calls),
        grounded=check is not None and check.grounded,
        first_grounded=first is not None and first.grounded,
        contradicts=check is not None and bool(check.contradictions),
        answered=check is not None and not check.unanswered,
        reasked=turn.reasked,
        replaced=turn.replaced,
        routed=turn.routed,
        error=turn.error or turn.stopped,
        seconds=turn.latency_s,
        tokens_in=turn.tokens_in,
        tokens_out=turn.tokens_out,
        ungrounded=check.ungrounded if check else [],
        contradictions=check.contradictions if check else [],
    )


# -- running -------------------------------------------------------------------------------


class ResultCache:
    """Scores by key, in a JSONL file appended to as each turn finishes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.done: dict[str, TurnScore] = {}
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    found = TurnScore.model_validate_json(line)
                    self.done[found.key] = found

    def add(self, result: TurnScore) -> None:
        self.done[result.key] = result
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as out:
                out.write(result.model_dump_json() + "\n")


def case_key(prefix: str, mode: str, router: bool, case: Case) -> str:
    return f"{prefix}|{mode}|{'router' if router else 'model'}|{case.user_id}|{case.template}"


def run(
    cases: Sequence[Case],
    modes: Sequence[str],
    routers: Sequence[bool],
    make_session: SessionFactory,
    catalog: Catalog,
    cache: ResultCache,
    prefix: str = "",
    on_result: Callable[[TurnScore], None] | None = None,
) -> tuple[list[TurnScore], dict[str, str]]:
    """Every case in every mode and router setting; a mode the server refuses (native tool
    calling without `--tool-call-parser`: HTTP 400) is skipped with the reason."""
    results: list[TurnScore] = []
    skipped: dict[str, str] = {}
    for mode in modes:
        for router in routers:
            for case in cases:
                key = case_key(prefix, mode, router, case)
                if key in cache.done:
                    results.append(cache.done[key])
                    continue
                try:
                    turn = make_session(case.user_id, mode, router).ask(case.question)
                except openai.BadRequestError as err:
                    skipped[mode] = f"the server refused it: {str(err)[:200]}"
                    break
                result = score(case, turn, catalog, key, router)
                cache.add(result)
                results.append(result)
                if on_result is not None:
                    on_result(result)
            if mode in skipped:
                break
    return results, skipped


# -- summary -------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def rate(results: Iterable[TurnScore], field: str) -> float | None:
    values = [bool(getattr(r, field)) for r in results]
    return round(sum(values) / len(values), 4) if values else None


def summarize(results: Sequence[TurnScore]) -> dict[str, object]:
    seconds = [r.seconds for r in results]
    summary: dict[str, object] = {"turns": len(results), "users": len({r.user_id for r in results})}
    for field in ("right_tool", "args_valid", "tool_error", "grounded", "first_grounded",
                  "contradicts", "answered", "reasked", "replaced", "routed"):  # fmt: skip
        summary[field] = rate(results, field)
    summary["errors"] = sum(r.error is not None for r in results)
    summary["seconds_median"] = round(statistics.median(seconds), 2) if seconds else None
    summary["seconds_p90"] = round(quantile(seconds, 0.9), 2)
    summary["tokens_in_mean"] = (
        round(statistics.fmean(r.tokens_in for r in results), 1) if results else None
    )
    summary["tokens_out_mean"] = (
        round(statistics.fmean(r.tokens_out for r in results), 1) if results else None
    )
    summary["meets_targets"] = meets(summary)
    return summary


def meets(summary: dict[str, object]) -> dict[str, bool]:
    found = {}
    for field, (op, bound) in TARGETS.items():
        value = summary.get(field)
        if isinstance(value, float | int):
            found[field] = value >= bound if op == ">=" else value <= bound
    return found


def report(results: Sequence[TurnScore], skipped: dict[str, str]) -> dict[str, object]:
    """A summary per (mode, router), and per template within each."""
    groups: dict[str, object] = {}
    for mode, router in dict.fromkeys((r.mode, r.router) for r in results):
        mine = [r for r in results if r.mode == mode and r.router == router]
        by_template = {t: summarize([r for r in mine if r.template == t]) for t in TEMPLATES}
        name = f"{mode}/{'router' if router else 'model picks'}"
        groups[name] = {**summarize(mine), "by_template": by_template}
    return {"groups": groups, "skipped_modes": skipped, "targets": TARGETS}


def to_json(found: dict[str, object]) -> str:
    return json.dumps(found, indent=2)
