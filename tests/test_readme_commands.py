"""Every `personae ...` line README.md shows in a code block is a real command: its command
path answers `--help`, a word after a group is one of its subcommands, and every option it
uses exists. So the README's tour cannot rot when the CLI changes."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^\s*(```|~~~)")


def readme_commands(text: str) -> list[str]:
    """Lines inside fenced code blocks that start with `personae `, trailing comments cut."""
    lines: list[str] = []
    inside = False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        stripped = line.strip()
        if inside and stripped.startswith("personae "):
            lines.append(strip_comment(stripped))
    return lines


def strip_comment(line: str) -> str:
    """The line without a trailing `# ...` comment (a `#` inside quotes is kept)."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = list(lexer)
    return shlex.join(words)


def words_of(line: str) -> list[str]:
    return shlex.split(line)[1:]  # without "personae"


def is_group(command: Any) -> bool:
    return hasattr(command, "commands")  # typer bundles its own click classes


def split_path(words: list[str]) -> tuple[list[str], Any, list[str]]:
    """The command path (subcommand names from the root), its command, and the rest."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    for word in words:
        sub = command.commands.get(word) if is_group(command) else None
        if sub is None:
            break
        path.append(word)
        command = sub
    return path, command, words[len(path) :]


def option_names(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        if param.param_type_name == "option":
            names.update(param.opts)
            names.update(param.secondary_opts)
    return names


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_shows_commands() -> None:
    assert len(COMMANDS) >= 20, COMMANDS


def test_comments_are_stripped() -> None:
    line = 'personae ask 42 "why # not?" --json   # one question'
    assert strip_comment(line) == "personae ask 42 'why # not?' --json"
    assert split_path(["eval", "run", "--users", "5"])[0] == ["eval", "run"]
    assert split_path(["profile", "--sample", "200"])[0] == ["profile"]


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_has_help(line: str) -> None:
    path, _, _ = split_path(words_of(line))
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, f"{line!r}: personae {' '.join(path)} --help\n{result.output}"
    assert "Usage:" in result.output


@pytest.mark.parametrize("line", COMMANDS)
def test_readme_command_words_exist(line: str) -> None:
    path, command, rest = split_path(words_of(line))
    takes_arguments = any(p.param_type_name == "argument" for p in command.params)
    if is_group(command) and rest and not rest[0].startswith("-"):
        assert takes_arguments, f"{line!r}: {rest[0]!r} is not a subcommand of {path}"
    known = option_names(command)
    for word in rest:
        option = word.split("=", 1)[0]
        if option.startswith("--"):
            assert option in known, f"{line!r}: personae {' '.join(path)} has no {option}"


def test_readme_settings_exist() -> None:
    """Every `PERSONAE_X` the README names is a field of the settings object."""
    from agent.config import ENV_PREFIX, Settings

    fields = {name.upper() for name in Settings.model_fields}
    named = set(re.findall(rf"{ENV_PREFIX}([A-Z][A-Z0-9_]*)", README.read_text(encoding="utf-8")))
    assert named, "the README names no setting"
    for name in sorted(named):
        if name.endswith("_"):  # a family, e.g. PERSONAE_RAY_*
            assert any(field.startswith(name) for field in fields), name
        else:
            assert name in fields, f"{ENV_PREFIX}{name} is not a field of agent/config.py"
