"""StructuredGenerator plumbing with a scripted chat model: re-asks, typed errors, retries,
bounded concurrency. The real-server behaviour is in test_runtime_server.py."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from pydantic import BaseModel, Field
from tenacity import wait_none

from agent.config import Settings
from agent.prompts import load_prompt
from agent.runtime.structured import (
    Generated,
    LLMUnavailableError,
    StructuredGenerator,
    StructuredOutputError,
    decoding_schema,
)
from tests.fakes import ScriptedChatModel


class Pet(BaseModel):
    name: str
    legs: int = Field(ge=0, le=8)


VALID = '{"name": "Rex", "legs": 4}'


def make(
    script: list[str | BaseException], **settings: object
) -> tuple[StructuredGenerator, ScriptedChatModel]:
    chat = ScriptedChatModel(script=script)
    base = {"transport_retries": 2, "max_reasks": 2, "concurrency": 3}
    generator = StructuredGenerator(
        Settings(**(base | settings)),
        chat,
        "scripted",
        retry_wait=wait_none(),  # type: ignore[arg-type]
    )
    return generator, chat


def prompt():  # type: ignore[no-untyped-def]
    return load_prompt("runtime_check", 1).render(title="Alien", year=1979)


def refused() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1"))


def test_valid_reply_returns_instance_and_metadata() -> None:
    generator, chat = make([VALID])
    result = generator.generate(prompt(), Pet, max_tokens=50)
    assert result.value == Pet(name="Rex", legs=4)
    assert result.meta.attempts == 1 and result.meta.reasks == 0
    assert result.meta.prompt.id == "runtime_check" and result.meta.prompt.version == 1
    assert result.meta.tokens_in == 10 and result.meta.tokens_out == len(VALID)
    sent = chat.calls[0][1]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == decoding_schema(Pet)
    assert sent["max_tokens"] == 50


def test_invalid_reply_is_reasked_with_the_validation_error() -> None:
    generator, chat = make(['{"name": "Rex", "legs": 12}', VALID])
    result = generator.generate(prompt(), Pet)
    assert result.value.legs == 4
    assert result.meta.attempts == 2 and result.meta.reasks == 1
    reask_messages = chat.calls[1][0]
    assert reask_messages[-2].content == '{"name": "Rex", "legs": 12}'  # its own reply
    assert "legs" in str(reask_messages[-1].content)  # the problem, named by field
    assert "less than or equal to 8" in str(reask_messages[-1].content)


def test_gives_up_after_max_reasks_with_typed_error_carrying_last_reply() -> None:
    generator, chat = make(["not json", '{"name": 1}', '{"legs": 99}'], max_reasks=2)
    with pytest.raises(StructuredOutputError) as caught:
        generator.generate(prompt(), Pet)
    assert caught.value.last_raw == '{"legs": 99}'
    assert caught.value.meta.attempts == 3
    assert any("name" in p for p in caught.value.problems)
    assert len(chat.calls) == 3


def test_semantic_check_problems_are_reasked() -> None:
    generator, _ = make(['{"name": "Ghost", "legs": 4}', VALID])

    def no_ghosts(pet: Pet) -> list[str]:
        return ["name: ghosts are not pets"] if pet.name == "Ghost" else []

    result = generator.generate(prompt(), Pet, check=no_ghosts)
    assert result.value.name == "Rex" and result.meta.reasks == 1


def test_transport_errors_are_retried_then_succeed() -> None:
    generator, _ = make([refused(), openai.APITimeoutError(httpx.Request("POST", "x")), VALID])
    result = generator.generate(prompt(), Pet)
    assert result.meta.transport_retries == 2 and result.meta.attempts == 1


def test_transport_retries_are_bounded() -> None:
    generator, chat = make([refused(), refused(), refused(), VALID], transport_retries=2)
    with pytest.raises(LLMUnavailableError, match="failed 3 time"):
        generator.generate(prompt(), Pet)
    assert len(chat.calls) == 3


def test_client_errors_are_not_retried() -> None:
    bad = openai.BadRequestError(
        "bad schema", response=httpx.Response(400, request=httpx.Request("POST", "x")), body=None
    )
    generator, chat = make([bad, VALID])
    with pytest.raises(openai.BadRequestError):
        generator.generate(prompt(), Pet)
    assert len(chat.calls) == 1


def test_batch_bounds_concurrency_and_keeps_order_and_failures_in_place() -> None:
    script: list[str | BaseException] = [VALID] * 7
    generator, chat = make(script, concurrency=3, max_reasks=0)
    chat.delay_s = 0.02
    chat.script.insert(3, "garbage")  # the 4th call fails validation, no re-asks allowed
    seen: list[int] = []
    results = asyncio.run(
        generator.abatch([(prompt(), Pet)] * 8, on_result=lambda i, r: seen.append(i))
    )
    assert len(results) == 8 and sorted(seen) == list(range(8))
    assert chat.max_in_flight == 3
    failures = [r for r in results if isinstance(r, StructuredOutputError)]
    assert len(failures) == 1 and failures[0].last_raw == "garbage"
    assert all(isinstance(r, Generated) for r in results if r is not failures[0])


def cut_off(content: str) -> openai.LengthFinishReasonError:
    from openai.types.chat import ChatCompletion

    completion = ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "scripted",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": content},
                }
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 50, "total_tokens": 57},
        }
    )
    return openai.LengthFinishReasonError(completion=completion)


def test_reply_cut_off_at_max_tokens_is_reasked_saying_so() -> None:
    generator, chat = make([cut_off('{"name": "Rex",      '), VALID])
    result = generator.generate(prompt(), Pet)
    assert result.meta.reasks == 1 and result.meta.attempts == 2
    assert result.meta.tokens_out == 50 + len(VALID)
    assert "cut off at the token limit" in str(chat.calls[1][0][-1].content)
    assert chat.calls[1][0][-2].content == '{"name": "Rex",      '
