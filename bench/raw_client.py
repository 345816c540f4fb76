"""The raw side of a throughput benchmark: the same prompts and schemas sent with the plain
OpenAI client through a semaphore, with the sampling settings personae uses. It only parses
the JSON of each reply; no retries, no re-asks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import openai
from pydantic import BaseModel, ValidationError

from agent.config import Settings
from agent.prompts import RenderedPrompt
from agent.runtime.endpoint import Endpoint
from agent.runtime.structured import json_schema_format


@dataclass
class RawResult:
    seconds: float
    requests: int
    valid: int
    tokens_out: int


async def send_raw(
    endpoint: Endpoint,
    settings: Settings,
    jobs: Sequence[tuple[RenderedPrompt, type[BaseModel]]],
    concurrency: int,
    max_tokens: int,
) -> RawResult:
    client = openai.AsyncOpenAI(base_url=endpoint.base_url, api_key="EMPTY", max_retries=0)
    semaphore = asyncio.Semaphore(concurrency)
    valid = tokens = 0

    async def one(prompt: RenderedPrompt, schema: type[BaseModel]) -> None:
        nonlocal valid, tokens
        async with semaphore:
            reply = await client.chat.completions.create(  # type: ignore[call-overload]
                model=endpoint.model,
                messages=[m.model_dump() for m in prompt.messages],
                response_format=json_schema_format(schema),
                max_tokens=max_tokens,
                temperature=settings.temperature,
                seed=settings.seed,
                frequency_penalty=settings.frequency_penalty,
                timeout=settings.request_timeout,
            )
        tokens += reply.usage.completion_tokens if reply.usage else 0
        try:
            schema.model_validate_json(reply.choices[0].message.content or "")
            valid += 1
        except ValidationError:
            pass  # counted as invalid

    started = time.perf_counter()
    await asyncio.gather(*(one(prompt, schema) for prompt, schema in jobs))
    seconds = time.perf_counter() - started
    await client.close()
    return RawResult(seconds, len(jobs), valid, tokens)
