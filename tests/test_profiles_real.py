"""Profiles written by the real default model on the real vLLM server (slow; CI runs them).
They check form and grounding, which hold for any model; not the quality of the writing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import Settings
from agent.embeddings import load_embedder
from agent.profiles.batch import BatchProfiler, FailureLog
from agent.profiles.profiler import Profiler
from agent.runtime.endpoint import Endpoint
from agent.runtime.structured import StructuredGenerator
from agent.store.chroma import open_client
from agent.store.profile_index import ProfileIndex
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore
from tests.profile_data import HISTORIES, add_events, build_record

pytestmark = pytest.mark.slow


def batch_for(data_dir: Path, llm_settings: Settings, endpoint: Endpoint) -> BatchProfiler:
    settings = llm_settings.model_copy(update={"data_dir": data_dir})
    record = (
        RecordStore.at(data_dir)
        if (data_dir / "personae.sqlite3").exists()
        else build_record(data_dir)
    )
    generator = StructuredGenerator.for_endpoint(settings, endpoint.base_url, endpoint.model)
    index = ProfileIndex(open_client(settings), load_embedder(settings))
    return BatchProfiler(
        Profiler(settings, record), generator, index, FailureLog(data_dir / "f.jsonl")
    )


def test_profiles_validate_and_cite_only_the_users_history(
    tmp_path: Path, llm_settings: Settings, vllm_endpoint: Endpoint
) -> None:
    batch = batch_for(tmp_path, llm_settings, vllm_endpoint)
    users = ["scifi", "crime", "injector"]
    report = batch.run(users, batch.profiler.prepare_full)
    assert report.profiled + report.failed == 3 and report.profiled >= 2
    for user in users:
        profile = batch.profiler.profiles.get(user)
        if profile is None:
            continue
        history = {item for item, _, _ in HISTORIES[user]}
        cited = {i for entry in profile.interests + profile.dislikes for i in entry.evidence}
        assert profile.interests, "an interest survived grounding"
        assert cited <= history
        assert "99999" not in profile.model_dump_json()  # the injected review changed nothing
        assert profile.provenance.model == vllm_endpoint.model
    assert set(batch.index.versions()) == {  # type: ignore[union-attr]
        u for u in users if batch.profiler.profiles.get(u) is not None
    }


def test_update_creates_version_two_and_diff_shows_the_change(
    tmp_path: Path, llm_settings: Settings, vllm_endpoint: Endpoint
) -> None:
    batch = batch_for(tmp_path, llm_settings, vllm_endpoint)
    batch.run(["pair"], batch.profiler.prepare_full)
    previous = batch.profiler.profiles.get("pair")
    assert previous is not None
    add_events(batch.profiler.record, "pair", [("8", 1, 30), ("3", 5, 31), ("9", 5, 32)])
    report = batch.run(["pair"], lambda u: batch.profiler.prepare_update(u, previous))
    assert report.profiled == 1, report.to_dict()
    env = {"PERSONAE_DATA_DIR": str(tmp_path)}
    shown = CliRunner().invoke(app, ["profile", "show", "pair", "--diff"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "v1 -> v2" in shown.output and "events" in shown.output  # 2 -> 5 events
    as_json = CliRunner().invoke(
        app, ["profile", "show", "pair", "--version", "1", "--json"], env=env
    )
    assert '"version": 1' in as_json.stdout


def test_cold_start_and_sparse_users_get_low_confidence_profiles(
    tmp_path: Path, llm_settings: Settings, vllm_endpoint: Endpoint
) -> None:
    batch = batch_for(tmp_path, llm_settings, vllm_endpoint)
    text = "I love slow science fiction films and space operas. I hate horror."
    request = batch.profiler.prepare_cold_start("newcomer", text)
    batch.run(["newcomer"], lambda u: request)
    batch.run(["sparse"], batch.profiler.prepare_full)
    newcomer = batch.profiler.profiles.get("newcomer")
    sparse = batch.profiler.profiles.get("sparse")
    assert newcomer is not None and sparse is not None
    assert newcomer.confidence == "low" and newcomer.provenance.kind == "cold_start"
    assert all(i.evidence == ["self-description"] for i in newcomer.interests)
    assert sparse.confidence == "low"
    assert len(sparse.interests) <= 1 and all(i.evidence == ["3"] for i in sparse.interests)


def test_killed_profile_run_resumes_without_duplicates_or_lost_profiles(
    tmp_path: Path, vllm_endpoint: Endpoint
) -> None:
    build_record(tmp_path).close()
    env = {**os.environ, "PERSONAE_DATA_DIR": str(tmp_path), "PERSONAE_CONCURRENCY": "1"}
    cmd = [sys.executable, "-m", "agent.cli.main", "profile", "--all", "--base-url",
           vllm_endpoint.base_url]  # fmt: skip
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = ProfileStore(RecordStore.at(tmp_path))
    deadline = time.monotonic() + 600
    while store.count()["profiled_users"] < 1 and run.poll() is None:
        assert time.monotonic() < deadline, "no profile stored in 10 minutes"
        time.sleep(0.2)
    run.send_signal(signal.SIGKILL)
    run.wait()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    counts = dict(
        store.conn.execute("SELECT user_id, count(*) FROM profile_versions GROUP BY user_id")
    )
    failed = (tmp_path / "failures").glob("*.jsonl")
    failed_users = {line.split('"')[3] for f in failed for line in f.read_text().splitlines()}
    assert set(counts) | failed_users == set(HISTORIES)
    assert set(counts.values()) == {1}  # no duplicates
    settings = Settings(data_dir=tmp_path)
    index = ProfileIndex(open_client(settings), load_embedder(settings))
    assert set(index.versions()) == set(counts)  # every stored profile has its vector
