"""Recommendations follow a user's edits at once (`agent.recommend.steer`): `--never`
categories are filtered on every path, a user-added dislike demotes and an interest promotes
on the fusion path, and undoing the edit restores the list exactly. Real record and Chroma
(hash embedder), fake LLM profiles: plumbing, not quality."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.profiles.edits import EditRequest, apply_edit, user_entry
from agent.recommend.candidates import Allow
from agent.recommend.filters import ItemFilter, ItemMeta, excluding, parse_filters
from agent.recommend.fusion import Fused, SourceHit
from agent.recommend.steer import Steering
from agent.schemas import Interaction
from tests.recommend_data import World, build_world

META = {
    "a": ItemMeta(frozenset({"Horror"}), 1990),
    "b": ItemMeta(frozenset({"Comedy"}), 1990),
    "c": ItemMeta(frozenset({"Horror", "Comedy"}), 1990),
    "d": ItemMeta(frozenset({"Drama"}), 1990),
}


def fused(*scores: tuple[str, float]) -> list[Fused]:
    return [Fused(i, s, {"dense": SourceHit(n, s)}) for n, (i, s) in enumerate(scores, 1)]


def test_dislike_demotes_interest_promotes_and_zero_strength_is_a_no_op() -> None:
    steering = Steering(promote=frozenset({"Drama"}), demote=frozenset({"Horror"}))
    before = fused(("a", 0.04), ("b", 0.03), ("c", 0.025), ("d", 0.02))
    after = steering.reorder(before, META, 0.5)
    assert [f.item_id for f in after] == ["b", "d", "a", "c"]
    assert {f.item_id: f.score for f in after} == {"a": 0.02, "b": 0.03, "c": 0.0125, "d": 0.03}
    assert steering.reorder(before, META, 0.0) == before
    assert Steering().reorder(before, META, 0.5) == before


def test_never_adds_one_negated_category_condition() -> None:
    base = parse_filters(["year>=1990"])
    both = excluding(base, ["Horror", "Romance"])
    assert both.specs() == ["year>=1990", "category!=Horror|Romance"]
    assert not both.matches(META["c"]) and both.matches(META["b"])
    assert excluding(base, []) is base and not excluding(ItemFilter(), [])


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def top(world: World, user: str, k: int = 8) -> list[tuple[str, list[str]]]:
    result = world.recommender().recommend(user, k=k, rerank_with_llm=False)
    return [(r.item_id, r.categories) for r in result.items]


def share(items: list[tuple[str, list[str]]], category: str) -> float:
    return sum(category in c for _, c in items) / len(items)


def test_a_dislike_demotes_and_removing_it_restores_the_list(world: World) -> None:
    before, every_before = top(world, "crime"), top(world, "crime", k=50)
    assert share(before, "Drama") > 0
    apply_edit(world.record, "crime", EditRequest(add_dislikes=["dramas"]))
    assert share(top(world, "crime"), "Drama") == 0  # enough other candidates to fill 8
    every = top(world, "crime", k=50)
    drama = [i for i, c in every_before if "Drama" in c]
    assert all(every.index((i, c)) > every_before.index((i, c))
               for i, c in every_before if "Drama" in c)  # fmt: skip
    assert drama and sorted(every) == sorted(every_before)  # demoted, not removed
    apply_edit(world.record, "crime", EditRequest(remove=["Drama"]))
    assert top(world, "crime") == before


def test_an_interest_promotes(world: World) -> None:
    before = top(world, "crime", k=3)
    apply_edit(world.record, "crime", EditRequest(add_interests=["sci-fi"]))
    after = top(world, "crime", k=3)
    assert share(after, "Sci-Fi") > share(before, "Sci-Fi")


def test_never_filters_every_source_and_allow_again_lifts_it(world: World) -> None:
    before = top(world, "scifi", k=20)
    assert share(before, "Drama") > 0
    apply_edit(world.record, "scifi", EditRequest(never=["drama"]))
    rec = world.recommender()
    retrieval = rec.retrieve("scifi")
    assert retrieval.filters.specs() == ["category!=Drama"]
    for listed in [*retrieval.lists.values(), retrieval.fused]:
        assert all("Drama" not in rec.item_meta[h.item_id].categories for h in listed)
    apply_edit(world.record, "scifi", EditRequest(allow_again=["Drama"]))
    assert top(world, "scifi", k=20) == before


def test_the_ranker_order_is_steered_by_position_and_keeps_its_scores() -> None:
    steering = Steering(promote=frozenset({"Drama"}), demote=frozenset({"Horror"}))
    ranked = fused(("a", 1.5), ("b", -0.2), ("c", -0.3), ("d", -0.9))  # not one scale
    after = steering.reorder_ranked(ranked, META, 0.5)
    # keys: a 0.5/61, b 1/62, c 0.5/63, d 1.5/64: d and b overtake the disliked a and c
    assert [f.item_id for f in after] == ["d", "b", "a", "c"]
    assert {f.item_id: f.score for f in after} == {f.item_id: f.score for f in ranked}
    assert steering.reorder_ranked(ranked, META, 0.0) == ranked


def test_the_ranker_path_gets_the_never_filter_and_the_steering(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a ranker, the never filter reaches its candidates through `allow`, and the
    user's dislikes move its order (by position) after it ranked."""
    import agent.rank.serve as serve

    seen: dict[str, Any] = {}

    def ranked_fusion(
        ranker: object,
        user_id: str,
        history: Sequence[Interaction],
        fused: Sequence[Fused],
        exclude: Collection[str],
        allow: Allow | None,
        evidence: object = None,
    ) -> tuple[list[Fused], None]:
        seen["allow"], seen["order"] = allow, [f.item_id for f in fused]
        return list(fused), None

    monkeypatch.setattr(serve, "ranked_fusion", ranked_fusion)
    rec = world.recommender()
    monkeypatch.setattr(rec, "ranker", lambda: object())
    monkeypatch.setattr(rec, "profile_evidence", lambda *a: None, raising=False)
    rec.retrieve("scifi", parse_filters(["category!=Drama"]))
    filtered = seen["order"]  # what --filter gives, before any edit
    apply_edit(world.record, "scifi", EditRequest(add_dislikes=["horror"], never=["Drama"]))
    steered = [f.item_id for f in rec.retrieve("scifi").fused]
    allow = seen["allow"]
    assert allow is not None
    assert not any(allow(i) for i, m in rec.item_meta.items() if "Drama" in m.categories)
    assert seen["order"] == filtered  # what the ranker got: fusion's order, unsteered
    ranked = seen["order"]
    horror = [i for i in ranked if "Horror" in rec.item_meta[i].categories]
    assert horror and sorted(steered) == sorted(ranked)
    assert sum(steered.index(i) for i in horror) > sum(ranked.index(i) for i in horror)


def test_steering_reads_only_user_entries_naming_a_category(world: World) -> None:
    profile = world.recommender().profile_of("scifi")
    mine = profile.model_copy(
        update={"dislikes": [user_entry("Horror", False), user_entry("slow burn", False)]}
    )
    steering = Steering.of(mine, ["Drama"], {"Horror", "Drama"})
    assert steering.demote == {"Horror"} and steering.never == ("Drama",)
    assert not steering.promote  # the model's interests are not steering
