"""`personae eval run` against the real vLLM server and the real embedding model (slow: CI
runs it), on the synthetic catalog of test_eval_run (a MovieLens index takes minutes to embed
on 2 busy cores). Two users, one shuffle: proves the whole path (prefix profiles, llmrank
re-rank with reasons, report) on the default model, not its quality."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.embeddings import SentenceTransformerEmbedder
from agent.runtime.endpoint import Endpoint
from tests.test_eval_run import build

pytestmark = pytest.mark.slow


def test_eval_run_llmrank_on_the_real_model(
    vllm_endpoint: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full 20-pick ranking is ~1,100 tokens per user: minutes at CPU speed. 3 picks keep the
    # test inside its budget; the unpicked candidates follow in shown order.
    monkeypatch.setenv("PERSONAE_EVAL_RERANK_PICKS", "3")
    monkeypatch.setenv("PERSONAE_RERANK_HISTORY_EVENTS", "10")
    world = build(tmp_path, SentenceTransformerEmbedder())
    args = ["eval", "run", "--protocol", "llmrank", "--users", "2", "--seed", "0",
            "--base-url", vllm_endpoint.base_url, "--data-dir", str(world.settings.data_dir),
            "--json"]  # fmt: skip
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    summary = body["summary"]
    assert summary["smoke"] is False and "ChatOpenAI" in summary["backends"]["llm"]
    systems = summary["protocols"]["llmrank"]["systems"]
    assert {"random", "collaborative", "dense-profile", "llm-rerank", "blended"} <= set(systems)
    assert summary["quality"]["profiles"]["profiles_attempted"] == 2
    assert summary["cost"]["re-rank"]["users"] <= 2
    report = (Path(body["run_dir"]) / "report.md").read_text()
    assert "SMOKE" not in report and "| llm-rerank |" in report
