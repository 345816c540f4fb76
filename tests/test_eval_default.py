"""The eval's `default` system (what `recommend` gives by default) and its guard against
`ranker-no-llm`, on hand-made records; and what `eval tune-blend` stores. Deterministic."""

from __future__ import annotations

from typing import Any

import pytest

from evals.execute import checks
from evals.metrics import expected_random_ndcg
from evals.protocols import (
    DEFAULT,
    DefaultPath,
    Protocol,
    ProtocolRecord,
    UserRecord,
    outcome,
    run_llmrank,
)
from evals.summary import RunSummary, default_guard, protocol_summary
from evals.tune import BlendPoint, BlendSweep, tuned

GUARD = "default not below ranker-no-llm (95% CI not entirely below 0)"


def record(user: str, ranks: dict[str, int]) -> UserRecord:
    """One user's llmrank record whose systems put the held-out item at `ranks`."""
    candidates = [f"i{n}" for n in range(20)]
    systems = {}
    for name, rank in ranks.items():
        order = [c for c in candidates if c != "i0"]
        order.insert(rank - 1, "i0")
        systems[name] = outcome(Protocol.LLMRANK, "i0", order)
    entry = ProtocolRecord(protocol=Protocol.LLMRANK, candidates=candidates, target_position=1,
                           systems=systems)  # fmt: skip
    return UserRecord(user_id=user, stage="test", target="i0", history_ids=[],
                      protocols={"llmrank": entry})  # fmt: skip


def guard_of(records: list[UserRecord]) -> dict[str, Any]:
    summary = protocol_summary(records, Protocol.LLMRANK, samples=500, seed=0)
    return default_guard(summary, DefaultPath(system="fusion", weight=0.5, weight_from="tuned"))


def test_the_guard_fails_when_default_is_clearly_below_ranker_no_llm() -> None:
    records = [record(f"u{n}", {"ranker-no-llm": 1 + n % 3, DEFAULT: 8 + n % 5})
               for n in range(40)]  # fmt: skip
    found = guard_of(records)
    assert found[GUARD] is False
    assert found["default path (llmrank)"] == "fusion+LLM blend w=0.5 (tuned)"
    assert found["default - ranker-no-llm llmrank NDCG@10 (paired)"].startswith("-")


@pytest.mark.parametrize(
    "default_rank",
    [
        lambda n: 2,  # the same order: difference 0 [0, 0]
        lambda n: 1,  # better
        lambda n: 1 if n % 4 == 0 else 3,  # a little below on average, the interval over 0
    ],
    ids=["same", "better", "not-significantly-below"],
)
def test_the_guard_passes_otherwise(default_rank: Any) -> None:
    records = [record(f"u{n}", {"ranker-no-llm": 2, DEFAULT: default_rank(n)})
               for n in range(40)]  # fmt: skip
    summary = protocol_summary(records, Protocol.LLMRANK, samples=500, seed=0)
    difference = next(d for d in summary.differences if d.b == DEFAULT)
    assert difference.low <= 0 <= difference.high or difference.low > 0
    assert guard_of(records)[GUARD] is True


def test_the_guard_is_a_run_check_beside_the_random_one() -> None:
    records = [record(f"u{n}", {"random": 1 + n % 20, "ranker-no-llm": 1, DEFAULT: 12})
               for n in range(40)]  # fmt: skip
    summary = RunSummary(
        run_id="r", stage="test", seed=0, users=40, smoke=False, backends={},
        protocols={"llmrank": protocol_summary(records, Protocol.LLMRANK, 500, 0)},
        quality={}, cost={}, skipped={}, checks={},
        default_path=DefaultPath(system="ranker"),
    )  # fmt: skip
    found = checks(summary, 20)
    assert found["random llmrank NDCG@10 expected"] == round(expected_random_ndcg(10, 20), 2)
    assert found[GUARD] is False and found["default path (llmrank)"] == "ranker"
    assert not default_guard(protocol_summary(records[:0], Protocol.LLMRANK, 10, 0))


class Fixed:
    """A system with a fixed order (plumbing for run_llmrank)."""

    def __init__(self, order: list[str]) -> None:
        self._order = order

    def order(self, split: Any, candidates: Any) -> list[str]:
        return list(self._order)

    def covers(self, split: Any) -> bool:
        return True


def test_run_llmrank_builds_default_from_the_ranker_or_the_blended_fusion() -> None:
    from evals.llm import RerankResult
    from evals.splits import UserSplit

    split = UserSplit("u", (), "c", frozenset(), frozenset())
    fusion, ranker = ["a", "b", "c"], ["c", "b", "a"]
    systems: Any = {"fusion": Fixed(fusion), "ranker-no-llm": Fixed(ranker)}
    rerank = RerankResult.model_construct(llm_ranks={"c": 1, "b": 2, "a": 3})
    by_ranker = run_llmrank(split, fusion, systems, "fusion", rerank, 0.5, True,
                            DefaultPath(system="ranker-no-llm"))  # fmt: skip
    assert by_ranker.systems[DEFAULT].top == ranker
    at_zero = run_llmrank(split, fusion, systems, "fusion", rerank, 0.5, True,
                          DefaultPath(system="fusion", weight_from="none"))  # fmt: skip
    assert at_zero.systems[DEFAULT].top == fusion
    at_one = run_llmrank(split, fusion, systems, "fusion", rerank, 0.5, True,
                         DefaultPath(system="fusion", weight=1.0, weight_from="tuned"))  # fmt: skip
    assert at_one.systems[DEFAULT].top == ["c", "b", "a"]
    assert DEFAULT not in run_llmrank(split, fusion, systems, "fusion", rerank, 0.5, True).systems


def test_tune_blend_stores_the_best_weight_with_what_it_was_chosen_on() -> None:
    points = [BlendPoint(weight=w, mean=m, low=m - 1, high=m + 1)
              for w, m in ((0.0, 50.0), (0.1, 52.0), (0.2, 51.0))]  # fmt: skip
    found = BlendSweep(protocol="llmrank", metric="ndcg@10", users=100, reranked_users=98,
                       best=0.1, points=points)  # fmt: skip
    made = tuned(found, "served-model", "scored", 3, "abc123", "/runs/x")
    assert (made.weight, made.model, made.mode, made.users) == (0.1, "served-model", "scored", 100)
    assert (made.mean, made.mean_at_zero, made.data_hash) == (52.0, 50.0, "abc123")
