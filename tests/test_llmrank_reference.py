"""LLMRank's own candidate lists (`--protocol llmrank-ref`): RecBole's token order, the seeded
draws of `sample_candidates.py -s random` pinned for a few ML-100K users, and the trainer's
rule (target dropped from the draw, first 19 kept, target added; own items stay)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.llmrank_reference import (
    ReferenceLists,
    recbole_tokens,
    reference_candidates,
    sample_lists,
)
from evals.splits import UserSplit

ORDER = Path(__file__).parent / "fixtures" / "llmrank_reference" / "ml100k_recbole_order.txt"


def split(user: str, target: str, seen: tuple[str, ...] = ()) -> UserSplit:
    return UserSplit(user_id=user, history=(), target=target, prior=frozenset(seen),
                     seen=frozenset((*seen, target)))  # fmt: skip


def ml100k_order() -> tuple[list[str], list[str]]:
    lines = [line for line in ORDER.read_text().splitlines() if not line.startswith("#")]
    return lines[0].split(), lines[1].split()


def test_tokens_follow_first_appearance_in_file_order() -> None:
    rows = [("196", "242"), ("186", "302"), ("196", "377"), ("22", "242"), ("186", "51")]
    assert recbole_tokens(rows) == (["196", "186", "22"], ["242", "302", "377", "51"])


def test_ml100k_order_starts_as_u_data_does() -> None:
    users, items = ml100k_order()
    assert (len(users), len(items)) == (943, 1682)
    assert users[:3] == ["196", "186", "22"] and items[:3] == ["242", "302", "377"]


def test_seed_2020_draws_are_llmrank_s_lists_for_pinned_users() -> None:
    """`random.seed(2020)`, all 943 users drawn, then 100 items per user in that order. The
    last item of each list pins how much of the random stream one user consumes."""
    lists = sample_lists(*ml100k_order())
    selected = list(lists.drawn)
    assert len(selected) == 943 and len(set(selected)) == 943
    assert selected[:3] == ["637", "941", "180"] and selected[471] == "613"
    assert selected[942] == "777"
    pinned = {
        "637": "806 1283 594 1407 1505 1465 1428 1152 256 608 780 1577 967 138 275 621 346 749 "
        "1614",
        "941": "1625 1507 1235 367 555 1149 772 656 191 1493 400 244 204 1319 732 261 1246 19 1238",
        "613": "1309 620 1281 988 945 1287 468 448 454 1545 290 1204 731 722 307 1565 1014 1248 "
        "1646",
        "777": "414 206 1676 877 1259 79 299 1354 89 702 124 937 1592 1634 388 709 133 1030 38",
    }
    for user, items in pinned.items():
        assert lists.drawn[user][:19] == items.split()
        assert len(lists.drawn[user]) == 100 and len(set(lists.drawn[user])) == 100
    assert [lists.drawn[u][-1] for u in ("637", "941", "180", "613", "777")] == [
        "521", "1254", "1154", "591", "326"]  # fmt: skip


def test_another_seed_or_draw_size_gives_other_lists() -> None:
    users, items = ml100k_order()
    base = sample_lists(users, items)
    assert sample_lists(users, items, seed=2021).drawn != base.drawn
    fewer = sample_lists(users, items, drawn=19)
    first = next(iter(base.drawn))
    # the same first user's 19 (set-based draws share a prefix), then the streams part
    assert fewer.drawn[first] == base.drawn[first][:19] and fewer.drawn != base.drawn


def test_target_dropped_from_the_draw_first_19_kept_target_added_own_items_stay() -> None:
    drawn = [f"i{k}" for k in range(100)]
    lists = ReferenceLists({"u": drawn})
    found = lists.candidates(split("u", "i5", seen=("i0", "i1")))
    assert found == [*(f"i{k}" for k in range(20) if k != 5), "i5"]
    assert {"i0", "i1"} <= set(found)  # the user's own items are not filtered out
    assert lists.candidates(split("u", "new")) == [*drawn[:19], "new"]
    with pytest.raises(KeyError):
        lists.candidates(split("other", "i5"))


def test_reference_candidates_shuffle_the_trainer_s_set_with_the_seed() -> None:
    rows = [(f"u{u}", f"i{(u * 7 + k) % 40}") for u in range(5) for k in range(12)]
    splits = {f"u{u}": split(f"u{u}", f"i{u}") for u in range(5)}
    lists = sample_lists(*recbole_tokens(rows))
    a = reference_candidates(rows, splits, seed=0)
    assert a == reference_candidates(rows, splits, seed=0)
    assert a != reference_candidates(rows, splits, seed=1)
    for user, candidates in a.items():
        assert sorted(candidates) == sorted(lists.candidates(splits[user]))
        assert len(candidates) == 20 and splits[user].target in candidates


def test_eval_run_scores_every_system_on_the_reference_lists(tmp_path: Path) -> None:
    """`--protocol llmrank-ref` end to end on the small synthetic world: every user's shown
    candidates are the trainer's set from the seed-2020 draw, and the rankers run on them."""
    from evals.execute import load_records
    from evals.protocols import Protocol
    from tests.test_eval_run import build, run

    world = build(tmp_path)
    result = run(world, tmp_path, protocols=[Protocol.LLMRANK_REF], rerank=False)
    systems = result.summary.protocols["llmrank-ref"].systems
    assert {"collaborative", "sequential", "ranker-no-llm", "random"} <= set(systems)
    rows = world.record.conn.execute("SELECT user_id, item_id FROM interactions ORDER BY id")
    lists = sample_lists(*recbole_tokens(rows))
    for record in load_records(result.run_dir):
        shown = record.protocols["llmrank-ref"].candidates
        assert record.target in shown and len(shown) == 20
        drawn = [i for i in lists.drawn[record.user_id] if i != record.target]
        assert sorted(shown) == sorted([*drawn[:19], record.target])
