"""Ranker features on a hand-made catalog: ranks among eligible items, missing values as NaN
with their flag, category affinity, recent-item distance, the LLM columns, and the candidate
union."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np

from agent.rank.features import (
    ALL_FEATURES,
    LLM_FEATURES,
    NO_LLM_FEATURES,
    LlmEvidence,
    candidate_union,
    feature_matrix,
    user_scores,
)
from agent.rank.sources import Catalog, SourceParams, fit_sources
from agent.recommend.filters import ItemMeta
from agent.schemas import Interaction

START = datetime(2020, 1, 1, tzinfo=UTC)


def events(user: str, items: list[str], day0: int = 0) -> list[Interaction]:
    return [
        Interaction(user_id=user, item_id=i, rating=4.0, timestamp=START + timedelta(days=day0 + d))
        for d, i in enumerate(items)
    ]


CATALOG = Catalog.from_meta(
    {
        "a": ItemMeta(frozenset({"Drama"}), 1990),
        "b": ItemMeta(frozenset({"Drama", "War"}), 1995),
        "c": ItemMeta(frozenset({"Comedy"}), None),
        "d": ItemMeta(frozenset({"Comedy"}), 2000),
        "e": ItemMeta(frozenset(), 2001),
        "z": ItemMeta(frozenset({"Drama"}), 1980),  # nobody has it
    }
)
PREFIXES = {
    "u1": events("u1", ["a", "b", "c"]),
    "u2": events("u2", ["a", "b", "d"]),
    "u3": events("u3", ["b", "c", "d", "e"]),
    "u4": events("u4", ["a", "c"]),
}


def matrix(items: list[str], names: tuple[str, ...] = NO_LLM_FEATURES, **kw: object) -> dict:
    sources = fit_sources(PREFIXES, CATALOG, SourceParams(ease_lambda=1.0))
    scored = user_scores(sources, sources.user("u4", PREFIXES["u4"]))
    x = feature_matrix(sources, scored, CATALOG.rows(items), names, **kw)  # type: ignore[arg-type]
    return {name: x[:, j] for j, name in enumerate(names)}


def test_ranks_count_only_eligible_items_and_unknown_items_are_missing() -> None:
    m = matrix(["b", "d", "e", "z"])
    ranks, scores = m["collaborative_rank"][:3], m["collaborative_score"][:3]
    # u4 had a and c: b, d, e are the eligible known items; ties share the better rank
    for i in range(3):
        assert ranks[i] == 1 + sum(scores[j] > scores[i] for j in range(3))
    assert math.isnan(m["collaborative_score"][3]) and m["collaborative_missing"][3] == 1.0
    assert m["collaborative_missing"][:3].tolist() == [0.0, 0.0, 0.0]
    assert math.isnan(m["item_age_days"][3]) and math.isnan(m["sequential_score"][0])
    assert m["sequential_missing"].tolist() == [1.0] * 4  # fitted without a sequential model
    assert m["pop_alltime_log"][0] == np.float32(np.log1p(3))


def test_category_affinity_and_recent_distance() -> None:
    m = matrix(["b", "d", "e"])
    # u4 had a (Drama) and c (Comedy): shares 0.5 each
    assert m["category_affinity_mean"][0] == np.float32(0.25)  # (0.5 Drama + 0 War) / 2
    assert m["category_affinity_max"][0] == np.float32(0.5)
    assert math.isnan(m["category_affinity_mean"][2]) and m["category_count"][2] == 0
    assert m["knn_recent_max"][0] > 0 and m["user_history_len"][0] == 2


def test_llm_columns_are_nan_without_evidence_and_filled_with_it() -> None:
    without = matrix(["b", "d"], ALL_FEATURES)
    assert all(np.isnan(without[name]).all() for name in LLM_FEATURES)
    evidence = LlmEvidence(
        per_item={"llm_score": {"d": -0.5}}, per_user={"profile_confidence": 0.7}
    )
    filled = matrix(["b", "d"], ALL_FEATURES, evidence=evidence)
    assert math.isnan(filled["llm_score"][0]) and filled["llm_score"][1] == np.float32(-0.5)
    assert filled["profile_confidence"].tolist() == [np.float32(0.7)] * 2
    assert set(LLM_FEATURES).isdisjoint(NO_LLM_FEATURES)


def test_candidate_union_takes_every_retrievers_head_and_never_a_prior_item() -> None:
    sources = fit_sources(PREFIXES, CATALOG, SourceParams(ease_lambda=1.0))
    scored = user_scores(sources, sources.user("u4", PREFIXES["u4"]))
    rows = candidate_union(scored, 2)
    ids = [CATALOG.item_ids[r] for r in rows]
    assert "a" not in ids and "c" not in ids and len(ids) == len(set(ids))
    assert CATALOG.item_ids[int(scored.top("popularity", 1)[0])] in ids
