"""Deterministic test doubles for plumbing and error paths only (never to claim quality)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

Step = str | BaseException


class ScriptedChatModel(BaseChatModel):
    """Replies with the scripted steps in order: a string is a reply, an exception is raised.
    Records every call's messages and kwargs, and the highest number of calls in flight."""

    script: list[Step]
    delay_s: float = 0.0
    _calls: list[tuple[list[BaseMessage], dict[str, Any]]] = PrivateAttr(default_factory=list)
    _in_flight: int = PrivateAttr(default=0)
    _max_in_flight: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def calls(self) -> list[tuple[list[BaseMessage], dict[str, Any]]]:
        return self._calls

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    def _next(self, messages: Sequence[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        self._calls.append((list(messages), dict(kwargs)))
        if not self.script:
            raise AssertionError("ScriptedChatModel ran out of scripted steps")
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        usage = {"input_tokens": 10, "output_tokens": len(step), "total_tokens": 10 + len(step)}
        message = AIMessage(content=step, usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._next(messages, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            return self._next(messages, kwargs)
        finally:
            self._in_flight -= 1


class SchemaFiller(BaseChatModel):
    """Answers every structured request with a minimal valid object built from the JSON schema
    it was sent (first enum value, shortest list, bounds respected). Deterministic and
    input-dependent; proves plumbing only. `poison` replies invalid JSON when a prompt contains
    one of its strings; `stop_after` raises `Interrupted` at that call, like a killed run."""

    poison: tuple[str, ...] = ()
    stop_after: int | None = None
    enum_pick: int = 0
    """Which enum value to answer (0 first, -1 last)."""
    _count: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "schema-filler"

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        self._count += 1
        if self.stop_after is not None and self._count > self.stop_after:
            raise Interrupted(f"stopped at call {self._count}")
        prompt = "\n".join(str(m.content) for m in messages)
        if any(p in prompt for p in self.poison):
            content = "not json"
        else:
            schema = kwargs["response_format"]["json_schema"]["schema"]
            content = json.dumps(fill(schema, schema, self.enum_pick))
        usage = {"input_tokens": len(prompt) // 4, "output_tokens": len(content) // 4}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        message = AIMessage(content=content, usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None,
                  **kwargs: Any) -> ChatResult:  # fmt: skip
        return self._reply(messages, kwargs)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None,
                         **kwargs: Any) -> ChatResult:  # fmt: skip
        await asyncio.sleep(0)
        return self._reply(messages, kwargs)


class Interrupted(RuntimeError):
    """Stands for a crash mid-run (an error nobody handles)."""


def fill(node: dict[str, Any], root: dict[str, Any], pick: int = 0) -> Any:
    if "$ref" in node:
        return fill(root["$defs"][node["$ref"].split("/")[-1]], root, pick)
    if "anyOf" in node:
        return fill(node["anyOf"][0], root, pick)
    if "enum" in node:
        return node["enum"][pick]
    if "const" in node:
        return node["const"]
    kind = node.get("type")
    if kind == "object":
        required = node.get("required", list(node.get("properties", {})))
        return {k: fill(node["properties"][k], root, pick) for k in required}
    if kind == "array":
        count = max(1, node.get("minItems", 0))
        return [fill(node["items"], root, pick) for _ in range(count)]
    if kind == "string":
        return "word " * max(1, node.get("minLength", 1) // 5 + 1)
    if kind in ("number", "integer"):
        return node.get("minimum", 0)
    if kind == "boolean":
        return True
    raise ValueError(f"schema node not handled by the filler: {node}")
