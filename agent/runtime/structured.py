"""Validated Pydantic objects out of an OpenAI-compatible vLLM server.

One class, `StructuredGenerator`: messages from a prompt template plus a Pydantic model in, a
validated instance plus metadata out. The JSON schema goes in `response_format`, so vLLM
constrains decoding. Transport errors are retried with tenacity (bounded exponential backoff);
a reply that fails validation is sent back with the problems up to `max_reasks` times, then a
`StructuredOutputError` carrying the last raw reply is raised."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agent.config import Settings
from agent.prompts import PromptMessage, PromptRef, RenderedPrompt, load_prompt

T = TypeVar("T", bound=BaseModel)

Check = Callable[[T], list[str]]
"""Semantic checks beyond the schema (e.g. "evidence ids must be in the history"): returns
problems; a non-empty list is sent back to the model like a validation error."""

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    openai.APIConnectionError,  # includes APITimeoutError
    openai.InternalServerError,
    openai.RateLimitError,
)


class GenerationMeta(BaseModel):
    """How a structured result was made; stored next to it."""

    model: str
    prompt: PromptRef
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    attempts: int = 0
    """LLM calls that returned a reply (1 = valid at first try)."""
    reasks: int = 0
    transport_retries: int = 0


class Generated(BaseModel, Generic[T]):
    value: T
    meta: GenerationMeta


class StructuredOutputError(RuntimeError):
    """The model did not produce a valid object within the allowed re-asks."""

    def __init__(self, problems: list[str], last_raw: str, meta: GenerationMeta) -> None:
        shown = "; ".join(problems[:5])
        super().__init__(
            f"prompt {meta.prompt.id} v{meta.prompt.version}: no valid reply after "
            f"{meta.attempts} attempt(s): {shown}"
        )
        self.problems = problems
        self.last_raw = last_raw
        self.meta = meta


def json_schema_format(schema: type[BaseModel]) -> dict[str, Any]:
    """The `response_format` body vLLM turns into constrained decoding."""
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()},
    }


def validation_problems(err: ValidationError) -> list[str]:
    problems = []
    for item in err.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        problems.append(f"{where}: {item['msg']}")
    return problems


def to_langchain(messages: Sequence[PromptMessage]) -> list[BaseMessage]:
    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m.role](content=m.content) for m in messages]


def make_chat_model(settings: Settings, base_url: str, model: str) -> BaseChatModel:
    """ChatOpenAI against a vLLM server. Its own retries are off: tenacity retries here."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=base_url,
        model=model,
        api_key=settings.api_key,  # type: ignore[arg-type]
        temperature=settings.temperature,
        seed=settings.seed,
        timeout=settings.request_timeout,
        max_retries=0,
    )


class StructuredGenerator:
    def __init__(self, settings: Settings, chat_model: BaseChatModel, model_name: str) -> None:
        self.settings = settings
        self.chat_model = chat_model
        self.model_name = model_name

    @classmethod
    def for_endpoint(cls, settings: Settings, base_url: str, model: str) -> StructuredGenerator:
        return cls(settings, make_chat_model(settings, base_url, model), model)

    async def agenerate(
        self,
        prompt: RenderedPrompt,
        schema: type[T],
        *,
        max_tokens: int | None = None,
        check: Check[T] | None = None,
    ) -> Generated[T]:
        meta = GenerationMeta(model=self.model_name, prompt=prompt.ref)
        bound = self.chat_model.bind(
            response_format=json_schema_format(schema), max_tokens=max_tokens
        )
        messages = to_langchain(prompt.messages)
        started = time.monotonic()
        while True:
            reply = await self._call(bound.ainvoke, messages, meta)
            raw = reply.text
            outcome = self._validate(raw, schema, check)
            meta.latency_s = time.monotonic() - started
            if not isinstance(outcome, list):
                return Generated[schema](value=outcome, meta=meta)  # type: ignore[valid-type]
            problems = outcome
            if meta.reasks >= self.settings.max_reasks:
                raise StructuredOutputError(problems, raw, meta)
            meta.reasks += 1
            messages = [*messages, AIMessage(content=raw), *_reask_messages(problems)]

    def generate(
        self,
        prompt: RenderedPrompt,
        schema: type[T],
        *,
        max_tokens: int | None = None,
        check: Check[T] | None = None,
    ) -> Generated[T]:
        """Blocking form of `agenerate` for scripts and the CLI (not inside an event loop)."""
        return asyncio.run(self.agenerate(prompt, schema, max_tokens=max_tokens, check=check))

    async def abatch(
        self,
        jobs: Sequence[tuple[RenderedPrompt, type[T]]],
        *,
        max_tokens: int | None = None,
        check: Check[T] | None = None,
        on_result: Callable[[int, Generated[T] | StructuredOutputError], Awaitable[None] | None]
        | None = None,
    ) -> list[Generated[T] | StructuredOutputError]:
        """Run many generations with at most `settings.concurrency` in flight. A job that ends
        in `StructuredOutputError` is returned in its slot, not raised; transport errors that
        outlast the retries are raised. `on_result(index, result)` fires as each one finishes."""
        semaphore = asyncio.Semaphore(self.settings.concurrency)
        results: list[Generated[T] | StructuredOutputError | None] = [None] * len(jobs)

        async def run(index: int, prompt: RenderedPrompt, schema: type[T]) -> None:
            async with semaphore:
                result: Generated[T] | StructuredOutputError
                try:
                    result = await self.agenerate(
                        prompt, schema, max_tokens=max_tokens, check=check
                    )
                except StructuredOutputError as err:
                    result = err
            results[index] = result
            if on_result is not None:
                maybe = on_result(index, result)
                if maybe is not None:
                    await maybe

        async with asyncio.TaskGroup() as group:
            for index, (prompt, schema) in enumerate(jobs):
                group.create_task(run(index, prompt, schema))
        return [r for r in results if r is not None]

    async def _call(
        self,
        invoke: Callable[[list[BaseMessage]], Awaitable[BaseMessage]],
        messages: list[BaseMessage],
        meta: GenerationMeta,
    ) -> AIMessage:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.transport_retries + 1),
            wait=wait_exponential_jitter(initial=0.5, max=10.0),
            retry=retry_if_exception_type(TRANSPORT_ERRORS),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    meta.transport_retries += 1
                reply = await invoke(messages)
        meta.attempts += 1
        if not isinstance(reply, AIMessage):
            raise TypeError(f"chat model returned {type(reply).__name__}, expected AIMessage")
        usage = reply.usage_metadata or {}
        meta.tokens_in += int(usage.get("input_tokens", 0))
        meta.tokens_out += int(usage.get("output_tokens", 0))
        return reply

    @staticmethod
    def _validate(raw: str, schema: type[T], check: Check[T] | None) -> T | list[str]:
        """The validated object, or the list of problems to send back."""
        try:
            value = schema.model_validate_json(raw)
        except ValidationError as err:
            return validation_problems(err)
        problems = check(value) if check else []
        return problems or value


def _reask_messages(problems: list[str]) -> list[BaseMessage]:
    return to_langchain(load_prompt("reask", 1).render(problems=problems).messages)
