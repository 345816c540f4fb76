"""Shared fixtures. The real vLLM servers (CPU) start once per session, each when first asked
for: `tiny` for plumbing tests, `default` for behaviour tests.

Set PERSONAE_TEST_BASE_URL=http://127.0.0.1:PORT/v1 (a `tiny` server) or
PERSONAE_TEST_DEFAULT_BASE_URL (a `default` server) to reuse a running server while developing
(CI sets neither: there the session starts and stops its own)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from agent.config import Settings
from agent.model_prep import resolve_model
from agent.runtime.endpoint import Endpoint, describe_server
from agent.runtime.server import ManagedServer
from tests.proc import pids_in_group


@pytest.fixture(scope="session")
def packaged_tokenizer() -> PreTrainedTokenizerBase:
    """The default model's tokenizer, from the packaged weights (no server)."""
    return AutoTokenizer.from_pretrained(resolve_model(Settings()).path)


@pytest.fixture(scope="session")
def llm_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for plumbing tests on the real engine: the `tiny` preset (SmolLM2-135M,
    prepared by scripts/setup.sh; fast, but its writing is not judged), a throwaway data
    directory, a small KV cache."""
    data = tmp_path_factory.mktemp("llm-data")
    return Settings(data_dir=data, model="tiny", kv_cache_gib=1, max_model_len=4096, concurrency=16)


@pytest.fixture(scope="session")
def default_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for behaviour tests on the `default` preset (Qwen2.5-Coder-1.5B-Instruct)."""
    data = tmp_path_factory.mktemp("default-llm-data")
    return Settings(data_dir=data, kv_cache_gib=1, max_model_len=4096, concurrency=8)


def _served(settings: Settings, reuse: str | None) -> Iterator[Endpoint]:
    if reuse:
        name, max_len = describe_server(settings, reuse)
        yield Endpoint(reuse, name, max_len, managed=False)
        return
    server = ManagedServer(settings, resolve_model(settings)).start()
    assert server.process is not None
    pgid = server.process.pid
    name, max_len = describe_server(settings, server.base_url)
    yield Endpoint(
        server.base_url, name, max_len, managed=True,
        startup_seconds=server.startup_seconds, log_path=str(server.log_path),
    )  # fmt: skip
    server.stop()
    _assert_group_gone(pgid, Path(server.log_path))


@pytest.fixture(scope="session")
def vllm_endpoint(llm_settings: Settings) -> Iterator[Endpoint]:
    """The real vLLM server with `tiny`, started once per session."""
    yield from _served(llm_settings, os.environ.get("PERSONAE_TEST_BASE_URL"))


@pytest.fixture(scope="session")
def default_endpoint(default_settings: Settings) -> Iterator[Endpoint]:
    """The real vLLM server with `default`, started once per session when a behaviour test
    asks for it (PERSONAE_TEST_DEFAULT_BASE_URL reuses a running one)."""
    yield from _served(default_settings, os.environ.get("PERSONAE_TEST_DEFAULT_BASE_URL"))


def _assert_group_gone(pgid: int, log: Path, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while pids_in_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pids_in_group(pgid), f"vLLM server processes left behind (see {log})"
