"""Tool calls that are valid by construction, for models whose chat template has no tools.

On the vLLM CPU server, SmolLM2 with `--tool-call-parser` answered `required`/named
`tool_choice` with unparsed garbage and `auto` with prose; JSON-schema `response_format` worked
every time (design.md, "Runtime"). So `ConstrainedToolChatModel` wraps a plain chat model:
the tool list is in the system prompt, each reply is decoded against a JSON schema whose
alternatives (`anyOf`) are one per tool (its name as a `const`, its argument schema) plus a
final answer (its text only: the titles it names are checked after decoding, by
`agent.chat.answer_check`), and the parsed reply becomes a LangChain `AIMessage` with
`tool_calls`. `langchain.agents.create_agent` runs the loop as it
would for a native tool-calling model.

The step bound is in the schema too: the first reply of a turn must be a tool call (answers
are looked up, not guessed), and after `max_steps` tool calls only the final answer is left.
After calls the router made (`agent.chat.router`, marked `routed` on the message), only the
final answer is offered: the question's tools have run, what is left is to word the answer."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from agent.prompts import load_prompt
from agent.runtime.structured import GRAMMAR_UNFRIENDLY, to_langchain, truncated_reply

FINAL = "final_answer"
ROUTED = "routed"
"""`additional_kwargs` key of a tool call the router made, not the model."""
ANSWER_CHARS = 240
"""maxLength of the answer text: ends a small model's runaway answer inside the grammar
(a bound costs grammar compile time per character, so it stays small)."""


class ChatReplyError(RuntimeError):
    """The model's reply could not be parsed into a tool call or an answer (cut off at the
    token limit, or a model that ignores the schema), after the allowed re-asks."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


def _strip(node: Any) -> Any:
    """Drop keywords that are slow to compile into a grammar or mean nothing to it (the
    argument models' `max_length` bounds stay: they end runaway strings)."""
    if isinstance(node, dict):
        return {
            k: _strip(v)
            for k, v in node.items()
            if k not in GRAMMAR_UNFRIENDLY and k not in ("title", "default", "description")
        }
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def tool_alternative(spec: dict[str, Any]) -> dict[str, Any]:
    params = _strip(spec.get("parameters") or {"type": "object", "properties": {}})
    params.setdefault("additionalProperties", False)
    return {
        "type": "object",
        "properties": {"tool": {"const": spec["name"]}, "args": params},
        "required": ["tool", "args"],
        "additionalProperties": False,
    }


def final_alternative() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "tool": {"const": FINAL},
            "answer": {"type": "string", "maxLength": ANSWER_CHARS},
        },
        "required": ["tool", "answer"],
        "additionalProperties": False,
    }


def step_schema(specs: Sequence[dict[str, Any]], allow_final: bool) -> dict[str, Any]:
    """One reply: a call of one of `specs`, or (when allowed) the final answer."""
    alternatives = [tool_alternative(s) for s in specs]
    if allow_final or not alternatives:
        alternatives.append(final_alternative())
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def routed_turn(messages: Sequence[BaseMessage]) -> bool:
    """The router made tool calls since the user's last question."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return False
        if isinstance(message, AIMessage) and message.additional_kwargs.get(ROUTED):
            return True
    return False


def tool_steps(messages: Sequence[BaseMessage]) -> int:
    """Tool-calling replies since the user's last question."""
    count = 0
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage) and message.tool_calls:
            count += 1
    return count


def called_tools(messages: Sequence[BaseMessage]) -> set[str]:
    """Names of the tools called since the user's last question."""
    names: set[str] = set()
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            break
        if isinstance(message, AIMessage):
            names.update(call["name"] for call in message.tool_calls)
    return names


def plain_messages(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The conversation as system/user/assistant text (the template knows no tool roles):
    the model's own tool calls as the JSON it wrote, tool results as user turns."""
    plain: list[BaseMessage] = []
    for m in messages:
        if isinstance(m, ToolMessage):
            plain.append(HumanMessage(content=f"Result of {m.name}:\n{m.text}"))
        elif isinstance(m, AIMessage) and m.tool_calls:
            calls = [{"tool": c["name"], "args": c["args"]} for c in m.tool_calls]
            plain += [AIMessage(content=_compact(call)) for call in calls]
        elif isinstance(m, AIMessage):
            plain.append(AIMessage(content=_compact({"tool": FINAL, "answer": m.text})))
        elif isinstance(m, SystemMessage | HumanMessage):
            plain.append(m)
        else:
            raise TypeError(f"cannot render a {type(m).__name__} for the model")
    return plain


def _compact(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class ConstrainedToolChatModel(BaseChatModel):
    inner: BaseChatModel
    max_tokens: int = 160
    max_steps: int = 3
    """Tool calls per turn; the reply after the last one can only be the final answer."""
    tool_first: bool = True
    """The first reply of a turn must call a tool."""
    once_per_turn: bool = True
    """Each tool at most once per turn: small models otherwise repeat the same call until
    the step limit (seen with SmolLM2: three identical calls in a row)."""
    max_reasks: int = 1
    tool_specs: list[dict[str, Any]] = []

    @property
    def _llm_type(self) -> str:
        return "constrained-tools"

    def bind_tools(
        self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any
    ) -> Runnable[Any, AIMessage]:
        """A copy that offers these tools. `tool_choice` is not needed: which alternatives
        the schema offers decides it (see `step_schema`)."""
        specs = [convert_to_openai_tool(t)["function"] for t in tools]
        return self.model_copy(update={"tool_specs": specs})

    def schema_for(self, messages: Sequence[BaseMessage]) -> dict[str, Any]:
        steps = tool_steps(messages)
        called = called_tools(messages) if self.once_per_turn else set()
        specs = [s for s in self.tool_specs if s["name"] not in called]
        specs = specs if steps < self.max_steps and not routed_turn(messages) else []
        allow_final = not (self.tool_first and steps == 0 and specs)
        return step_schema(specs, allow_final)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        schema = self.schema_for(messages)
        response_format = {"type": "json_schema", "json_schema": {"name": "step", "schema": schema}}
        bound = self.inner.bind(response_format=response_format, max_tokens=self.max_tokens)
        talk = plain_messages(messages)
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        for attempt in range(self.max_reasks + 1):
            try:
                reply = bound.invoke(talk)
            except openai.LengthFinishReasonError as err:
                reply = truncated_reply(err)
            for key, value in (getattr(reply, "usage_metadata", None) or {}).items():
                if key in usage:
                    usage[key] += int(value)
            raw = reply.text if isinstance(reply, BaseMessage) else str(reply)
            parsed, problem = self.parse(raw, schema)
            if parsed is not None:
                parsed.usage_metadata = usage  # type: ignore[assignment]
                parsed.response_metadata = {"attempts": attempt + 1}
                return ChatResult(generations=[ChatGeneration(message=parsed)])
            talk = [*talk, AIMessage(content=raw), *_reask(problem)]
        raise ChatReplyError(f"no valid reply after {self.max_reasks + 1} tries: {problem}", raw)

    @staticmethod
    def parse(raw: str, schema: dict[str, Any]) -> tuple[AIMessage | None, str]:
        """The reply as a tool call or final answer, or (None, what is wrong)."""
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            data = salvage(raw)
            if data is None:
                return None, f"not valid JSON ({err.msg}); the reply may have been cut off"
        alternatives = schema.get("anyOf", [schema])
        names = {a["properties"]["tool"]["const"] for a in alternatives}
        if not isinstance(data, dict) or data.get("tool") not in names:
            return None, f'"tool" must be one of {sorted(names)}'
        if data["tool"] == FINAL:
            answer = data.get("answer")
            if not isinstance(answer, str):
                return None, '"answer" must be text'
            extra = {"truncated": bool(data.get("truncated"))}
            return AIMessage(content=answer.strip(), additional_kwargs=extra), ""
        args = data.get("args")
        if not isinstance(args, dict):
            return None, '"args" must be an object'
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        return AIMessage(
            content="", tool_calls=[{"name": data["tool"], "args": args, "id": call_id}]
        ), ""


_OPEN_ANSWER = re.compile(r'^\{\s*"tool"\s*:\s*"final_answer"\s*,\s*"answer"\s*:\s*"')


def salvage(raw: str) -> dict[str, Any] | None:
    """A final answer cut off inside its text, closed with an ellipsis (None otherwise):
    re-asking would only cut it off again."""
    if not _OPEN_ANSWER.match(raw):
        return None
    text = raw[:-1] if raw.endswith("\\") and not raw.endswith("\\\\") else raw
    try:
        data = json.loads(text + '..."}')
    except json.JSONDecodeError:
        return None
    return {**data, "truncated": True} if isinstance(data, dict) else None


def _reask(problem: str) -> list[BaseMessage]:
    return to_langchain(load_prompt("reask", 1).render(problems=[problem]).messages)
