"""Options and errors the CLI modules share (agent/cli/common.py) behave the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import app, recommend_cmds
from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.runtime.endpoint import EndpointError
from tests.recommend_data import World, build_world


def option_help(command: list[str], name: str) -> str | None:
    group: Any = typer.main.get_command(app)
    for part in command:
        group = group.commands[part]
    found = [p.help for p in group.params if name in getattr(p, "opts", [])]
    return found[0] if found else None


@pytest.mark.parametrize(
    "command", [["profile"], ["update"], ["eval", "run"], ["eval", "tune-blend"]]
)
def test_concurrency_means_the_same_in_every_command(command: list[str]) -> None:
    assert option_help(command, "--concurrency") == "Concurrent LLM requests."


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(recommend_cmds, "load_embedder", lambda settings: HashEmbedder())

    def unreachable(settings: Settings) -> Any:
        raise EndpointError("no server at http://127.0.0.1:9/v1")

    monkeypatch.setattr(recommend_cmds, "open_generator", unreachable)
    return build_world(tmp_path)


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["recommend", "scifi"], "--no-rerank recommends without the LLM"),
        (["explain", "scifi", "12"], "--no-llm explains without the LLM"),
    ],
)
def test_an_unreachable_llm_ends_the_command_with_a_way_around_it(
    world: World, args: list[str], hint: str
) -> None:
    data_dir = ["--data-dir", str(world.settings.data_dir)]
    result = CliRunner().invoke(app, [*args, *data_dir])
    assert result.exit_code == 1
    assert "no server at http://127.0.0.1:9/v1" in result.stderr
    assert hint in result.stderr
