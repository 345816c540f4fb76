"""`--help` works and explains every command and subcommand."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import app


def command_paths() -> list[list[str]]:
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        if hasattr(command, "commands"):  # a group (typer bundles its own click classes)
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(root, [])
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "personae")
def test_help_explains_itself(path: list[str]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command: Any = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    assert command.help or command.short_help, f"{' '.join(path)} has no help text"


def test_runtime_check_reports_an_unprepared_model_clearly(tmp_path: object) -> None:
    result = CliRunner().invoke(
        app, ["runtime", "check"], env={"PERSONAE_CACHE_DIR": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert "personae model prepare" in result.output
