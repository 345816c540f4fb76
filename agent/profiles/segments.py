"""Segments of users: k-means over profile vectors, each segment named by the LLM from its
members' top interests.

The vectors are the ones in the Chroma `profiles` collection (synced from the record first, so
a profile that never reached Chroma is embedded now). k-means is scipy's `kmeans2` with
k-means++ starts from a seeded generator, restarted a few times, keeping the lowest inertia:
the same profiles, k and seed give the same segments. Segments are numbered by size, largest
first. Naming sends one small structured request per segment; a segment the model cannot name
validly is named from its top interests instead, and says so (`named_by`)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import BaseModel, Field
from scipy.cluster.vq import ClusterError, kmeans2

from agent.embeddings import Vectors
from agent.prompts import RenderedPrompt, load_prompt
from agent.runtime.structured import Generated, StructuredGenerator, StructuredOutputError
from agent.schemas.profile import UserProfile
from agent.schemas.text import NonEmpty, clip, topic_key
from agent.store.profile_index import ProfileIndex
from agent.store.profiles import ProfileStore
from agent.store.segments import Member, Segment, SegmentRun, TopicScore

ALGORITHM = "kmeans2++/cosine"
RESTARTS = 8
ITERATIONS = 50
TOP_INTERESTS = 6
TOP_CATEGORIES = 4
NAME_PROMPT = ("segment_name", 1)
NAME_MAX_TOKENS = 96


class SegmentName(BaseModel):
    """What the LLM writes for one segment."""

    name: Annotated[str, NonEmpty, clip(40)] = Field(description="Two to four words")
    description: Annotated[str, NonEmpty, clip(160)] = Field(description="One sentence")


class SegmentationError(ValueError):
    """k does not fit the profiles (too few, or too few distinct vectors)."""


@dataclass(frozen=True)
class ProfilePoints:
    """Latest profiles and their vectors, row i of `vectors` belonging to `profiles[i]`."""

    profiles: list[UserProfile]
    vectors: Vectors
    embedding_model: str


def load_points(store: ProfileStore, index: ProfileIndex) -> ProfilePoints:
    """Every user's latest profile with its vector. Profiles missing from Chroma (or held
    there at an older version) are embedded first; vectors with no profile in the record
    (orphans, e.g. after an interrupted `forget`) are ignored."""
    profiles = list(store.iter_latest())
    if not profiles:
        raise SegmentationError("no profiles yet: run `personae profile --all` first")
    index.sync(profiles)
    collection = index.collection()
    model = str((collection.metadata or {}).get("embedding_model", index.embedder.model_id))
    found: dict[str, list[float]] = {}
    step = index.client.get_max_batch_size()
    for start in range(0, len(profiles), step):
        ids = [p.user_id for p in profiles[start : start + step]]
        got = collection.get(ids=ids, include=["embeddings"])
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        for user_id, vector in zip(got["ids"], embeddings, strict=True):
            found[user_id] = [float(x) for x in vector]
    vectors = np.asarray([found[p.user_id] for p in profiles], dtype=np.float32)
    return ProfilePoints(profiles, vectors, model)


def kmeans(vectors: Vectors, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Labels, centroids and inertia of the best of `RESTARTS` seeded k-means++ runs on the
    L2-normalized vectors (so Euclidean k-means follows cosine similarity)."""
    data = _normalized(vectors.astype(np.float64))
    distinct = len(np.unique(data.round(6), axis=0))
    if k < 1 or k > distinct:
        raise SegmentationError(
            f"--k {k} does not fit {len(data)} profiles with {distinct} distinct vectors: "
            f"use 1 <= k <= {distinct}"
        )
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    for restart in range(RESTARTS):
        rng = np.random.default_rng([seed, restart])
        try:
            centroids, labels = kmeans2(data, k, iter=ITERATIONS, minit="++", missing="raise",
                                        rng=rng)  # fmt: skip
        except ClusterError:  # an empty cluster: this start was bad, the next one differs
            continue
        inertia = float(((data - centroids[labels]) ** 2).sum())
        if best is None or inertia < best[2] - 1e-9:
            best = (labels, centroids, inertia)
    if best is None:
        raise SegmentationError(f"k-means left a segment empty in every start: try --k < {k}")
    return best


def _normalized(data: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(data, axis=1, keepdims=True)
    return data / np.where(norms == 0, 1.0, norms)


def segment(points: ProfilePoints, k: int, seed: int) -> SegmentRun:
    """Cluster the profiles into k unnamed segments (numbered by size, largest first)."""
    labels, centroids, inertia = kmeans(points.vectors, k, seed)
    unit = _normalized(points.vectors.astype(np.float64))
    distances = 1.0 - (unit * _normalized(centroids)[labels]).sum(axis=1)
    groups: dict[int, list[int]] = defaultdict(list)
    for row, label in enumerate(labels):
        groups[int(label)].append(row)
    ordered = sorted(groups.values(), key=lambda rows: (-len(rows), min(rows)))
    segments = []
    for number, rows in enumerate(ordered):
        members = [points.profiles[r] for r in rows]
        segment = Segment(number, "", "", "interests", top_interests(members))
        segment.members = sorted(
            (Member(p.user_id, p.provenance.version, round(float(distances[r]), 6))
             for r, p in zip(rows, members, strict=True)),
            key=lambda m: (m.distance, m.user_id),
        )  # fmt: skip
        segments.append(segment)
    return SegmentRun(k, seed, ALGORITHM, points.embedding_model, inertia, segments)


def top_interests(profiles: Sequence[UserProfile], n: int = TOP_INTERESTS) -> list[TopicScore]:
    """The interests most members share, by member count then summed weight."""
    members: dict[str, set[str]] = defaultdict(set)
    weight: dict[str, float] = defaultdict(float)
    shown: dict[str, str] = {}
    for profile in profiles:
        for interest in profile.interests:
            key = topic_key(interest.topic)
            if not key:
                continue
            shown.setdefault(key, interest.topic.strip())
            if profile.user_id not in members[key]:
                members[key].add(profile.user_id)
                weight[key] += interest.weight
    ranked = sorted(members, key=lambda key: (-len(members[key]), -weight[key], key))
    return [TopicScore(shown[key], len(members[key]), weight[key]) for key in ranked[:n]]


def top_categories(profiles: Sequence[UserProfile], n: int = TOP_CATEGORIES) -> list[str]:
    """Categories with the largest mean share across the members' histories (computed facts,
    no LLM)."""
    share: dict[str, float] = defaultdict(float)
    for profile in profiles:
        for category in profile.facts.top_categories:
            share[category.category] += category.share / len(profiles)
    ranked = sorted(share.items(), key=lambda kv: (-kv[1], kv[0]))
    return [f"{name} {value:.0%}" for name, value in ranked[:n]]


def plain_name(segment: Segment, categories: list[str]) -> str:
    """The two most shared interests (or categories): a name that needs no LLM."""
    topics = [t.topic for t in segment.top_interests[:2]]
    words = topics or [c.rsplit(" ", 1)[0] for c in categories[:2]] or [f"segment {segment.number}"]
    return " and ".join(words)[:40]


def name_from_interests(segment: Segment, categories: list[str]) -> None:
    segment.name = plain_name(segment, categories)
    listed = ", ".join(t.topic for t in segment.top_interests[:4]) or "no shared interests"
    segment.description = f"{segment.size} users; top interests: {listed}."
    segment.named_by = "interests"


def naming_prompt(segment: Segment, categories: list[str]) -> RenderedPrompt:
    """The segment's top interests and categories. The prompt offers the plain name from
    interests as an example: a small model that copies from its prompt then copies a right
    name instead of the instructions (seen with SmolLM2-135M); a big one writes its own."""
    interests = [f"{t.topic} ({t.members} of {segment.size})" for t in segment.top_interests]
    return load_prompt(*NAME_PROMPT).render(
        size=segment.size,
        interests=interests,
        categories=", ".join(categories) or "unknown",
        example=plain_name(segment, categories) + " fans",
    )


@dataclass
class NamingReport:
    named: int = 0
    fallback: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    reasks: int = 0


def name_segments(
    generator: StructuredGenerator, run: SegmentRun, profiles: dict[str, UserProfile]
) -> NamingReport:
    """Name every segment with the LLM, concurrently; fall back to interests per segment."""
    categories = [top_categories([profiles[m.user_id] for m in s.members]) for s in run.segments]
    jobs = [
        (naming_prompt(s, c), SegmentName) for s, c in zip(run.segments, categories, strict=True)
    ]
    results = asyncio.run(generator.abatch(jobs, max_tokens=NAME_MAX_TOKENS))
    report = NamingReport()
    for segment, cats, result in zip(run.segments, categories, results, strict=True):
        _apply_name(segment, cats, result, report)
    run.model = generator.model_name
    run.prompt = jobs[0][0].ref if jobs else None
    return report


def _apply_name(
    segment: Segment,
    categories: list[str],
    result: Generated[SegmentName] | StructuredOutputError,
    report: NamingReport,
) -> None:
    meta = result.meta
    report.tokens_in += meta.tokens_in
    report.tokens_out += meta.tokens_out
    report.reasks += meta.reasks
    if isinstance(result, StructuredOutputError):
        name_from_interests(segment, categories)
        report.fallback += 1
        return
    segment.name = result.value.name
    segment.description = result.value.description
    segment.named_by = "llm"
    report.named += 1


def name_all_from_interests(run: SegmentRun, profiles: dict[str, UserProfile]) -> None:
    for s in run.segments:
        name_from_interests(s, top_categories([profiles[m.user_id] for m in s.members]))
