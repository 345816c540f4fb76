"""What one chat turn returns (`Turn`): the answer, the tool calls with their results, what
the answer check found, and whether the answer was re-asked or replaced."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from pydantic import BaseModel, Field, ValidationError

from agent.chat.answer_check import AnswerCheck
from agent.chat.constrained import ROUTED
from agent.prompts import PromptRef

RESULT_CHARS = 600
"""Tool result text kept in a `Turn` (the model saw all of it)."""


class ToolCallRecord(BaseModel):
    name: str
    args: dict[str, Any]
    valid: bool
    """A known tool with arguments that validate against its schema (this catalog's)."""
    ok: bool
    """The tool ran and returned a result (not an error message)."""
    result: str
    item_ids: list[str] = Field(default_factory=list)
    routed: bool = False
    """Made by the router (`agent.chat.router`), not chosen by the model."""


class CitedItem(BaseModel):
    item_id: str
    title: str


class Turn(BaseModel):
    user_id: str
    question: str
    answer: str
    """What the user is shown: the model's answer, or the plain rendering that replaced it."""
    cited: list[CitedItem]
    """Items the answer names that a tool showed this turn."""
    ungrounded_titles: list[str] = Field(default_factory=list)
    """Titles the shown answer names that no tool showed this turn."""
    tool_calls: list[ToolCallRecord]
    model_calls: int
    latency_s: float
    tokens_in: int
    tokens_out: int
    check: AnswerCheck | None = None
    """The check of the model's last answer (None: no answer to check)."""
    first_check: AnswerCheck | None = None
    """The check of the model's first answer, when it was re-asked."""
    first_answer: str | None = None
    reasked: bool = False
    """The first answer failed its check and the model was asked once more."""
    replaced: bool = False
    """The answer failed its check after the re-ask and was replaced by the tool results."""
    truncated: bool = False
    """The answer was cut off at `chat_max_tokens` (and closed with an ellipsis)."""
    stopped: Literal["step_limit"] | None = None
    error: str | None = None
    mode: str
    routed: bool = False
    """The router chose this turn's tools."""
    prompt: PromptRef


def tool_records(
    new: list[BaseMessage], models: dict[str, type[BaseModel]]
) -> list[ToolCallRecord]:
    results = {m.tool_call_id: m for m in new if isinstance(m, ToolMessage)}
    records = []
    for message in new:
        if not isinstance(message, AIMessage):
            continue
        for call in message.tool_calls:
            result = results.get(call["id"] or "")
            artifact = result.artifact if result is not None else None
            records.append(
                ToolCallRecord(
                    name=call["name"],
                    args=call["args"],
                    valid=valid_call(models, call["name"], call["args"]),
                    ok=result is not None and result.status != "error",
                    result=result.text[:RESULT_CHARS] if result is not None else "",
                    item_ids=list((artifact or {}).get("item_ids", [])),
                    routed=bool(message.additional_kwargs.get(ROUTED)),
                )
            )
    return records


def valid_call(models: dict[str, type[BaseModel]], name: str, args: dict[str, Any]) -> bool:
    if name not in models:
        return False
    try:
        models[name].model_validate(args)
    except ValidationError:
        return False
    return True


def shown_ids(new: list[BaseMessage]) -> set[str]:
    """Item ids the tools showed in these messages (successful results only)."""
    return {
        item_id
        for m in new
        if isinstance(m, ToolMessage) and m.status != "error"
        for item_id in (m.artifact or {}).get("item_ids", [])
    }


def required_sets(new: list[BaseMessage]) -> list[tuple[str, list[str]]]:
    """(tool, items) per successful result whose answer must name one of its items."""
    return [
        (m.name or "tool", list(required))
        for m in new
        if isinstance(m, ToolMessage) and m.status != "error"
        and (required := (m.artifact or {}).get("required"))
    ]  # fmt: skip


def plain_rendering(new: list[BaseMessage]) -> str:
    """The tool results as the answer, for an answer that stayed unfaithful: true by
    construction, if not eloquent."""
    results = [m for m in new if isinstance(m, ToolMessage)]
    done = [(m.artifact or {}).get("plain") or m.text for m in results if m.status != "error"]
    if done:
        return "From your data:\n" + "\n".join(done)
    failed = "; ".join(m.text for m in results) or "no tool was called"
    return f"I could not look that up ({failed})."
