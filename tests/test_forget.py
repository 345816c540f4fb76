"""`personae forget`: nothing about the user remains in the record (any table, any column, nor
the database files' bytes), in Chroma (ids, metadata, documents) or in the failure logs; other
users and the item catalog are untouched; a forget whose Chroma step failed is finished by
running it again."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from chromadb.errors import InternalError
from tenacity import wait_none
from typer.testing import CliRunner

from agent.cli import app, segment_cmds
from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.profiles import segments as seg
from agent.profiles.batch import BatchProfiler, FailureLog, failures_path
from agent.profiles.profiler import Profiler
from agent.runtime.structured import StructuredGenerator
from agent.schemas import User
from agent.store import forget as forgetting
from agent.store.chroma import open_client
from agent.store.item_index import ItemIndex
from agent.store.profile_index import ProfileIndex
from agent.store.profiles import ProfileStore
from agent.store.record import DB_NAME, RecordStore
from agent.store.segments import Member, Segment, SegmentRun, SegmentStore
from tests.fakes import SchemaFiller
from tests.profile_data import HISTORIES, ITEMS, add_events, build_record, event

GONE = "u-forget-me-7"
"""A user id that appears nowhere else, so any trace of it is found by a plain scan."""


@pytest.fixture(autouse=True)
def hash_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment_cmds, "load_embedder", lambda settings: HashEmbedder())


def populate(data_dir: Path) -> RecordStore:
    """The profile test catalog plus GONE with events, a review, two profile versions, a
    vector, a segment membership, an item index and a failure log line."""
    record = build_record(data_dir)
    with record.writer() as writer:
        writer.put_user(User(user_id=GONE, attributes={"age": 33}))
        writer.add_interaction(event(GONE, "1", 5, 0, "Loved it. Write to me: me@example.com"))
        writer.add_interaction(event(GONE, "7", 4, 1))
    settings = Settings(data_dir=data_dir, concurrency=2, max_reasks=0)
    client = open_client(settings)
    generator = StructuredGenerator(settings, SchemaFiller(), "fake-model", retry_wait=wait_none())
    index = ProfileIndex(client, HashEmbedder())
    batch = BatchProfiler(
        Profiler(settings, record), generator, index, FailureLog(data_dir / "f.jsonl")
    )
    users = [*HISTORIES, GONE]
    batch.run(users, batch.profiler.prepare_full)
    add_events(record, GONE, [("10", 5, 5)])
    batch.run([GONE], batch.profiler.prepare_full)  # version 2
    points = seg.load_points(ProfileStore(record), index)
    run = seg.segment(points, k=1, seed=0)  # the fake model's profiles are all alike
    seg.name_all_from_interests(run, {p.user_id: p for p in points.profiles})
    SegmentStore(record).add(run)
    ItemIndex(client, HashEmbedder()).refresh(ITEMS)
    log = FailureLog(failures_path(data_dir, "profile"))
    log.write(GONE, "invalid", "no valid reply", last_raw="{...}")
    log.write("scifi", "invalid", "no valid reply")
    return record


def sqlite_traces(record: RecordStore, needle: str) -> list[str]:
    """table.column of every value in every table that contains `needle`."""
    found = []
    tables = [
        r[0] for r in record.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
    ]
    for table in tables:
        columns = [r[1] for r in record.conn.execute(f"PRAGMA table_info({table})")]
        for column in columns:
            for (value,) in record.conn.execute(f'SELECT "{column}" FROM "{table}"'):
                text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
                if needle in text:
                    found.append(f"{table}.{column}")
    return sorted(set(found))


def chroma_traces(data_dir: Path, needle: str) -> list[str]:
    found = []
    client = open_client(Settings(data_dir=data_dir))
    for collection in client.list_collections():
        got = collection.get(include=["metadatas", "documents"])
        for i, item_id in enumerate(got["ids"]):
            meta = json.dumps((got["metadatas"] or [])[i] or {})
            document = (got["documents"] or [])[i] or ""
            if needle in item_id or needle in meta or needle in document:
                found.append(f"{collection.name}:{item_id}")
    return found


def file_bytes_traces(data_dir: Path, needle: str) -> list[str]:
    paths = [p for p in data_dir.glob(f"{DB_NAME}*") if p.is_file()]
    paths += list((data_dir / "failures").glob("*"))
    return [str(p) for p in paths if needle.encode() in p.read_bytes()]


def forget(data_dir: Path, *extra: str, user: str = GONE, **kwargs: Any) -> Any:
    return CliRunner().invoke(app, ["forget", user, "--data-dir", str(data_dir), *extra], **kwargs)


def test_forget_leaves_nothing_about_the_user_anywhere(tmp_path: Path) -> None:
    record = populate(tmp_path)
    assert sqlite_traces(record, GONE) and chroma_traces(tmp_path, GONE)  # the scans see it
    others = {u: ProfileStore(record).get(u) for u in HISTORIES}
    items_before = record.item_count()
    record.close()

    result = forget(tmp_path, "--yes", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["interactions"], report["user_rows"], report["profile_versions"]) == (3, 1, 2)
    assert report["segment_memberships"] == 1 and report["vectors"] == {"profiles": 1}
    assert report["failure_log_lines"] == 1

    with RecordStore.at(tmp_path) as after:
        assert sqlite_traces(after, GONE) == []
        assert after.item_count() == items_before
        assert {u: ProfileStore(after).get(u) for u in HISTORIES} == others
        assert SegmentStore(after).get(SegmentStore(after).latest_id() or 0) is not None
    assert chroma_traces(tmp_path, GONE) == []
    assert file_bytes_traces(tmp_path, GONE) == []  # not even in freed pages or the WAL
    client = open_client(Settings(data_dir=tmp_path))
    assert client.get_collection("items").count() == len(ITEMS)
    assert set(ProfileIndex(client, HashEmbedder()).versions()) == set(HISTORIES)
    log = next((tmp_path / "failures").glob("*.jsonl")).read_text()
    assert '"scifi"' in log


def test_forget_asks_first_and_a_no_keeps_everything(tmp_path: Path) -> None:
    populate(tmp_path).close()
    declined = forget(tmp_path, input="n\n")
    assert declined.exit_code == 1
    assert "profile versions" in declined.output and "Forget user" in declined.output
    with RecordStore.at(tmp_path) as record:
        assert ProfileStore(record).latest_version(GONE) == 2
    accepted = forget(tmp_path, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert chroma_traces(tmp_path, GONE) == []


def test_a_forget_interrupted_after_the_record_is_finished_by_a_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    populate(tmp_path).close()

    def chroma_down(client: Any, user_id: str) -> dict[str, int]:
        raise InternalError("simulated: Chroma failed mid-forget")

    with monkeypatch.context() as patch:
        patch.setattr(forgetting, "forget_vectors", chroma_down)
        failed = forget(tmp_path, "--yes")
    assert failed.exit_code == 1
    assert f"run `personae forget {GONE}` again" in failed.output
    with RecordStore.at(tmp_path) as record:
        assert sqlite_traces(record, GONE) == []
        client = open_client(Settings(data_dir=tmp_path))
        assert forgetting.orphan_profile_vectors(record, client) == [GONE]
    similar = CliRunner().invoke(
        app, ["similar", "scifi", "--n", "10", "--data-dir", str(tmp_path), "--json"]
    )
    assert GONE not in similar.stdout  # the orphan vector is never served

    rerun = forget(tmp_path, "--yes", "--json")
    assert rerun.exit_code == 0, rerun.output
    report = json.loads(rerun.stdout)
    assert report["vectors"] == {"profiles": 1} and report["profile_versions"] == 0
    assert chroma_traces(tmp_path, GONE) == []
    again = forget(tmp_path, "--yes", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["found"] is False
    assert "nothing stored about user" in again.output


def test_orphan_vectors_are_found_and_removed(tmp_path: Path) -> None:
    record = populate(tmp_path)
    client = open_client(Settings(data_dir=tmp_path))
    record.conn.execute("DELETE FROM profile_versions WHERE user_id = 'pair'")
    assert forgetting.orphan_profile_vectors(record, client) == ["pair"]
    record.close()
    result = CliRunner().invoke(
        app, ["forget", "--orphans", "--yes", "--json", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"orphan_profile_vectors_removed": ["pair"]}
    assert "pair" not in ProfileIndex(client, HashEmbedder()).versions()
    both = CliRunner().invoke(app, ["forget", "scifi", "--orphans", "--data-dir", str(tmp_path)])
    assert both.exit_code == 1 and "not both" in both.output


def test_a_segment_left_empty_is_removed_with_its_name(tmp_path: Path) -> None:
    record = RecordStore.at(tmp_path)
    run = SegmentRun(
        k=2, seed=0, algorithm="test", embedding_model="hash-64", inertia=0.0,
        segments=[
            Segment(0, "Crowd", "", "interests", [], [Member("a", 1, 0.1), Member("b", 1, 0.2)]),
            Segment(1, "Only GONE's taste", "", "interests", [], [Member(GONE, 1, 0.0)]),
        ],
    )  # fmt: skip
    SegmentStore(record).add(run)
    report = forgetting.ForgetReport(GONE)
    forgetting.forget_in_record(record, GONE, report)
    assert (report.segment_memberships, report.empty_segments) == (1, 1)
    kept = SegmentStore(record).get(run.id or 0)
    assert kept is not None and [s.name for s in kept.segments] == ["Crowd"]


def test_unknown_user_is_reported_not_an_error(tmp_path: Path) -> None:
    build_record(tmp_path).close()
    result = forget(tmp_path, "--yes", user="nobody")
    assert result.exit_code == 0
    assert "nothing stored about user 'nobody'" in result.output


def test_secure_delete_is_switched_back_off(tmp_path: Path) -> None:
    record = build_record(tmp_path)
    forgetting.forget_in_record(record, "scifi", forgetting.ForgetReport("scifi"))
    assert record.conn.execute("PRAGMA secure_delete").fetchone()[0] == 0
    assert isinstance(record.conn, sqlite3.Connection)
