"""The ranker's feature columns and the matrix for one user's candidates.

Columns are named, and a fitted ranker stores the names it was trained with, so features can
be added without breaking stored models (a name the model does not know is not computed).
Missing values are NaN, which LightGBM routes down its learned missing-value branch; each
retriever also gets an explicit missing flag (the item is outside its model, or the user has
nothing it can use).

The LLM columns (`LLM_FEATURES`) are optional evidence filled in by the LLM stages when they
ran for a user: the profile's interests, dislikes and query vector matched to the item
(`profile_match`, no LLM call), the profile's confidence, and the scored re-rank's label
log-probability. Absent evidence is NaN, so a ranker
trained with them still scores users without a profile; `NO_LLM_FEATURES` leaves them out
entirely (the `ranker-no-llm` system)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.rank.profile_match import PROFILE_FEATURES, ProfileVectors, profile_columns
from agent.rank.sources import RETRIEVERS, Array, Index, Sources, UserState

YEAR_MS = 365.25 * 86_400_000

LLM_FEATURES = (*PROFILE_FEATURES, "profile_confidence", "llm_score")
"""Per (user, item): the profile matched to the item text (`PROFILE_FEATURES`); per user:
the profile's confidence; per (user, item): the scored re-rank's LLM score."""

SOURCE_FEATURES = tuple(
    f"{source}_{what}" for source in RETRIEVERS for what in ("score", "rank", "missing")
)
ITEM_FEATURES = (
    "pop_alltime_log",
    "pop_recent",
    "item_age_days",
    "release_age_years",
    "item_mean_rating",
    "category_affinity_mean",
    "category_affinity_max",
    "category_count",
    "knn_recent_mean",
    "knn_recent_max",
    "dense_recent_mean",
    "dense_recent_max",
)
USER_FEATURES = (
    "user_history_len",
    "user_mean_rating",
    "user_mainstream",
    "user_days_inactive",
)
NO_LLM_FEATURES = SOURCE_FEATURES + ITEM_FEATURES + USER_FEATURES
ALL_FEATURES = NO_LLM_FEATURES + LLM_FEATURES


@dataclass(frozen=True)
class LlmEvidence:
    """What the LLM stages computed for one user; any part may be absent."""

    per_item: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Feature name -> item id -> value (llm_score)."""
    per_user: Mapping[str, float] = field(default_factory=dict)
    """Feature name -> value (profile_confidence)."""
    profile: ProfileVectors | None = None
    """The profile's embedded topics and query (`PROFILE_FEATURES`)."""


@dataclass
class UserScores:
    """One user's catalog-wide retriever scores with their ranks among eligible items."""

    user: UserState
    scores: dict[str, Array]
    eligible_sorted: dict[str, Array]
    """Ascending scores of the items the user could be recommended (no prior, no NaN)."""

    def rank(self, source: str, rows: Index) -> Array:
        """1-based rank of each row among the eligible items (ties share the best rank)."""
        values = self.scores[source][rows]
        ordered = self.eligible_sorted[source]
        higher = len(ordered) - np.searchsorted(ordered, values, side="right")
        return np.where(np.isnan(values), np.nan, higher + 1).astype(np.float32)

    def top(self, source: str, n: int, blocked: npt.NDArray[np.bool_] | None = None) -> Index:
        """Catalog rows of the source's `n` best eligible items, best first (ties by row).
        `blocked` (default: the user's prior items) says which rows may not be returned."""
        mask = self.user.prior if blocked is None else blocked
        s = np.where(mask, np.nan, self.scores[source])
        valid = np.flatnonzero(~np.isnan(s))
        if not len(valid):
            return valid.astype(np.int64)
        n = min(n, len(valid))
        part = valid[np.argpartition(-s[valid], n - 1)[:n]]
        return part[np.lexsort((part, -s[part]))].astype(np.int64)


def user_scores(sources: Sources, user: UserState) -> UserScores:
    scores = sources.scores(user)
    eligible = {}
    for name, values in scores.items():
        keep = values[~user.prior]
        eligible[name] = np.sort(keep[~np.isnan(keep)])
    return UserScores(user, scores, eligible)


def candidate_union(scored: UserScores, depth: int, sources: Sequence[str] = RETRIEVERS) -> Index:
    """Union of each retriever's top `depth` eligible items, in order of first appearance
    when the lists are read round-robin (so the head of every list comes first)."""
    tops = [scored.top(s, depth) for s in sources]
    seen: dict[int, None] = {}
    for position in range(depth):
        for top in tops:
            if position < len(top):
                seen.setdefault(int(top[position]), None)
    return np.fromiter(seen, dtype=np.int64, count=len(seen))


def feature_matrix(
    sources: Sources,
    scored: UserScores,
    rows: Index,
    names: Sequence[str],
    evidence: LlmEvidence | None = None,
) -> npt.NDArray[np.float32]:
    """(len(rows), len(names)) features of the candidates at catalog `rows`."""
    columns = _columns(sources, scored, rows, set(names))
    if evidence is not None and evidence.profile is not None and sources.vectors is not None:
        assert sources.has_vector is not None
        columns |= profile_columns(evidence.profile, sources.vectors, sources.has_vector, rows,
                                   scored.user.prior)  # fmt: skip
    if evidence is not None:
        ids = [sources.catalog.item_ids[r] for r in rows]
        for name, values in evidence.per_item.items():
            columns[name] = np.array([values.get(i, math.nan) for i in ids], dtype=np.float32)
        for name, value in evidence.per_user.items():
            columns[name] = np.full(len(rows), value, dtype=np.float32)
    nan = np.full(len(rows), np.nan, dtype=np.float32)
    return np.stack([columns.get(name, nan) for name in names], axis=1).astype(np.float32)


def _columns(
    sources: Sources, scored: UserScores, rows: Index, wanted: set[str]
) -> dict[str, Array]:
    user, c, n = scored.user, sources.catalog, len(rows)
    out: dict[str, npt.NDArray[Any]] = {}
    for source in RETRIEVERS:
        values = scored.scores[source][rows]
        out[f"{source}_score"] = values
        out[f"{source}_rank"] = scored.rank(source, rows)
        out[f"{source}_missing"] = np.isnan(values).astype(np.float32)
    out["pop_alltime_log"] = sources.log_pop[rows]
    out["pop_recent"] = sources.pop_recent[rows]
    out["item_age_days"] = (user.ref_ms - sources.first_seen_ms[rows]) / 86_400_000
    ref_year = 1970 + user.ref_ms / YEAR_MS
    out["release_age_years"] = ref_year - c.years[rows]
    out["item_mean_rating"] = sources.mean_rating[rows]
    cats = c.categories[rows]
    count = cats.sum(axis=1)
    affinity = cats * user.category_share[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["category_affinity_mean"] = np.where(count > 0, affinity.sum(axis=1) / count, np.nan)
    out["category_affinity_max"] = np.where(count > 0, affinity.max(axis=1, initial=0.0), np.nan)
    out["category_count"] = count
    if "knn_recent_mean" in wanted or "knn_recent_max" in wanted:
        out |= _recent_knn(sources, user, rows)
    if "dense_recent_mean" in wanted or "dense_recent_max" in wanted:
        out |= _recent_dense(sources, user, rows)
    hist_rows = c.rows(user.positives)
    mainstream = float(sources.log_pop[hist_rows].mean()) if len(hist_rows) else math.nan
    days_inactive = (sources.newest_ms - user.ref_ms) / 86_400_000
    user_values = {
        "user_history_len": float(len(user.positives)),
        "user_mean_rating": user.mean_rating,
        "user_mainstream": mainstream,
        "user_days_inactive": days_inactive,
    }
    for name, value in user_values.items():
        out[name] = np.full(n, value, dtype=np.float32)
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def _recent_knn(sources: Sources, user: UserState, rows: Index) -> dict[str, Array]:
    n = len(rows)
    ease_col = sources.ease_col
    recent = ease_col[user.recent]
    recent = recent[recent >= 0]
    cand = ease_col[rows]
    known = cand >= 0
    mean = np.full(n, np.nan, dtype=np.float32)
    top = np.full(n, np.nan, dtype=np.float32)
    if len(recent) and known.any():
        sims = sources.knn[np.ix_(recent, cand[known])]
        mean[known], top[known] = sims.mean(axis=0), sims.max(axis=0)
    return {"knn_recent_mean": mean, "knn_recent_max": top}


def _recent_dense(sources: Sources, user: UserState, rows: Index) -> dict[str, Array]:
    n = len(rows)
    mean = np.full(n, np.nan, dtype=np.float32)
    top = np.full(n, np.nan, dtype=np.float32)
    if sources.vectors is None or sources.has_vector is None:
        return {"dense_recent_mean": mean, "dense_recent_max": top}
    recent = user.recent[sources.has_vector[user.recent]]
    known = sources.has_vector[rows]
    if len(recent) and known.any():
        sims = np.einsum("ij,kj->ik", sources.vectors[recent], sources.vectors[rows[known]])
        mean[known], top[known] = sims.mean(axis=0), sims.max(axis=0)
    return {"dense_recent_mean": mean, "dense_recent_max": top}
