"""The stored profile as ranker columns, with no LLM call: what the profile says, matched to
each candidate's text vector.

- `profile_interest_max` / `profile_interest_wmean`: cosine of the candidate's vector with
  each interest's topic vector, the best one and the weight-weighted mean;
- `profile_dislike_max` / `profile_dislike_wmean`: the same for the dislikes;
- `profile_dense_cos` / `profile_dense_rank`: cosine with the profile's query vector (what
  `dense-profile` retrieves with) and its rank among the items the user could be shown.

The topic and query vectors come from the same embedder as the item vectors, embedded once
per profile (`profile_vectors`); the columns are computed per candidate row, so nothing is
stored per catalog item. Users without a profile, and items without a vector, get NaN."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agent.schemas.profile import Interest, UserProfile

Array = npt.NDArray[np.float32]
Embed = Callable[[list[str]], Array]
"""Texts -> (n, dim) vectors, the item index's embedder."""

PROFILE_FEATURES = (
    "profile_interest_max",
    "profile_interest_wmean",
    "profile_dislike_max",
    "profile_dislike_wmean",
    "profile_dense_cos",
    "profile_dense_rank",
)


@dataclass(frozen=True)
class TopicVectors:
    vectors: Array
    """(topics, dim) unit vectors."""
    weights: Array


@dataclass(frozen=True)
class ProfileVectors:
    """One profile's topics and query, embedded."""

    interests: TopicVectors
    dislikes: TopicVectors
    query: Array
    """(dim,) unit vector of `profile_query_text`."""


def topic_text(entry: Interest) -> str:
    return entry.topic


def profile_vectors(profiles: Mapping[str, UserProfile], embed: Embed) -> dict[str, ProfileVectors]:
    """Every profile's topics and query text, embedded in one batch."""
    from agent.recommend.dense import profile_query_text

    texts: list[str] = []
    spans: dict[str, tuple[int, int, int]] = {}
    for user_id, profile in profiles.items():
        start = len(texts)
        texts += [topic_text(i) for i in profile.interests]
        texts += [topic_text(d) for d in profile.dislikes]
        texts.append(profile_query_text(profile))
        spans[user_id] = (start, start + len(profile.interests), len(texts) - 1)
    if not texts:
        return {}
    vectors = _unit(np.asarray(embed(texts), dtype=np.float32))
    found = {}
    for user_id, (start, split, query) in spans.items():
        profile = profiles[user_id]
        found[user_id] = ProfileVectors(
            interests=_topics(vectors[start:split], profile.interests),
            dislikes=_topics(vectors[split:query], profile.dislikes),
            query=vectors[query],
        )
    return found


def profile_columns(
    profile: ProfileVectors,
    item_vectors: Array,
    has_vector: npt.NDArray[np.bool_],
    rows: npt.NDArray[np.int64],
    blocked: npt.NDArray[np.bool_],
) -> dict[str, Array]:
    """The columns for catalog `rows`. `item_vectors` are the catalog's unit vectors (zero
    rows where `has_vector` is False); `blocked` marks the items the user cannot be shown
    (their history), left out of the dense rank."""
    known = has_vector[rows]
    candidates = item_vectors[rows]
    out: dict[str, Array] = {}
    for side, topics in (("interest", profile.interests), ("dislike", profile.dislikes)):
        best, mean = _match(topics, candidates)
        out[f"profile_{side}_max"] = np.where(known, best, np.nan).astype(np.float32)
        out[f"profile_{side}_wmean"] = np.where(known, mean, np.nan).astype(np.float32)
    everything = item_vectors @ profile.query
    eligible = np.sort(everything[has_vector & ~blocked])
    mine = everything[rows]
    higher = len(eligible) - np.searchsorted(eligible, mine, side="right")
    out["profile_dense_cos"] = np.where(known, mine, np.nan).astype(np.float32)
    out["profile_dense_rank"] = np.where(known, higher + 1, np.nan).astype(np.float32)
    return out


def _match(topics: TopicVectors, candidates: Array) -> tuple[Array, Array]:
    n = len(candidates)
    if not len(topics.vectors):
        return np.full(n, np.nan, np.float32), np.full(n, np.nan, np.float32)
    sims = candidates @ topics.vectors.T
    total = float(topics.weights.sum())
    mean = sims @ topics.weights / total if total > 0 else sims.mean(axis=1)
    return sims.max(axis=1).astype(np.float32), np.asarray(mean, dtype=np.float32)


def _topics(vectors: Array, entries: Sequence[Interest]) -> TopicVectors:
    weights = np.array([e.weight for e in entries], dtype=np.float32)
    return TopicVectors(vectors=vectors, weights=weights)


def _unit(vectors: Array) -> Array:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 0, vectors / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)


CONFIDENCE = {"low": 0.0, "medium": 0.5, "high": 1.0}
SERVED_PROFILE_FEATURES = (*PROFILE_FEATURES, "profile_confidence")
"""The columns a stored profile fills with no LLM call (`llm_score` needs the re-rank)."""


def uses_profile(features: Sequence[str]) -> bool:
    return any(name in SERVED_PROFILE_FEATURES for name in features)
