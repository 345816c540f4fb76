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

import httpx
import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.wait import wait_base

from agent.config import Settings
from agent.prompts import PromptMessage, PromptRef, RenderedPrompt, load_prompt

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R", AsyncRetrying, Retrying)

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


CUT_OFF = "(root): the reply was cut off at the token limit; keep every text field short"


class LLMUnavailableError(RuntimeError):
    """The server kept failing at the transport level (refused, 5xx, timeout) after retries."""


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


GRAMMAR_UNFRIENDLY = frozenset({"minLength"})
"""Left out of the decoding schema: a minimum length adds grammar states for nothing (empty
text is caught by validation and re-asked). `maxLength` stays: it is what stops a small model's
runaway string, and `agent.schemas.text.clip` keeps its bounds small because each character of
bound costs compile time (measured on 2 busy cores: 0.02 s with no bounds, ~5 s with
680 characters of bounds, per schema)."""


def decoding_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema without the keywords that are costly to compile."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in GRAMMAR_UNFRIENDLY}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return dict(strip(schema.model_json_schema()))


def json_schema_format(schema: type[BaseModel]) -> dict[str, Any]:
    """The `response_format` body vLLM turns into constrained decoding."""
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": decoding_schema(schema)},
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
        api_key=settings.api_key,
        temperature=settings.temperature,
        seed=settings.seed,
        frequency_penalty=settings.frequency_penalty,
        timeout=settings.request_timeout,
        max_retries=0,
        # Own clients: langchain-openai's shared default async client is bound to the first
        # event loop that used it, and every asyncio.run() makes a new loop.
        http_client=httpx.Client(timeout=settings.request_timeout),
        http_async_client=httpx.AsyncClient(timeout=settings.request_timeout),
    )


class StructuredGenerator:
    def __init__(
        self,
        settings: Settings,
        chat_model: BaseChatModel,
        model_name: str,
        retry_wait: wait_base | None = None,
        base_url: str = "(in-process model)",
    ) -> None:
        self.settings = settings
        self.base_url = base_url
        self.model_factory: Callable[[], BaseChatModel] | None = None
        self._loop_model: tuple[asyncio.AbstractEventLoop, BaseChatModel] | None = None
        self.chat_model = chat_model
        self.model_name = model_name
        self.retry_wait = retry_wait or wait_exponential_jitter(multiplier=0.5, max=10.0)

    @classmethod
    def for_endpoint(cls, settings: Settings, base_url: str, model: str) -> StructuredGenerator:
        chat_model = make_chat_model(settings, base_url, model)
        generator = cls(settings, chat_model, model, base_url=base_url)
        generator.model_factory = lambda: make_chat_model(settings, base_url, model)
        return generator

    async def agenerate(
        self,
        prompt: RenderedPrompt,
        schema: type[T],
        *,
        max_tokens: int | None = None,
        check: Check[T] | None = None,
    ) -> Generated[T]:
        talk = _Conversation(self, prompt, schema, check)
        bound = self._bind(schema, max_tokens, self._async_model())
        while True:
            try:
                async for attempt in self._retrying(AsyncRetrying):
                    with attempt:
                        talk.count_retry(attempt.retry_state.attempt_number)
                        reply = await bound.ainvoke(talk.messages)
            except TRANSPORT_ERRORS as err:
                raise self._unavailable(err) from err
            except openai.LengthFinishReasonError as err:
                reply = truncated_reply(err)
            if (done := talk.take(reply)) is not None:
                return done

    def generate(
        self,
        prompt: RenderedPrompt,
        schema: type[T],
        *,
        max_tokens: int | None = None,
        check: Check[T] | None = None,
    ) -> Generated[T]:
        """Blocking form of `agenerate`. It uses the chat model's sync client: running
        `agenerate` under `asyncio.run` twice would reuse an async HTTP client across loops."""
        talk = _Conversation(self, prompt, schema, check)
        bound = self._bind(schema, max_tokens)
        while True:
            try:
                for attempt in self._retrying(Retrying):
                    with attempt:
                        talk.count_retry(attempt.retry_state.attempt_number)
                        reply = bound.invoke(talk.messages)
            except TRANSPORT_ERRORS as err:
                raise self._unavailable(err) from err
            except openai.LengthFinishReasonError as err:
                reply = truncated_reply(err)
            if (done := talk.take(reply)) is not None:
                return done

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

        try:
            async with asyncio.TaskGroup() as group:
                for index, (prompt, schema) in enumerate(jobs):
                    group.create_task(run(index, prompt, schema))
        except ExceptionGroup as failed:  # the first failure cancelled the rest: raise it plainly
            raise failed.exceptions[0] from failed
        return [r for r in results if r is not None]

    def _async_model(self) -> BaseChatModel:
        """The chat model for the running event loop: HTTP clients cannot cross loops, so a
        generator made by `for_endpoint` gets a fresh client per loop."""
        if self.model_factory is None:
            return self.chat_model
        loop = asyncio.get_running_loop()
        if self._loop_model is None or self._loop_model[0] is not loop:
            self._loop_model = (loop, self.model_factory())
        return self._loop_model[1]

    def _bind(
        self, schema: type[BaseModel], max_tokens: int | None, model: BaseChatModel | None = None
    ) -> Runnable[Any, Any]:
        return (model or self.chat_model).bind(
            response_format=json_schema_format(schema), max_tokens=max_tokens
        )

    def _retrying(self, kind: type[R]) -> R:
        """Retry transport errors only, with bounded exponential backoff."""
        return kind(
            stop=stop_after_attempt(self.settings.transport_retries + 1),
            wait=self.retry_wait,
            retry=retry_if_exception_type(TRANSPORT_ERRORS),
            reraise=True,
        )

    def _unavailable(self, err: BaseException) -> LLMUnavailableError:
        tries = self.settings.transport_retries + 1
        if isinstance(err, openai.APITimeoutError):
            return LLMUnavailableError(
                f"LLM server {self.base_url} gave no reply within request_timeout="
                f"{self.settings.request_timeout:g} s, {tries} time(s) in a row: a reply that "
                f"runs to its token limit on CPU at concurrency {self.settings.concurrency} can "
                "take longer; raise PERSONAE_REQUEST_TIMEOUT or lower --concurrency"
            )
        return LLMUnavailableError(
            f"LLM server {self.base_url} failed {tries} time(s) in a row "
            f"({type(err).__name__}: {err}); is it running? (personae serve / --base-url)"
        )


class _Conversation(Generic[T]):
    """One structured generation in progress: the messages so far and the metadata."""

    def __init__(
        self,
        generator: StructuredGenerator,
        prompt: RenderedPrompt,
        schema: type[T],
        check: Check[T] | None,
    ) -> None:
        self.max_reasks = generator.settings.max_reasks
        self.schema = schema
        self.check = check
        self.messages = to_langchain(prompt.messages)
        self.meta = GenerationMeta(model=generator.model_name, prompt=prompt.ref)
        self.started = time.monotonic()

    def count_retry(self, attempt_number: int) -> None:
        if attempt_number > 1:
            self.meta.transport_retries += 1

    def take(self, reply: BaseMessage) -> Generated[T] | None:
        """Record a reply; return the result if it validates, None to ask again, or raise
        `StructuredOutputError` when the re-asks are used up."""
        if not isinstance(reply, AIMessage):
            raise TypeError(f"chat model returned {type(reply).__name__}, expected AIMessage")
        meta = self.meta
        meta.attempts += 1
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        meta.tokens_in += int(usage.get("input_tokens", 0))
        meta.tokens_out += int(usage.get("output_tokens", 0))
        meta.latency_s = time.monotonic() - self.started
        outcome = self._validate(reply.text)
        if isinstance(outcome, list) and reply.response_metadata.get("finish_reason") == "length":
            outcome = [CUT_OFF, *outcome]
        if not isinstance(outcome, list):
            return Generated[self.schema](value=outcome, meta=meta)  # type: ignore[name-defined]
        if meta.reasks >= self.max_reasks:
            raise StructuredOutputError(outcome, reply.text, meta)
        meta.reasks += 1
        self.messages = [*self.messages, AIMessage(content=reply.text), *_reask_messages(outcome)]
        return None

    def _validate(self, raw: str) -> T | list[str]:
        """The validated object, or the problems to send back."""
        try:
            value = self.schema.model_validate_json(raw)
        except ValidationError as err:
            return validation_problems(err)
        problems = self.check(value) if self.check else []
        return problems or value


def truncated_reply(err: openai.LengthFinishReasonError) -> AIMessage:
    """The openai client raises instead of returning a reply cut off at `max_tokens`; turn it
    back into a reply so that it is re-asked like any other invalid one."""
    choice = err.completion.choices[0]
    usage = err.completion.usage
    tokens_in = usage.prompt_tokens if usage else 0
    tokens_out = usage.completion_tokens if usage else 0
    return AIMessage(
        content=choice.message.content or "",
        response_metadata={"finish_reason": "length"},
        usage_metadata={
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        },
    )


def _reask_messages(problems: list[str]) -> list[BaseMessage]:
    return to_langchain(load_prompt("reask", 1).render(problems=problems).messages)
