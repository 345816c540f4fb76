"""Prompt templates: loading, strict rendering, and the lock on released versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.prompts import PromptError, load_prompt, parse_template, prompt_files

LOCK = Path(__file__).with_name("prompt_lock.json")


def test_every_released_prompt_is_unchanged_and_every_prompt_is_released() -> None:
    """A released template is never edited in place: change it by adding <id>.v<N+1>.toml
    and its hash to tests/prompt_lock.json."""
    lock: dict[str, str] = json.loads(LOCK.read_text())
    current = {
        f"{pid}.v{version}": parse_template(f"{pid}.v{version}.toml", raw).hash
        for (pid, version), raw in prompt_files().items()
    }
    edited = sorted(k for k in lock if k in current and current[k] != lock[k])
    assert not edited, f"released prompts edited in place: {edited}; add a new version instead"
    deleted = sorted(set(lock) - set(current))
    assert not deleted, f"released prompts deleted: {deleted}"
    unreleased = sorted(set(current) - set(lock))
    assert not unreleased, f"add these prompts' hashes to {LOCK.name}: {unreleased}"


def test_all_prompt_files_parse() -> None:
    for (pid, version), raw in prompt_files().items():
        template = parse_template(f"{pid}.v{version}.toml", raw)
        assert template.id == pid and template.version == version


def test_render_fills_variables_and_carries_the_reference() -> None:
    rendered = load_prompt("runtime_check", 1).render(title="Alien", year=1979)
    assert '"Alien" (1979)' in rendered.messages[-1].content
    assert rendered.ref.id == "runtime_check" and rendered.ref.version == 1
    assert len(rendered.ref.hash) == 64


def test_missing_variable_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(PromptError, match="'year' is undefined"):
        load_prompt("runtime_check", 1).render(title="Alien")


def test_latest_version_is_the_default_and_unknown_ones_are_named() -> None:
    assert load_prompt("runtime_check").version == max(
        v for (pid, v) in prompt_files() if pid == "runtime_check"
    )
    with pytest.raises(PromptError, match="has versions"):
        load_prompt("runtime_check", 999)
    with pytest.raises(PromptError, match="no prompt named 'nope'"):
        load_prompt("nope")


def test_file_name_must_match_id_and_version() -> None:
    raw = b'id = "other"\nversion = 1\n[[messages]]\nrole = "user"\ncontent = "hi"\n'
    with pytest.raises(PromptError, match="do not match the file name"):
        parse_template("runtime_check.v1.toml", raw)


def test_malformed_template_names_the_file() -> None:
    with pytest.raises(PromptError, match=r"prompts/bad\.v1\.toml"):
        parse_template("bad.v1.toml", b"id = 'bad'\nversion = 1\nmessages = []\n")
