"""Retrievers, fusion and filters on their own: hand-computed cases, plus the real Chroma store
(temp dir, hash embedder) to show filters mean the same thing in Chroma and in Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.recommend.candidates import Scored
from agent.recommend.collaborative import EaseModel, fit_ease, load_or_fit
from agent.recommend.dense import dense_candidates
from agent.recommend.filters import FilterError, load_item_meta, parse_filters
from agent.recommend.fusion import fuse
from agent.recommend.popularity import DAY_MS, fit_popularity
from agent.recommend.signals import positive_events
from agent.store.item_index import ItemIndex
from tests.profile_data import add_events
from tests.recommend_data import CROWD, build_world


def test_ease_recommends_what_co_occurs_and_explains_with_history() -> None:
    pairs = [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y"), ("c", "x"), ("c", "z"), ("d", "z")]
    model = fit_ease(pairs, lam=0.5, max_items=10)
    top = model.recommend(["x"], n=1, exclude={"x"})
    assert top[0].item_id == "y"  # y co-occurs with x twice, z once
    assert model.contributions(["x", "z"], "y") == ["x"]
    assert model.scores(["nothing"]).tolist() == [0.0] * 3


def test_ease_keeps_only_the_most_interacted_items() -> None:
    pairs = [("a", "x"), ("b", "x"), ("a", "y"), ("c", "z"), ("d", "x"), ("d", "y")]
    model = fit_ease(pairs, lam=1.0, max_items=2)
    assert model.item_ids == ["x", "y"] and "z" not in model


def test_ease_is_stored_and_refitted_only_when_interactions_change(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    first, refitted = load_or_fit(world.record, tmp_path, 10.0, 100)
    assert refitted and len(list((tmp_path / "models/collaborative").glob("*.npz"))) == 1
    again, refitted = load_or_fit(world.record, tmp_path, 10.0, 100)
    assert not refitted and again is first
    loaded = EaseModel.load(next((tmp_path / "models/collaborative").glob("*.npz")))
    assert loaded.item_ids == first.item_ids and (loaded.weights == first.weights).all()
    add_events(world.record, "c1", [("15", 5, 90)])
    changed, refitted = load_or_fit(world.record, tmp_path, 10.0, 100)
    assert refitted and changed.fingerprint != first.fingerprint
    files = list((tmp_path / "models/collaborative").glob("*.npz"))
    assert [f.name for f in files] == [f"ease-{changed.fingerprint}.npz"]  # stale file removed
    _, refitted = load_or_fit(world.record, tmp_path, 20.0, 100)  # new parameters: refit
    assert refitted


def test_popularity_decays_with_age() -> None:
    old = [("old", 0)] * 4
    recent = [("new", 200 * DAY_MS)] * 2
    model = fit_popularity(old + recent, half_life_days=30)
    assert [s.item_id for s in model.ranked] == ["new", "old"]
    flat = fit_popularity(old + recent, half_life_days=1e9)  # no decay: counts win
    assert [s.item_id for s in flat.ranked] == ["old", "new"]
    assert model.top(5, exclude={"new"}) == [model.ranked[1]]
    assert model.standing("new") == (1, 2.0) and model.standing("none") is None


def test_weighted_rrf_by_hand() -> None:
    lists = {
        "dense": [Scored("a", 0.9), Scored("b", 0.8)],
        "collaborative": [Scored("b", 3.0), Scored("c", 2.0)],
    }
    fused = fuse(lists, {"dense": 1.0, "collaborative": 2.0}, k=1)
    scores = {f.item_id: f.score for f in fused}
    assert scores == {"a": 0.5, "b": pytest.approx(1 / 3 + 1.0), "c": pytest.approx(2 / 3)}
    assert [f.item_id for f in fused] == ["b", "c", "a"]
    assert fused[0].sources == ["collaborative", "dense"]
    assert fused[0].hits["dense"].rank == 2


def test_fusion_applies_exclusions_and_filters_to_every_source() -> None:
    lists = {"dense": [Scored("a", 1), Scored("b", 1)], "popularity": [Scored("c", 1)]}
    fused = fuse(lists, {"dense": 1, "popularity": 1}, exclude={"a"}, allow=lambda i: i != "c")
    assert [f.item_id for f in fused] == ["b"]
    assert fused[0].hits["dense"].rank == 1  # ranks count eligible items only


@pytest.mark.parametrize(
    "specs",
    [
        ["category=Sci-Fi"],
        ["category!=Horror"],
        ["category=drama|comedy"],
        ["year>=1990"],
        ["year<1980", "category=Horror"],
        ["year!=1995"],
        ["year=1995|1996"],
    ],
)
def test_filters_mean_the_same_in_chroma_and_in_python(tmp_path: Path, specs: list[str]) -> None:
    world = build_world(tmp_path)
    meta = load_item_meta(world.record)
    known = {c for m in meta.values() for c in m.categories}
    chosen = parse_filters(specs, known)
    collection = world.index.get_collection()
    assert collection is not None
    in_chroma = set(collection.get(where=chosen.where())["ids"])
    in_python = {i for i, m in meta.items() if chosen.matches(m)}
    assert in_chroma == in_python and in_python


def test_filter_errors_are_clear() -> None:
    with pytest.raises(FilterError, match="unknown category 'Westerns'.*Drama"):
        parse_filters(["category=Westerns"], {"Drama"})
    with pytest.raises(FilterError, match="use e.g."):
        parse_filters(["genre Drama"])
    with pytest.raises(FilterError, match="whole number"):
        parse_filters(["year>=nineties"])
    with pytest.raises(FilterError, match="= or != only"):
        parse_filters(["category>=Drama"])
    assert parse_filters(["Category=sci-fi"], {"Sci-Fi"}).specs() == ["category=Sci-Fi"]


@pytest.mark.parametrize("source", ["index", "snapshot"])
def test_dense_excludes_seen_items_and_respects_where(tmp_path: Path, source: str) -> None:
    """The same answers from Chroma and from the vector snapshot `index items` leaves beside
    it (the snapshot filters by the record's metadata, Chroma by its own)."""
    from agent.recommend.dense import DenseItems
    from agent.store.item_snapshot import load_snapshot

    world = build_world(tmp_path)
    dense = DenseItems.of(world.index)
    if source == "snapshot":
        folder = world.index.snapshot_folder()
        assert folder is not None
        snapshot = load_snapshot(folder, world.index.embedder.model_id)
        assert snapshot is not None and snapshot.count() == 17

        def unopened() -> ItemIndex:
            raise AssertionError("the snapshot path opened Chroma")

        dense = DenseItems(world.index.embedder, unopened, snapshot)
    hits = dense_candidates(dense, "Alien horror sci-fi", 5, exclude={"1", "2"})
    assert len(hits) == 5 and not {"1", "2"} & {h.item_id for h in hits}
    horror = parse_filters(["category=Horror"])
    meta = load_item_meta(world.record)
    found = dense_candidates(
        dense,
        "anything",
        10,
        where=horror.where(),
        allow=lambda item_id: horror.matches(meta.get(item_id)),
        catalog_size=17,
    )
    assert {h.item_id for h in found} == {"1", "8", "11"}


def test_positive_events_leave_out_negative_feedback(tmp_path: Path) -> None:
    from agent.recommend.feedback import record_feedback
    from agent.recommend.signals import FeedbackLabel

    world = build_world(tmp_path)
    before = len(positive_events(world.record))
    record_feedback(world.record, "c1", "12", FeedbackLabel.DISLIKED)
    record_feedback(world.record, "c1", "15", FeedbackLabel.LIKED)
    events = positive_events(world.record)
    assert len(events) == before + 1 and ("c1", "15") in {(e.user_id, e.item_id) for e in events}
    assert len(positive_events(world.record, with_feedback=False)) == before
    assert sum(len(v) for v in CROWD.values()) < before
