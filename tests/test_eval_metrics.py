"""Eval metrics against hand-computed cases, and the protocol's sampling rules."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from agent.schemas import Interaction
from evals.metrics import (
    bootstrap,
    expected_random_ndcg,
    hit,
    metric,
    metrics_for,
    mrr,
    ndcg,
    paired_bootstrap,
    rank_of,
)
from evals.protocols import blended_order
from evals.sampling import choose_users, llmrank_candidates
from evals.splits import Stage, build_stage, split_user


def test_ndcg_hr_mrr_by_hand() -> None:
    assert ndcg(1, 10) == 100.0
    assert ndcg(3, 10) == pytest.approx(50.0)  # 1 / log2(4)
    assert ndcg(7, 10) == pytest.approx(100 / 3)  # 1 / log2(8)
    assert ndcg(10, 10) == pytest.approx(100 / math.log2(11))
    assert ndcg(11, 10) == 0.0 and ndcg(None, 10) == 0.0
    assert ndcg(5, 1) == 0.0 and ndcg(1, 1) == 100.0
    assert hit(5, 5) == 100.0 and hit(6, 5) == 0.0 and hit(None, 20) == 0.0
    assert mrr(4) == 25.0 and mrr(None) == 0.0
    assert metric("recall@20", 20) == 100.0 and metric("hr@10", 11) == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        metric("map@5", 1)


def test_metrics_for_one_user() -> None:
    got = metrics_for(2, ("ndcg@1", "ndcg@5", "hr@1", "hr@5", "mrr"))
    assert got == {
        "ndcg@1": 0.0,
        "ndcg@5": pytest.approx(63.092975),  # 1 / log2(3)
        "hr@1": 0.0,
        "hr@5": 100.0,
        "mrr": 50.0,
    }


def test_random_order_of_20_gives_the_published_22_72() -> None:
    assert expected_random_ndcg(10, 20) == pytest.approx(22.72, abs=0.005)
    assert expected_random_ndcg(20, 20) == pytest.approx(
        sum(100 / math.log2(r + 1) for r in range(1, 21)) / 20
    )


def test_rank_of() -> None:
    assert rank_of("b", ["a", "b", "c"]) == 2
    assert rank_of("z", ["a"]) is None


def test_bootstrap_interval() -> None:
    constant = bootstrap([40.0] * 30, 200, seed=0)
    assert (constant.mean, constant.low, constant.high, constant.n) == (40.0, 40.0, 40.0, 30)
    spread = bootstrap([0.0, 100.0] * 50, 500, seed=0)
    assert spread.mean == 50.0 and 35 < spread.low < 50 < spread.high < 65
    assert bootstrap([0.0, 100.0] * 50, 500, seed=0) == spread  # seeded: reproducible
    diff = paired_bootstrap([10.0, 20.0, 30.0], [15.0, 25.0, 35.0], 100, seed=0)
    assert (diff.mean, diff.low, diff.high) == (5.0, 5.0, 5.0)
    assert math.isnan(bootstrap([], 10, 0).mean)


def test_blend_by_hand() -> None:
    from evals.llm import RerankResult

    retrieval = ["a", "b", "c"]
    ranks = {"c": 1, "b": 2, "a": 3}
    result = RerankResult(
        user_id="u", shown=retrieval, picks_requested=3, llm_ranks=ranks, picks={}, runs=1,
        failed_runs=0, errors=[], prompt=None, tokens_in=0, tokens_out=0, attempts=1, reasks=0,
        latency_s=0.0, dropped=0,
    )  # fmt: skip
    assert blended_order(retrieval, result, 0.0) == ["a", "b", "c"]
    assert blended_order(retrieval, result, 1.0) == ["c", "b", "a"]
    # 0.5: a = .5*0 + .5*1 = .5, b = .5, c = .5: ties keep the retrieval order
    assert blended_order(retrieval, result, 0.5) == ["a", "b", "c"]
    assert blended_order(retrieval, None, 1.0) == ["a", "b", "c"]


START = datetime(2020, 1, 1, tzinfo=UTC)


def events(user: str, items: list[str], days: list[int]) -> list[Interaction]:
    made = [
        Interaction(user_id=user, item_id=i, timestamp=START + timedelta(days=d), rating=4.0)
        for i, d in zip(items, days, strict=True)
    ]
    return sorted(made, key=lambda e: e.timestamp)


def test_leave_one_out_by_time_with_cap() -> None:
    history = events("u", ["a", "b", "c", "d", "e"], [5, 1, 3, 2, 4])  # time order: b d c e a
    test, prefix, _ = split_user(history, Stage.TEST, cap=3, min_history=2)
    assert test is not None and test.target == "a"
    assert [e.item_id for e in prefix] == ["b", "d", "c", "e"]
    assert [e.item_id for e in test.history] == ["d", "c", "e"]  # capped to the 3 most recent
    assert test.prior == {"b", "d", "c", "e"} and test.seen == {"a", "b", "c", "d", "e"}
    val, _, _ = split_user(history, Stage.VALIDATION, cap=50, min_history=2)
    assert val is not None and val.target == "e"
    assert [e.item_id for e in val.history] == ["b", "d", "c"]
    short, _, reason = split_user(history[:2], Stage.TEST, cap=50, min_history=2)
    assert short is None and reason == "short_history"


def test_models_never_train_on_any_held_out_event() -> None:
    histories = {
        "u1": events("u1", ["a", "b", "c"], [1, 2, 3]),
        "u2": events("u2", ["x"], [1]),  # too short to evaluate, its only event is held out
    }
    data = build_stage(histories, Stage.TEST, cap=50, min_history=2)
    assert set(data.splits) == {"u1"}
    assert data.train_pairs == [("u1", "a"), ("u1", "b")]
    assert data.skipped == {"short_history": 1}
    data = build_stage(histories, Stage.VALIDATION, cap=50, min_history=1)
    assert data.train_pairs == [("u1", "a")]


def test_llmrank_candidates() -> None:
    history = events("u", ["1", "2", "3", "4"], [1, 2, 3, 4])
    split, _, _ = split_user(history, Stage.TEST, cap=50, min_history=2)
    assert split is not None
    catalog = sorted(str(i) for i in range(1, 101))
    picked = llmrank_candidates(split, catalog, 20, seed=0)
    assert len(picked) == len(set(picked)) == 20
    assert split.target in picked
    assert not set(picked) & {"1", "2", "3"}  # never an item the user has seen
    assert picked == llmrank_candidates(split, catalog, 20, seed=0)
    assert picked != llmrank_candidates(split, catalog, 20, seed=1)


def test_user_sample_is_seeded_and_sorted() -> None:
    users = [str(i) for i in range(1, 50)]
    first = choose_users(users, 10, seed=3)
    assert first == choose_users(list(reversed(users)), 10, seed=3)
    assert first == sorted(first, key=int) and len(first) == 10
    assert choose_users(users, None, 0) == users


def test_a_smaller_user_sample_is_part_of_a_larger_one() -> None:
    """A 50-user pilot's cached LLM results must serve the 200-user run with the same seed."""
    users = [str(i) for i in range(1, 944)]
    pilot, full = choose_users(users, 50, seed=0), choose_users(users, 200, seed=0)
    assert set(pilot) < set(full)
    assert choose_users(users, 200, seed=1) != full
