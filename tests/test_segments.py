"""Segments and similar users: k-means over profile vectors in a real Chroma store, segment runs
in the real SQLite record, naming plumbing with a schema-filling fake, and naming with the real
model (slow)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tenacity import wait_none
from typer.testing import CliRunner

from agent.cli import app, segment_cmds
from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.profiles import segments as seg
from agent.prompts import load_prompt
from agent.runtime.endpoint import Endpoint
from agent.runtime.structured import StructuredGenerator
from agent.schemas.profile import (
    CategoryShare,
    ComputedFacts,
    Grounding,
    Interest,
    ProfileKind,
    Provenance,
    Sentiment,
    UserProfile,
)
from agent.store.chroma import open_client
from agent.store.profile_index import ProfileIndex
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore
from agent.store.segments import SegmentStore
from tests.fakes import SchemaFiller

TASTES: dict[str, tuple[list[str], list[str]]] = {
    "space": (["Sci-Fi", "Space opera", "Robots"], ["Sci-Fi", "Action"]),
    "love": (["Romance", "Period drama", "Weddings"], ["Romance", "Drama"]),
    "fear": (["Horror", "Slasher films", "Ghosts"], ["Horror", "Thriller"]),
}
GROUP_SIZE = 4
DIM = 256
"""Hash embedder size: wide enough that the template words of a profile rarely collide."""


def make_profile(user_id: str, topics: list[str], categories: list[str]) -> UserProfile:
    evidence = ["1"]
    return UserProfile(
        user_id=user_id,
        interests=[
            Interest(topic=t, weight=1.0 - 0.2 * i, sentiment="positive", evidence=evidence)
            for i, t in enumerate(topics)
        ],
        dislikes=[],
        sentiment=Sentiment(label="positive", score=0.5),
        intent=f"More {topics[0].lower()}",
        summary=f"Enjoys {' and '.join(t.lower() for t in topics)}.",
        confidence="medium",
        facts=ComputedFacts(
            event_count=10,
            rated_count=10,
            rating_mean=4.0,
            review_count=0,
            top_categories=[CategoryShare(category=c, share=0.4) for c in categories],
            first_event=None,
            last_event=None,
            days_since_last=None,
        ),  # fmt: skip
        grounding=Grounding(score=1.0),
        provenance=Provenance(
            model="hand-written",
            prompt=load_prompt("profile", 1).ref,
            history_hash="h",
            history_events=10,
            created_at=datetime(2024, 1, 1, tzinfo=UTC),
            version=1,
            kind=ProfileKind.FULL,
        ),  # fmt: skip
    )


def group_of(user_id: str) -> str:
    return user_id.split("-")[0]


def profiles() -> list[UserProfile]:
    """Three tastes, four users each; each user drops one topic so no two are identical."""
    made = []
    for taste, (topics, categories) in TASTES.items():
        for n in range(GROUP_SIZE):
            kept = [t for i, t in enumerate(topics) if i != n % len(topics)] if n else topics
            made.append(make_profile(f"{taste}-{n}", kept, categories))
    return made


def store_profiles(data_dir: Path, index_them: bool = True) -> tuple[RecordStore, ProfileIndex]:
    record = RecordStore.at(data_dir)
    store = ProfileStore(record)
    made = profiles()
    for profile in made:
        store.add(profile)
    index = ProfileIndex(open_client(Settings(data_dir=data_dir)), HashEmbedder(DIM))
    if index_them:
        index.upsert(made)
    return record, index


@pytest.fixture
def hash_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment_cmds, "load_embedder", lambda settings: HashEmbedder(DIM))


def fake_generator(model: SchemaFiller | None = None) -> StructuredGenerator:
    settings = Settings(max_reasks=0, concurrency=2)
    return StructuredGenerator(
        settings, model or SchemaFiller(), "fake-model", retry_wait=wait_none()
    )


# -- clustering ----------------------------------------------------------------------------


def test_segments_group_the_same_tastes_and_repeat_with_the_same_seed(tmp_path: Path) -> None:
    record, index = store_profiles(tmp_path)
    points = seg.load_points(ProfileStore(record), index)
    run = seg.segment(points, k=3, seed=7)
    groups = [{group_of(m.user_id) for m in s.members} for s in run.segments]
    assert all(len(g) == 1 for g in groups), groups
    assert sorted(s.size for s in run.segments) == [GROUP_SIZE] * 3
    again = seg.segment(seg.load_points(ProfileStore(record), index), k=3, seed=7)
    assert [[m.user_id for m in s.members] for s in again.segments] == [
        [m.user_id for m in s.members] for s in run.segments
    ]
    assert again.inertia == pytest.approx(run.inertia)
    space = next(s for s in run.segments if group_of(s.members[0].user_id) == "space")
    assert space.top_interests[0].topic in {"Sci-Fi", "Space opera", "Robots"}
    assert space.top_interests[0].members == 3


def test_profiles_missing_from_chroma_are_embedded_and_orphans_ignored(tmp_path: Path) -> None:
    record, index = store_profiles(tmp_path)
    index.delete(["space-0", "love-1"])
    orphan = make_profile("gone-1", ["Horror"], ["Horror"])
    index.upsert([orphan])  # a vector whose user has no profile in the record
    points = seg.load_points(ProfileStore(record), index)
    assert sorted(p.user_id for p in points.profiles) == sorted(p.user_id for p in profiles())
    assert points.vectors.shape == (len(profiles()), DIM)
    assert {"space-0", "love-1"} <= set(index.versions())


def test_k_that_does_not_fit_is_a_clear_error(tmp_path: Path) -> None:
    record, index = store_profiles(tmp_path)
    points = seg.load_points(ProfileStore(record), index)
    with pytest.raises(seg.SegmentationError, match="use 1 <= k <= 12"):
        seg.segment(points, k=13, seed=0)
    empty = RecordStore.at(tmp_path / "empty")
    with pytest.raises(seg.SegmentationError, match="personae profile"):
        seg.load_points(ProfileStore(empty), index)


def test_top_interests_merge_case_and_punctuation() -> None:
    a = make_profile("a", ["Sci-Fi", "Robots"], [])
    b = make_profile("b", ["sci fi", "Ghosts"], [])
    top = seg.top_interests([a, b])
    assert (top[0].topic, top[0].members) == ("Sci-Fi", 2)
    assert top[0].weight == pytest.approx(2.0)


# -- naming and storage ----------------------------------------------------------------------


def test_naming_sends_each_segment_its_interests_and_falls_back_per_segment(
    tmp_path: Path,
) -> None:
    record, index = store_profiles(tmp_path)
    points = seg.load_points(ProfileStore(record), index)
    run = seg.segment(points, k=3, seed=0)
    by_user = {p.user_id: p for p in points.profiles}
    report = seg.name_segments(fake_generator(SchemaFiller(poison=("Slasher",))), run, by_user)
    assert (report.named, report.fallback) == (2, 1)
    fear = next(s for s in run.segments if group_of(s.members[0].user_id) == "fear")
    assert fear.named_by == "interests" and "Horror" in fear.name
    named = [s for s in run.segments if s.named_by == "llm"]
    assert all(s.name and s.description for s in named)
    assert run.model == "fake-model" and run.prompt == load_prompt("segment_name", 1).ref
    prompt = seg.naming_prompt(fear, seg.top_categories([by_user[m.user_id] for m in fear.members]))
    text = prompt.messages[-1].content
    assert "A group of 4 users" in text and "Horror (3 of 4)" in text and "Horror 40%" in text
    assert 'could be "Horror and Slasher films fans"' in text  # copied by small models


def test_a_run_is_stored_with_its_provenance_and_read_back(tmp_path: Path) -> None:
    record, index = store_profiles(tmp_path)
    points = seg.load_points(ProfileStore(record), index)
    run = seg.segment(points, k=3, seed=0)
    seg.name_segments(fake_generator(), run, {p.user_id: p for p in points.profiles})
    store = SegmentStore(record)
    run_id = store.add(run)
    back = store.get(run_id)
    assert back is not None and store.latest_id() == run_id
    assert (back.k, back.seed, back.model, back.prompt) == (3, 0, "fake-model", run.prompt)
    assert back.embedding_model == f"hash-{DIM}"
    assert [(s.name, s.size, s.top_interests) for s in back.segments] == [
        (s.name, s.size, s.top_interests) for s in run.segments
    ]
    assert store.memberships("love-2") == [(run_id, _segment_of(run, "love-2"))]


def _segment_of(run: Any, user_id: str) -> int:
    return next(s.number for s in run.segments if user_id in {m.user_id for m in s.members})


# -- CLI -------------------------------------------------------------------------------------


def test_segments_cli_stores_a_run_and_shows_the_latest(
    tmp_path: Path, hash_embedder: None
) -> None:
    store_profiles(tmp_path, index_them=False)
    runner = CliRunner()
    args = ["segments", "--k", "3", "--no-names", "--data-dir", str(tmp_path), "--json"]
    made = runner.invoke(app, args)
    assert made.exit_code == 0, made.output
    data = json.loads(made.stdout)
    assert data["users"] == 12 and [s["size"] for s in data["segments"]] == [4, 4, 4]
    assert all(s["named_by"] == "interests" for s in data["segments"])
    assert data["model"] is None and set(data["timing"]) == {"load_s", "cluster_s", "name_s"}
    shown = runner.invoke(app, ["segments", "--data-dir", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert f"segments run {data['run_id']}: k=3 seed=0" in shown.output
    assert data["segments"][0]["name"] in shown.output


def test_segments_cli_names_with_the_llm(
    tmp_path: Path, hash_embedder: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextmanager
    def fake_open(settings: Settings) -> Iterator[StructuredGenerator]:
        yield fake_generator()

    monkeypatch.setattr(segment_cmds, "open_generator", fake_open)
    store_profiles(tmp_path)
    result = CliRunner().invoke(app, ["segments", "--k", "2", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "named by fake-model" in result.output
    store = SegmentStore(RecordStore.at(tmp_path))
    run = store.get(store.latest_id() or 0)
    assert run is not None and run.model == "fake-model"
    assert run.prompt == load_prompt("segment_name", 1).ref
    assert all(s.named_by == "llm" for s in run.segments)


def test_segments_cli_errors_say_what_to_run(tmp_path: Path, hash_embedder: None) -> None:
    runner = CliRunner()
    none_yet = runner.invoke(app, ["segments", "--data-dir", str(tmp_path)])
    assert none_yet.exit_code == 1 and "personae segments --k K" in none_yet.output
    no_profiles = runner.invoke(app, ["segments", "--k", "2", "--data-dir", str(tmp_path)])
    assert no_profiles.exit_code == 1 and "personae profile" in no_profiles.output


def test_similar_lists_the_same_taste_first_with_shared_interests(
    tmp_path: Path, hash_embedder: None
) -> None:
    record, index = store_profiles(tmp_path)
    index.upsert([make_profile("orphan-1", TASTES["space"][0], TASTES["space"][1])])
    args = ["similar", "space-1", "--n", "2", "--data-dir", str(tmp_path), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["similar"]
    # orphan-1's vector equals space-0's: it would rank first if orphans were not skipped
    assert [r["user_id"] for r in rows] == ["space-0", "space-2"]
    assert all(r["shared_interests"] and "Sci-Fi" in r["shared_categories"] for r in rows)
    assert rows[0]["similarity"] >= rows[-1]["similarity"]


def test_similar_errors_name_the_user_and_the_fix(tmp_path: Path, hash_embedder: None) -> None:
    record, _ = store_profiles(tmp_path)
    record.conn.execute("INSERT INTO users (user_id) VALUES ('fresh')")
    runner = CliRunner()
    unknown = runner.invoke(app, ["similar", "nobody", "--data-dir", str(tmp_path)])
    assert unknown.exit_code == 1 and "unknown user 'nobody'" in unknown.output
    fresh = runner.invoke(app, ["similar", "fresh", "--data-dir", str(tmp_path)])
    assert fresh.exit_code == 1 and "personae profile --users fresh" in fresh.output


# -- the real model ----------------------------------------------------------------------------


@pytest.mark.slow
def test_real_model_names_every_segment(
    tmp_path: Path,
    vllm_endpoint: Endpoint,
    llm_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default model names segments through the CLI with real embeddings: every name is
    schema-valid (no fallback), and the run records the model and prompt."""
    store_profiles(tmp_path, index_them=False)
    monkeypatch.setenv("PERSONAE_SERVED_MODEL_NAME", vllm_endpoint.model)
    args = ["segments", "--k", "3", "--base-url", vllm_endpoint.base_url,
            "--data-dir", str(tmp_path), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == vllm_endpoint.model
    assert data["prompt"]["id"] == "segment_name" and data["timing"]["naming"]["named"] == 3
    assert data["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    for s in data["segments"]:
        assert s["named_by"] == "llm" and s["name"].strip() and s["description"].strip()
    groups = [{group_of(u) for u in s["members"]} for s in data["segments"]]
    assert all(len(g) == 1 for g in groups), groups
