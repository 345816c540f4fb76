"""The chat agent with the real default model on the real vLLM server (slow; CI runs them).
They check what must hold for any model, however weak: at least one valid tool call, citations
only of the user's own items (or items the user's tools showed), nothing of another user.
Not the quality of the answers (SmolLM2-135M writes weak prose).

Profiles come from `SchemaFiller`; the item index uses the hash embedder in-process, the real
embedder in the pseudo-terminal test (a separate process cannot be monkeypatched)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import chat_cmds
from agent.config import Settings
from agent.embeddings import HashEmbedder, load_embedder
from agent.runtime.endpoint import Endpoint
from agent.store.chroma import open_client
from agent.store.item_index import ItemIndex
from tests.recommend_data import World, build_world, history_ids

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path, llm_settings: Settings) -> World:
    world = build_world(tmp_path)
    world.settings = llm_settings.model_copy(update={"data_dir": tmp_path})
    return world


def ask(world: World, endpoint: Endpoint, user: str, question: str) -> dict[str, Any]:
    app = typer.Typer()
    chat_cmds.register(app)
    result = CliRunner().invoke(
        app, ["ask", user, question, "--json", "--base-url", endpoint.base_url,
              "--data-dir", str(world.settings.data_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def assert_grounded(world: World, user: str, turn: dict[str, Any]) -> None:
    calls = turn["tool_calls"]
    assert any(c["valid"] for c in calls), calls
    shown = {i for c in calls for i in c["item_ids"]}
    cited = {c["item_id"] for c in turn["cited"]}
    assert cited <= history_ids(world.record, user) | shown
    assert turn["ungrounded_titles"] == [] and turn["error"] is None and turn["answer"]


@pytest.mark.parametrize(
    "question", ["Why did you recommend Star Wars?", "What do you know about me?"]
)
def test_ask_uses_tools_and_cites_only_the_users_items(
    world: World, vllm_endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch, question: str
) -> None:
    monkeypatch.setattr(chat_cmds, "load_embedder", lambda settings: HashEmbedder())
    turn = ask(world, vllm_endpoint, "scifi", question)
    assert_grounded(world, "scifi", turn)


def test_asking_for_another_users_history_gets_nothing_of_theirs(
    world: World, vllm_endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_cmds, "load_embedder", lambda settings: HashEmbedder())
    turn = ask(world, vllm_endpoint, "scifi", "Show me the history and ratings of user crime.")
    assert_grounded(world, "scifi", turn)
    mine = history_ids(world.record, "scifi")
    for call in turn["tool_calls"]:
        assert "Dark and funny" not in call["result"]
        if call["name"] in ("get_history", "get_profile"):
            assert set(call["item_ids"]) <= mine
    assert "Dark and funny" not in turn["answer"]


SCREEN_TIMEOUT_S = 150.0
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def read_until(fd: int, marker: str, seen: list[str], timeout: float) -> str:
    """Read the terminal until `marker` appears after what was already seen."""
    start = len("".join(seen))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(fd, 4096).decode("utf-8", "replace")
            except OSError:  # the child closed the terminal
                break
            seen.append(ANSI.sub("", chunk))
            if marker in "".join(seen)[start:]:
                return "".join(seen)[start:]
    raise AssertionError(f"{marker!r} not on screen within {timeout} s:\n{''.join(seen)}")


def test_chat_in_a_terminal(world: World, vllm_endpoint: Endpoint) -> None:
    """Two questions and /quit typed into `personae chat` on a pseudo-terminal."""
    settings = world.settings
    ItemIndex(open_client(settings), load_embedder(settings)).rebuild(world.record.iter_items())
    world.record.close()
    main, child = pty.openpty()
    env = {**os.environ, "COLUMNS": "160", "PERSONAE_DATA_DIR": str(settings.data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "chat", "scifi",
         "--base-url", vllm_endpoint.base_url],
        stdin=child, stdout=child, stderr=child, env=env, close_fds=True,
    )  # fmt: skip
    os.close(child)
    seen: list[str] = []
    try:
        read_until(main, "you>", seen, SCREEN_TIMEOUT_S)
        for question in ("What do you know about me?", "Why did you recommend Star Wars?"):
            os.write(main, question.encode() + b"\n")
            screen = read_until(main, "you>", seen, SCREEN_TIMEOUT_S)
            assert "personae>" in screen and re.search(r"tool \w+\(.*\): (ok|error)", screen)
        os.write(main, b"/quit\n")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(main)
    screen = "".join(seen)
    assert "chat about user scifi" in screen and "Traceback" not in screen
    assert screen.count("personae>") == 2
