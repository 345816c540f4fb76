"""Settings: defaults, PERSONAE_* environment, CLI overrides, no reads at import."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.cli.common import make_settings
from agent.config import Settings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PERSONAE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PERSONAE_CONCURRENCY", "3")
    monkeypatch.setenv("PERSONAE_KV_CACHE_GIB", "3")
    settings = Settings()
    assert settings.data_dir == tmp_path
    assert settings.concurrency == 3 and settings.kv_cache_gib == 3


def test_cli_options_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_MODEL", "from-env")
    assert make_settings(model="from-cli").model == "from-cli"
    assert make_settings(model=None).model == "from-env"  # an option not given keeps env


def test_settings_are_not_frozen_at_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_MAX_REASKS", "0")
    assert Settings().max_reasks == 0
    monkeypatch.setenv("PERSONAE_MAX_REASKS", "1")
    assert Settings().max_reasks == 1


def test_bad_environment_value_is_a_clear_cli_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_CONCURRENCY", "zero")
    result = CliRunner().invoke(app, ["model", "info"])
    assert result.exit_code == 1
    assert "concurrency" in result.output
