"""Deterministic test doubles for plumbing and error paths only (never to claim quality)."""

from __future__ import annotations

import asyncio
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
