"""Batch profiling plumbing with a schema-filling fake model, the real SQLite record and a real
Chroma store (hash embedder). Says nothing about profile quality: see test_profiles_real.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tenacity import wait_none

from agent.cli.profile_cmds import stale_users
from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.profiles.batch import BatchProfiler, FailureLog
from agent.profiles.profiler import Profiler
from agent.runtime.structured import StructuredGenerator
from agent.schemas.profile import ProfileKind, UserProfile
from agent.store.chroma import open_client
from agent.store.profile_index import ProfileIndex
from agent.store.record import RecordStore
from tests.fakes import Interrupted, SchemaFiller
from tests.profile_data import HISTORIES, add_events, build_record

USERS = sorted(HISTORIES)


def setup(
    tmp_path: Path, model: SchemaFiller | None = None
) -> tuple[Settings, RecordStore, BatchProfiler]:
    settings = Settings(data_dir=tmp_path, concurrency=2, max_reasks=1)
    record = (
        build_record(tmp_path)
        if not (tmp_path / "personae.sqlite3").exists()
        else RecordStore.at(tmp_path)
    )
    generator = StructuredGenerator(
        settings, model or SchemaFiller(), "fake-model", retry_wait=wait_none()
    )
    index = ProfileIndex(open_client(settings), HashEmbedder())
    failures = FailureLog(tmp_path / "failures.jsonl")
    return settings, record, BatchProfiler(Profiler(settings, record), generator, index, failures)


def stored_profile(tmp_path: Path, user: str) -> UserProfile:
    _, record, batch = setup(tmp_path)
    batch.run([user], batch.profiler.prepare_full)
    profile = batch.profiler.profiles.get(user)
    assert profile is not None
    return profile


def test_batch_stores_every_profile_with_provenance_and_vector(tmp_path: Path) -> None:
    _, record, batch = setup(tmp_path)
    report = batch.run(USERS, batch.profiler.prepare_full)
    assert report.profiled == len(USERS) and report.failed == 0
    for user in USERS:
        profile = batch.profiler.profiles.get(user)
        assert profile is not None
        history_ids = {e.item_id for e in record.history(user)}
        assert all(set(i.evidence) <= history_ids for i in profile.interests + profile.dislikes)
        p = profile.provenance
        assert (p.model, p.prompt.id, p.version, p.kind) == ("fake-model", "profile", 1, "full")
        assert len(p.prompt.hash) == 64 and p.history_events == len(HISTORIES[user])
    assert set(batch.index.versions()) == set(USERS)  # type: ignore[union-attr]
    data = report.to_dict()
    assert data["schema_valid_rate"] == 1.0 and data["tokens_per_user"] > 0


def test_rerun_skips_unchanged_histories(tmp_path: Path) -> None:
    _, _, batch = setup(tmp_path)
    batch.run(USERS, batch.profiler.prepare_full)
    _, _, again = setup(tmp_path)
    report = again.run(USERS, again.profiler.prepare_full)
    assert report.skipped_unchanged == len(USERS) and report.profiled == 0


def test_interrupted_run_keeps_stored_profiles_and_rerun_finishes_without_duplicates(
    tmp_path: Path,
) -> None:
    _, _, batch = setup(tmp_path, SchemaFiller(stop_after=2))
    with pytest.raises(Interrupted):
        batch.run(USERS, batch.profiler.prepare_full)
    stored = batch.profiler.profiles.count()["profiled_users"]
    assert 1 <= stored <= 2
    _, record, rerun = setup(tmp_path)
    report = rerun.run(USERS, rerun.profiler.prepare_full)
    assert report.skipped_unchanged == stored
    assert report.profiled == len(USERS) - stored
    rows = record.conn.execute("SELECT user_id, count(*) FROM profile_versions GROUP BY user_id")
    assert dict(rows.fetchall()) == {user: 1 for user in USERS}
    assert set(rerun.index.versions()) == set(USERS)  # type: ignore[union-attr]


def test_profiles_missing_from_chroma_are_synced_on_the_next_run(tmp_path: Path) -> None:
    _, _, batch = setup(tmp_path)
    batch.run(USERS, batch.profiler.prepare_full)
    batch.index.delete(["scifi", "crime"])  # type: ignore[union-attr]  # as if killed before upsert
    _, _, rerun = setup(tmp_path)
    report = rerun.run(USERS, rerun.profiler.prepare_full)
    assert report.synced_vectors == 2
    assert set(rerun.index.versions()) == set(USERS)  # type: ignore[union-attr]


def test_a_failing_user_is_logged_and_the_run_goes_on(tmp_path: Path) -> None:
    model = SchemaFiller(poison=("IGNORE ALL PREVIOUS",))
    _, _, batch = setup(tmp_path, model)
    report = batch.run(USERS, batch.profiler.prepare_full)
    assert report.failed == 1 and report.profiled == len(USERS) - 1
    lines = [json.loads(line) for line in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert [(f["user_id"], f["last_raw"]) for f in lines] == [("injector", "not json")]
    assert batch.profiler.profiles.get("injector") is None


def test_unknown_user_is_a_logged_failure(tmp_path: Path) -> None:
    _, _, batch = setup(tmp_path)
    report = batch.run(["nobody"], batch.profiler.prepare_full)
    assert report.failed == 1
    assert "nobody" in (tmp_path / "failures.jsonl").read_text()


def test_confidence_comes_from_the_facts_not_the_model(tmp_path: Path) -> None:
    _, _, batch = setup(tmp_path, SchemaFiller(enum_pick=-1))
    batch.run(["sparse", "scifi"], batch.profiler.prepare_full)
    sparse = batch.profiler.profiles.get("sparse")
    scifi = batch.profiler.profiles.get("scifi")
    assert sparse is not None and scifi is not None
    assert sparse.confidence == "low"  # one event
    expected = "medium" if scifi.grounding.score >= 0.5 else "low"  # 6 events
    assert scifi.confidence == expected
    assert len(sparse.interests) <= 1  # one event: the schema allows one interest


def test_update_writes_version_two_from_previous_profile_and_new_events(tmp_path: Path) -> None:
    _, record, batch = setup(tmp_path)
    batch.run(USERS, batch.profiler.prepare_full)
    add_events(record, "scifi", [("8", 5, 30), ("4", 4, 31)])
    assert stale_users(batch.profiler, since=None) == ["scifi"]
    previous = batch.profiler.profiles.get("scifi")
    assert previous is not None
    request = batch.profiler.prepare_update("scifi", previous)
    assert request.kind is ProfileKind.UPDATE
    user_message = request.prompt.messages[-1].content
    assert "Previous profile:" in user_message and "[8] Scream" in user_message
    assert "[2] Aliens" not in user_message  # old events are not re-read
    report = batch.run(["scifi"], lambda u: batch.profiler.prepare_update(u, previous))
    assert report.profiled == 1
    latest = batch.profiler.profiles.get("scifi")
    assert latest is not None and latest.provenance.version == 2
    assert latest.provenance.kind == "update" and latest.facts.event_count == 8
    assert [v.version for v in batch.profiler.profiles.versions("scifi")] == [1, 2]
    assert stale_users(batch.profiler, since=None) == []


def test_cold_start_profile_is_low_confidence_and_cites_the_text(tmp_path: Path) -> None:
    _, _, batch = setup(tmp_path)
    request = batch.profiler.prepare_cold_start("new1", "I love word games. Mail me: a@b.com")
    assert "a@b.com" not in request.prompt.messages[-1].content
    batch.run(["new1"], lambda u: request)
    profile = batch.profiler.profiles.get("new1")
    assert profile is not None and profile.provenance.kind == "cold_start"
    assert profile.confidence == "low"
    assert all(i.evidence == ["self-description"] for i in profile.interests)
