"""The real vLLM server on CPU with the default model (slow; CI runs these)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import Literal

import pytest
from pydantic import BaseModel, Field
from tenacity import wait_none

from agent.config import Settings
from agent.prompts import PromptMessage, PromptRef, RenderedPrompt, load_prompt
from agent.runtime.check import FilmSample, Genre
from agent.runtime.endpoint import Endpoint
from agent.runtime.structured import Generated, LLMUnavailableError, StructuredGenerator
from tests.proc import pids_in_group

pytestmark = pytest.mark.slow


class MovieReview(BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    aspects: list[Literal["plot", "acting", "music", "visuals"]] = Field(min_length=1, max_length=2)
    stars: int = Field(ge=1, le=5)


def review_prompt(text: str) -> RenderedPrompt:
    return RenderedPrompt(
        ref=PromptRef(id="test_review", version=1, hash="test"),
        messages=(
            PromptMessage(role="system", content="Classify the movie review as JSON."),
            PromptMessage(role="user", content=f"Review: {text}"),
        ),
    )


def strict_generator(
    settings: Settings, endpoint: Endpoint, **overrides: object
) -> StructuredGenerator:
    """No re-asks: any schema violation would surface, so passing means decoding obeyed it."""
    strict = settings.model_copy(update={"max_reasks": 0, **overrides})
    return StructuredGenerator.for_endpoint(strict, endpoint.base_url, endpoint.model)


def test_structured_reply_validates(llm_settings: Settings, vllm_endpoint: Endpoint) -> None:
    generator = strict_generator(llm_settings, vllm_endpoint)
    prompt = load_prompt("runtime_check").render(title="Toy Story", year=1995)
    result = generator.generate(prompt, FilmSample, max_tokens=200)
    assert isinstance(result.value.genre, Genre)
    assert 1 <= len(result.value.keywords) <= 3
    assert result.meta.model == vllm_endpoint.model
    assert result.meta.tokens_in > 0 and result.meta.tokens_out > 0
    assert result.meta.attempts == 1 and result.meta.latency_s > 0


def test_enum_and_bounded_list_are_obeyed(llm_settings: Settings, vllm_endpoint: Endpoint) -> None:
    generator = strict_generator(llm_settings, vllm_endpoint)
    text = "Great acting, gorgeous visuals, lovely score, clever plot. Five stars!"
    result = generator.generate(review_prompt(text), MovieReview, max_tokens=80)
    assert result.value.sentiment in {"positive", "negative", "neutral"}
    assert 1 <= len(result.value.aspects) <= 2  # four candidates offered, the bound held
    assert 1 <= result.value.stars <= 5


def test_sixteen_concurrent_requests_complete(
    llm_settings: Settings, vllm_endpoint: Endpoint
) -> None:
    generator = strict_generator(llm_settings, vllm_endpoint, concurrency=16)
    texts = [f"Review number {i}: {'loved' if i % 2 else 'hated'} the plot." for i in range(16)]
    jobs = [(review_prompt(t), MovieReview) for t in texts]
    results = asyncio.run(generator.abatch(jobs, max_tokens=80))
    assert len(results) == 16
    assert all(isinstance(r, Generated) for r in results)


def test_connection_refused_is_retried_then_raises_clear_error(llm_settings: Settings) -> None:
    dead = "http://127.0.0.1:9/v1"  # discard port: nothing listens, connection refused
    settings = llm_settings.model_copy(update={"transport_retries": 2, "request_timeout": 5.0})
    generator = StructuredGenerator.for_endpoint(settings, dead, "SmolLM2-135M-Instruct")
    generator.retry_wait = wait_none()
    started = time.monotonic()
    with pytest.raises(LLMUnavailableError, match=r"127\.0\.0\.1:9.*failed 3 time"):
        generator.generate(review_prompt("fine"), MovieReview)
    assert time.monotonic() - started < 60


def test_a_server_that_never_replies_times_out_with_the_setting_named(
    llm_settings: Settings,
) -> None:
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        settings = llm_settings.model_copy(update={"transport_retries": 1, "request_timeout": 0.5})
        generator = StructuredGenerator.for_endpoint(settings, url, "SmolLM2-135M-Instruct")
        generator.retry_wait = wait_none()
        with pytest.raises(LLMUnavailableError, match=r"request_timeout=0\.5 s, 2 time"):
            generator.generate(review_prompt("fine"), MovieReview)


_CHILD = textwrap.dedent(
    """
    import time
    from agent.config import Settings
    from agent.model_prep import resolve_model
    from agent.runtime.server import ManagedServer
    settings = Settings(model="tiny", kv_cache_gib=1)  # the lifetime is under test, not the model
    server = ManagedServer(settings, resolve_model(settings)).start()
    print(server.process.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_managed_server_dies_with_its_owner(how: signal.Signals) -> None:
    """Ctrl-C stops the server through the handler; kill -9 of the owner leaves the kernel's
    parent-death signal to do it. Either way, no process of the server's group survives."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    owner = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True, env=env
    )
    assert owner.stdout is not None
    line = owner.stdout.readline()
    assert line.strip().isdigit(), f"owner did not start the server (exit {owner.poll()})"
    server_pgid = int(line)
    assert pids_in_group(server_pgid), "server not running"
    owner.send_signal(how)
    owner.wait(timeout=60)
    deadline = time.monotonic() + 60
    while pids_in_group(server_pgid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not pids_in_group(server_pgid)


def test_one_generator_serves_several_event_loops(
    llm_settings: Settings, vllm_endpoint: Endpoint
) -> None:
    """Batch jobs call asyncio.run per chunk: the HTTP client must not outlive its loop."""
    generator = strict_generator(llm_settings, vllm_endpoint)
    jobs = [(review_prompt("Loved it."), MovieReview)]
    for _ in range(2):
        results = asyncio.run(generator.abatch(jobs, max_tokens=80))
        assert isinstance(results[0], Generated)
    assert isinstance(
        generator.generate(review_prompt("Meh."), MovieReview, max_tokens=80), Generated
    )
