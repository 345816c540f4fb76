"""Shared fixtures. The real vLLM server (default model, CPU) is started once per session.

Set PERSONAE_TEST_BASE_URL=http://127.0.0.1:PORT/v1 to reuse a running server while developing
(CI never sets it: there the session starts and stops its own)."""

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
    """Settings for real-model tests: the prepared default model from the user cache (made by
    scripts/setup.sh), a throwaway data directory, a small KV cache."""
    data = tmp_path_factory.mktemp("llm-data")
    return Settings(data_dir=data, kv_cache_gib=1, max_model_len=4096, concurrency=16)


@pytest.fixture(scope="session")
def vllm_endpoint(llm_settings: Settings) -> Iterator[Endpoint]:
    reuse = os.environ.get("PERSONAE_TEST_BASE_URL")
    if reuse:
        name, max_len = describe_server(llm_settings, reuse)
        yield Endpoint(reuse, name, max_len, managed=False)
        return
    server = ManagedServer(llm_settings, resolve_model(llm_settings)).start()
    assert server.process is not None
    pgid = server.process.pid
    name, max_len = describe_server(llm_settings, server.base_url)
    yield Endpoint(
        server.base_url, name, max_len, managed=True,
        startup_seconds=server.startup_seconds, log_path=str(server.log_path),
    )  # fmt: skip
    server.stop()
    _assert_group_gone(pgid, Path(server.log_path))


def _assert_group_gone(pgid: int, log: Path, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while pids_in_group(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pids_in_group(pgid), f"vLLM server processes left behind (see {log})"
