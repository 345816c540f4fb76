"""Deterministic test doubles for plumbing and error paths only (never to claim quality).
They share their plumbing with the `--smoke` model in evals/smoke.py."""

from __future__ import annotations

import asyncio
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import PrivateAttr

from evals.smoke import Filler, ReplyChatModel, SmokeChatModel, chat_result, prompt_text

Step = str | BaseException


class ScriptedChatModel(ReplyChatModel):
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

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        self._calls.append((list(messages), dict(kwargs)))
        if not self.script:
            raise AssertionError("ScriptedChatModel ran out of scripted steps")
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return chat_result(step, 10, len(step))

    async def _areply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            return self._reply(messages, kwargs)
        finally:
            self._in_flight -= 1


class SchemaFiller(SmokeChatModel):
    """The smoke model with a fixed enum choice: a minimal valid object built from the JSON
    schema it was sent (the same enum value everywhere, shortest list). Deterministic; proves
    plumbing only. `poison` replies invalid JSON when a prompt contains one of its strings;
    `stop_after` raises `Interrupted` at that call, like a killed run."""

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
        prompt = prompt_text(messages)
        if any(p in prompt for p in self.poison):
            return chat_result("not json", len(prompt) // 4, len("not json") // 4)
        return super()._reply(messages, kwargs)

    async def _areply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        await asyncio.sleep(0)  # let concurrent calls interleave, as a server would
        return self._reply(messages, kwargs)

    def filler(self, schema: dict[str, Any], prompt: str) -> Filler:
        return Filler(schema, self.enum_pick, rotate=False, word="word ")


class Interrupted(RuntimeError):
    """Stands for a crash mid-run (an error nobody handles)."""
