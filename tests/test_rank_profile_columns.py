"""The profile columns of the ranker on hand-made vectors: interests and dislikes matched to
the candidates' text vectors, the profile query's cosine and rank among the items the user
may be shown, NaN without a vector or without a profile."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

from agent.prompts import load_prompt
from agent.rank.features import ALL_FEATURES, LlmEvidence, feature_matrix, user_scores
from agent.rank.profile_match import PROFILE_FEATURES, profile_vectors
from agent.rank.sources import Catalog, SourceParams, attach_vectors, fit_sources
from agent.recommend.filters import ItemMeta
from agent.schemas.profile import (
    ComputedFacts,
    Grounding,
    Interest,
    ProfileKind,
    Provenance,
    Sentiment,
    UserProfile,
)
from tests.test_rank_features import PREFIXES

AXES = {"drama": [1.0, 0.0, 0.0], "comedy": [0.0, 1.0, 0.0], "war": [0.0, 0.0, 1.0]}
CATALOG = Catalog.from_meta(
    {i: ItemMeta(frozenset(), 1990) for i in ("a", "b", "c", "d", "e", "z")}
)
ITEM_VECTORS = {
    "a": [1.0, 0.0, 0.0],
    "b": [0.8, 0.0, 0.6],
    "c": [0.0, 1.0, 0.0],
    "d": [0.0, 0.6, 0.8],
    "z": [1.0, 0.0, 0.0],
}  # fmt: skip  ("e" has no vector)


def embed(texts: list[str]) -> np.ndarray:
    """A topic is the sum of the axes its words name (the query text names the interests)."""
    rows = []
    for text in texts:
        words = text.lower().replace(",", " ").replace(".", " ").split()
        rows.append(np.sum([AXES[w] for w in words if w in AXES] or [[0.0, 0.0, 0.0]], axis=0))
    return np.array(rows, dtype=np.float32)


def make_profile(
    interests: list[Interest], dislikes: list[Interest], intent: str = "more", summary: str = "s."
) -> UserProfile:
    return UserProfile(
        user_id="u4", interests=interests, dislikes=dislikes,
        sentiment=Sentiment(label="positive", score=0.5), intent=intent, summary=summary,
        confidence="medium",
        facts=ComputedFacts(event_count=2, rated_count=2, rating_mean=4.0, review_count=0,
                            top_categories=[], first_event=None, last_event=None,
                            days_since_last=None),
        grounding=Grounding(score=1.0),
        provenance=Provenance(model="hand-written", prompt=load_prompt("profile", 5).ref,
                              history_hash="h", history_events=2,
                              created_at=datetime(2024, 1, 1, tzinfo=UTC), version=1,
                              kind=ProfileKind.FULL),
    )  # fmt: skip


def entry(topic: str, weight: float, sentiment: str = "positive") -> Interest:
    return Interest(topic=topic, weight=weight, sentiment=sentiment, evidence=["a"])


def columns(items: list[str], evidence: LlmEvidence | None) -> dict[str, np.ndarray]:
    sources = fit_sources(PREFIXES, CATALOG, SourceParams(ease_lambda=1.0))
    ids = list(ITEM_VECTORS)
    attach_vectors(sources, ids, np.array([ITEM_VECTORS[i] for i in ids], dtype=np.float32))
    scored = user_scores(sources, sources.user("u4", PREFIXES["u4"]))  # u4 had a and c
    x = feature_matrix(sources, scored, CATALOG.rows(items), ALL_FEATURES, evidence)
    return {name: x[:, ALL_FEATURES.index(name)] for name in PROFILE_FEATURES}


def test_interests_and_dislikes_match_the_candidates_text_and_the_query_ranks_them() -> None:
    profile = make_profile(
        interests=[entry("drama", 1.0), entry("war", 0.5)],
        dislikes=[entry("comedy", 1.0, "negative")],
    )
    vectors = profile_vectors({"u4": profile}, embed)["u4"]
    got = columns(["b", "d", "e", "z"], LlmEvidence(profile=vectors))
    # b = 0.8 drama + 0.6 war: best interest 0.8 (drama), weighted mean (0.8 + 0.5 * 0.6) / 1.5
    assert math.isclose(got["profile_interest_max"][0], 0.8, rel_tol=1e-5)
    assert math.isclose(got["profile_interest_wmean"][0], (0.8 + 0.3) / 1.5, rel_tol=1e-5)
    assert math.isclose(got["profile_dislike_max"][1], 0.6, rel_tol=1e-5)  # d is 0.6 comedy
    assert got["profile_dislike_max"][0] == 0.0
    # the query ("Likes: drama, war.") is drama + war: b ranks first among what u4 may be
    # shown (a and c are its history, not counted), z (drama only) second, d third
    assert got["profile_dense_rank"].tolist()[:2] == [1, 3] and got["profile_dense_rank"][3] == 2
    assert got["profile_dense_cos"][0] > got["profile_dense_cos"][3] > got["profile_dense_cos"][1]
    assert all(math.isnan(got[name][2]) for name in PROFILE_FEATURES)  # e has no vector


def test_without_a_profile_the_columns_are_nan() -> None:
    got = columns(["b", "d"], None)
    assert all(np.isnan(values).all() for values in got.values())


def test_a_profile_without_dislikes_leaves_only_the_dislike_columns_empty() -> None:
    profile = make_profile(interests=[entry("drama", 1.0)], dislikes=[])
    got = columns(["b"], LlmEvidence(profile=profile_vectors({"u": profile}, embed)["u"]))
    assert math.isnan(got["profile_dislike_max"][0]) and math.isnan(got["profile_dislike_wmean"][0])
    assert math.isclose(got["profile_interest_max"][0], 0.8, rel_tol=1e-5)


def test_profile_vectors_embed_every_profile_in_one_batch() -> None:
    calls: list[int] = []

    def counting(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return embed(texts)

    profiles = {u: make_profile(interests=[entry("drama", 1.0)], dislikes=[]) for u in "xyz"}
    assert set(profile_vectors(profiles, counting)) == set("xyz") and calls == [6]
