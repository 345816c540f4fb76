"""The ranker for llmrank-ref trains on groups drawn as LLMRank draws its lists: the target and
19 items from the whole catalog, the user's own earlier items allowed, the target never among
the negatives, seeded per run (`Candidates.SAMPLED_ANY`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.rank.sources import Sources, fit_sources
from agent.rank.training import Candidates, Judged, group_rows, judged_events, prefixes
from evals.protocols import Protocol
from evals.ranked import mode_for
from evals.splits import Stage
from tests.test_rank_leakage import catalog, histories

VALIDATION = Stage.TEST.held_out + 1
"""The eval trains its rankers on each user's validation event (one before the test event)."""


def training_groups(
    seed: int, mode: Candidates = Candidates.SAMPLED_ANY, size: int = 20
) -> tuple[dict[str, Judged], dict[str, list[str]]]:
    """Every user's training group as `fit_ranking` builds it: item ids in the order shown."""
    data = histories()
    sources: Sources = fit_sources(prefixes(data, VALIDATION), catalog())
    judged = judged_events(data, VALIDATION, 3)
    ids = sources.catalog.item_ids
    found = {}
    for user_id, j in judged.items():
        group = group_rows(sources, j, mode, size, seed)
        assert group is not None
        found[user_id] = [ids[r] for r in group[1]]
    return judged, found


def test_groups_hold_the_target_once_and_may_hold_the_users_own_items() -> None:
    judged, groups = training_groups(seed=0)
    assert groups
    with_own = 0
    for user_id, items in groups.items():
        j = judged[user_id]
        assert len(items) == 20 and len(set(items)) == 20
        assert items.count(j.target) == 1
        with_own += any(i in {e.item_id for e in j.before} for i in items if i != j.target)
    assert with_own > 0  # the llmrank groups never do: see the next test


def test_the_llmrank_groups_keep_the_users_own_items_out() -> None:
    judged, groups = training_groups(seed=0, mode=Candidates.SAMPLED)
    for user_id, items in groups.items():
        assert not set(items) & {e.item_id for e in judged[user_id].before}


def test_groups_are_reproducible_with_the_seed() -> None:
    _, a = training_groups(seed=0)
    _, again = training_groups(seed=0)
    _, other = training_groups(seed=1)
    assert a == again
    assert a != other
    assert all(sorted(a[u]) == sorted(again[u]) for u in a)


def test_a_group_never_exceeds_the_catalog() -> None:
    _, groups = training_groups(seed=0, size=100)
    assert all(len(items) == len(catalog()) for items in groups.values())


def test_mode_for_trains_each_protocol_on_its_own_draw() -> None:
    assert mode_for(Protocol.LLMRANK_REF) is Candidates.SAMPLED_ANY
    assert mode_for(Protocol.LLMRANK) is Candidates.SAMPLED
    assert mode_for(Protocol.FULL) is Candidates.RETRIEVED
    assert Candidates.SAMPLED_ANY.sampled and Candidates.SAMPLED.sampled
    assert not Candidates.RETRIEVED.sampled


def test_eval_run_judges_llmrank_ref_with_the_sampled_any_ranker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both sampled protocols in one run: one ranker per draw, each protocol ordered by its
    own (seen by recording which ranker every `order` call used, per shown list)."""
    from evals.execute import load_records
    from evals.ranked import RankerSystem
    from tests.test_eval_run import build, run

    used: dict[tuple[str, ...], set[Candidates]] = {}
    original = RankerSystem.order

    def spy(self: RankerSystem, split: Any, candidates: Any) -> list[str]:
        used.setdefault(tuple(candidates), set()).add(self.sampled)
        return original(self, split, candidates)

    monkeypatch.setattr(RankerSystem, "order", spy)
    world = build(tmp_path)
    protocols = [Protocol.LLMRANK, Protocol.LLMRANK_REF]
    result = run(world, tmp_path, protocols=protocols, rerank=False)
    groups = result.summary.ranking["groups"]
    assert set(groups) == {"sampled", "sampled-any"}  # type: ignore[arg-type]
    for record in load_records(result.run_dir):
        for protocol in protocols:
            shown = tuple(record.protocols[protocol.value].candidates)
            assert used[shown] == {mode_for(protocol)}
            assert "ranker-no-llm" in record.protocols[protocol.value].systems
