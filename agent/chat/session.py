"""A chat session about ONE user: a LangChain agent (`create_agent`) over the tools bound to
that user, a versioned system prompt, bounded steps, and answers whose citations are checked.

Two tool-calling paths, chosen by `Settings.chat_tool_calling`:
- constrained (default): `ConstrainedToolChatModel` decodes every reply against a JSON schema
  of the tools' arguments plus a final answer; valid by construction, for small models.
- native: the chat model's own `bind_tools` (vLLM with `--tool-call-parser`), for big models
  whose chat template supports tools.

A citation counts only if it is an item of this user's history or an item this session's
tools showed; anything else is dropped and reported in `Turn.dropped_citations`."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any, Literal

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.errors import GraphRecursionError
from pydantic import BaseModel, Field, ValidationError

from agent.chat.constrained import ChatReplyError, ConstrainedToolChatModel
from agent.config import Settings
from agent.prompts import PromptRef, load_prompt
from tools.context import ToolContext
from tools.registry import TOOLS, build_tools

_BRACKETED = re.compile(r"\[([^\[\]\s,]{1,64})\]")
RESULT_CHARS = 600
"""Tool result text kept in a `Turn` (the model saw all of it)."""


class ToolCallRecord(BaseModel):
    name: str
    args: dict[str, Any]
    valid: bool
    """A known tool with arguments that validate against its schema."""
    ok: bool
    """The tool ran and returned a result (not an error message)."""
    result: str
    item_ids: list[str] = Field(default_factory=list)


class CitedItem(BaseModel):
    item_id: str
    title: str


class Turn(BaseModel):
    user_id: str
    question: str
    answer: str
    cited: list[CitedItem]
    dropped_citations: list[str]
    tool_calls: list[ToolCallRecord]
    model_calls: int
    latency_s: float
    tokens_in: int
    tokens_out: int
    truncated: bool = False
    """The answer was cut off at `chat_max_tokens` (and closed with an ellipsis)."""
    stopped: Literal["step_limit"] | None = None
    error: str | None = None
    mode: str
    prompt: PromptRef


def signature(name: str) -> str:
    """`a, b?` for the prompt's tool list (`?`: optional)."""
    fields = TOOLS[name][1].model_fields
    return ", ".join(f + ("" if info.is_required() else "?") for f, info in fields.items())


class ChatSession:
    def __init__(self, settings: Settings, ctx: ToolContext, chat_model: BaseChatModel) -> None:
        self.settings = settings
        self.ctx = ctx
        self.mode = settings.chat_tool_calling
        tools = build_tools(ctx)
        listed = [
            {"name": t.name, "description": t.description, "signature": signature(t.name)}
            for t in tools
        ]
        rendered = load_prompt("chat").render(tools=listed if self.mode == "constrained" else [])
        self.prompt = rendered.ref
        self.agent = create_agent(
            self._model(chat_model), tools, system_prompt=rendered.messages[0].content
        )
        self.recursion_limit = 2 * settings.chat_max_steps + 2
        """Backstop for the native path (the constrained path ends itself): model and tool
        nodes are one graph step each, so this allows max_steps tool rounds and an answer."""
        self.messages: list[BaseMessage] = []

    def _model(self, chat_model: BaseChatModel) -> BaseChatModel:
        s = self.settings
        if self.mode == "native":
            if "max_tokens" in type(chat_model).model_fields:
                return chat_model.model_copy(update={"max_tokens": s.chat_max_tokens})
            return chat_model
        return ConstrainedToolChatModel(
            inner=chat_model,
            max_tokens=s.chat_max_tokens,
            max_steps=s.chat_max_steps,
            max_reasks=s.chat_max_reasks,
            citable=self.citable,
        )

    def citable(self) -> list[str]:
        """Ids an answer may cite: what the tools showed (latest first), then the history."""
        return list(dict.fromkeys([*reversed(self.ctx.surfaced), *self.ctx.history_ids()]))

    def reset(self) -> None:
        self.messages = []

    def ask(self, question: str) -> Turn:
        started = time.monotonic()
        inputs = [*self.messages, HumanMessage(content=question)]
        messages: list[BaseMessage] = inputs
        stopped: Literal["step_limit"] | None = None
        error = None
        config: Any = {"recursion_limit": self.recursion_limit}
        payload: Any = {"messages": inputs}
        try:
            for state in self.agent.stream(payload, config, stream_mode="values"):
                messages = list(state["messages"])
        except GraphRecursionError:
            stopped = "step_limit"
        except ChatReplyError as err:
            error = str(err)
        new = messages[len(inputs) :]
        answer_msg = _final(new) if stopped is None and error is None else None
        if answer_msg is not None:
            self.messages = _last_turns(messages, self.settings.chat_context_turns)
        return self._turn(question, new, answer_msg, stopped, error, time.monotonic() - started)

    def _turn(
        self,
        question: str,
        new: list[BaseMessage],
        answer_msg: AIMessage | None,
        stopped: Literal["step_limit"] | None,
        error: str | None,
        latency: float,
    ) -> Turn:
        asked = [m for m in new if isinstance(m, AIMessage)]
        usage: list[Any] = [m.usage_metadata or {} for m in asked]
        answer = answer_msg.text.strip() if answer_msg is not None else ""
        if stopped:
            answer = f"(no answer within {self.settings.chat_max_steps} tool steps)"
        cited, dropped = self.check_citations(self._claimed(answer_msg))
        return Turn(
            user_id=self.ctx.user_id,
            question=question,
            answer=answer,
            cited=cited,
            dropped_citations=dropped,
            tool_calls=tool_records(new),
            model_calls=len(asked),
            latency_s=round(latency, 3),
            tokens_in=sum(int(u.get("input_tokens", 0)) for u in usage),
            tokens_out=sum(int(u.get("output_tokens", 0)) for u in usage),
            truncated=bool(answer_msg and answer_msg.additional_kwargs.get("truncated")),
            stopped=stopped,
            error=error,
            mode=self.mode,
            prompt=self.prompt,
        )

    def _claimed(self, answer_msg: AIMessage | None) -> list[str]:
        if answer_msg is None:
            return []
        if "cited" in answer_msg.additional_kwargs:
            return [str(c) for c in answer_msg.additional_kwargs["cited"]]
        return _BRACKETED.findall(answer_msg.text)

    def check_citations(self, claimed: Sequence[str]) -> tuple[list[CitedItem], list[str]]:
        """Keep citations of this user's items (history, or shown by the tools)."""
        allowed = set(self.ctx.history_ids()) | set(self.ctx.surfaced)
        items = self.ctx.recommender.items([c for c in claimed if c in allowed])
        kept = [CitedItem(item_id=i, title=it.title) for i, it in items.items()]
        dropped = [c for c in dict.fromkeys(claimed) if c not in items]
        return kept, dropped


def _final(new: list[BaseMessage]) -> AIMessage | None:
    last = new[-1] if new else None
    return last if isinstance(last, AIMessage) and not last.tool_calls else None


def _last_turns(messages: list[BaseMessage], turns: int) -> list[BaseMessage]:
    starts = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
    return messages[starts[-turns] :] if len(starts) > turns else messages


def tool_records(new: list[BaseMessage]) -> list[ToolCallRecord]:
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
                    valid=valid_call(call["name"], call["args"]),
                    ok=result is not None and result.status != "error",
                    result=result.text[:RESULT_CHARS] if result is not None else "",
                    item_ids=list((artifact or {}).get("item_ids", [])),
                )
            )
    return records


def valid_call(name: str, args: dict[str, Any]) -> bool:
    if name not in TOOLS:
        return False
    try:
        TOOLS[name][1].model_validate(args)
    except ValidationError:
        return False
    return True
