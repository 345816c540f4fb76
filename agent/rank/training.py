"""Held-out events into LambdaRank groups, so that nothing judged reaches what it is judged
with.

A ranker learns from each user's `held_out`-th last event (the target) with every source
fitted on `prefixes(histories, held_out)`: every user's events before their own target, and
nothing after. The eval trains at `held_out = 2` (the validation event) and judges at 1 (the
test event, sources refitted on the events before it); `personae rank fit` trains at 1 and
serves with the sources fitted on everything.

Candidates of a group are `sampled` (the target and random items the user has no event for
before the target, as the llmrank protocol draws them; the draw never looks at events after
the target), `sampled-any` (the target and random items from the whole catalog, the user's own
earlier items included, as LLMRank's own lists are drawn for llmrank-ref) or `retrieved` (the
union of the retrievers' top items; groups whose target was not retrieved carry no gradient
and are left out)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from agent.rank.features import (
    LlmEvidence,
    UserScores,
    candidate_union,
    feature_matrix,
    user_scores,
)
from agent.rank.model import Groups
from agent.rank.sources import Index, Sources
from agent.schemas import Interaction


class Candidates(StrEnum):
    SAMPLED = "sampled"
    SAMPLED_ANY = "sampled-any"
    RETRIEVED = "retrieved"

    @property
    def sampled(self) -> bool:
        """The target plus `size - 1` random items (not the retrievers' union)."""
        return self is not Candidates.RETRIEVED


@dataclass(frozen=True)
class Judged:
    """One user's target event and everything before it."""

    user_id: str
    before: tuple[Interaction, ...]
    target: str


def prefixes(
    histories: Mapping[str, Sequence[Interaction]], held_out: int
) -> dict[str, list[Interaction]]:
    """Every user's events except their last `held_out` (what sources may be fitted on)."""
    return {u: list(events[: max(len(events) - held_out, 0)]) for u, events in histories.items()}


def judged_events(
    histories: Mapping[str, Sequence[Interaction]], held_out: int, min_history: int
) -> dict[str, Judged]:
    """Each user's `held_out`-th last event as a target, when they have `min_history` events
    before it and the item is new to them (the eval's own rule for evaluable users)."""
    found = {}
    for user_id, events in histories.items():
        cut = len(events) - held_out
        if cut < min_history:
            continue
        target = events[cut].item_id
        before = tuple(events[:cut])
        if any(e.item_id == target for e in before):
            continue
        found[user_id] = Judged(user_id, before, target)
    return found


def sampled_rows(sources: Sources, prior: np.ndarray, target: int, size: int, seed: int,
                 user_id: str) -> Index:  # fmt: skip
    """The target and `size - 1` catalog rows the user has no event for, seeded per user."""
    pool = np.flatnonzero(~prior)
    pool = pool[pool != target]
    rng = random.Random(f"{seed}:rank-negatives:{user_id}")
    negatives = rng.sample(range(len(pool)), min(size - 1, len(pool)))
    return np.array([target, *pool[negatives]], dtype=np.int64)


def sampled_any_rows(catalog_size: int, target: int, size: int, seed: int, user_id: str) -> Index:
    """The target and `size - 1` distinct rows drawn uniformly from the whole catalog but the
    target, seeded per user: the user's own earlier items can be among them. LLMRank draws 100
    items from all items, drops the target and keeps the first 19, which is this distribution.
    Nothing about the user's events enters the draw, so no later event can change it."""
    pool = np.delete(np.arange(catalog_size, dtype=np.int64), target)
    rng = random.Random(f"{seed}:rank-negatives-any:{user_id}")
    negatives = rng.sample(range(len(pool)), min(size - 1, len(pool)))
    return np.array([target, *pool[negatives]], dtype=np.int64)


def shuffled(rows: Index, seed: int, user_id: str) -> Index:
    """`rows` in a seeded random order: the target's place in a group says nothing (tied
    scores keep the data order when LightGBM sorts a group for its metric)."""
    order = list(range(len(rows)))
    random.Random(f"{seed}:rank-order:{user_id}").shuffle(order)
    return rows[order]


def group_rows(
    sources: Sources, judged: Judged, mode: Candidates, size: int, seed: int
) -> tuple[UserScores, Index, int] | None:
    """A user's group as `build_groups` makes it: scores, candidate rows in the order shown
    to the ranker, and the target's row (None: target outside the catalog or not retrieved).
    The LLM stages score exactly these candidates for the ranker's LLM columns."""
    target = sources.catalog.index.get(judged.target)
    if target is None:
        return None
    state = sources.user(judged.user_id, judged.before)
    scored = user_scores(sources, state)
    if mode is Candidates.SAMPLED:
        rows = sampled_rows(sources, state.prior, target, size, seed, judged.user_id)
    elif mode is Candidates.SAMPLED_ANY:
        rows = sampled_any_rows(len(sources.catalog), target, size, seed, judged.user_id)
    else:
        rows = candidate_union(scored, size)
        if target not in set(rows.tolist()):
            return None
    return scored, shuffled(rows, seed, judged.user_id), target


def build_groups(
    sources: Sources,
    judged: Mapping[str, Judged],
    names: Sequence[str],
    mode: Candidates,
    size: int,
    seed: int,
    evidence: Mapping[str, LlmEvidence] | None = None,
) -> Groups:
    """One group per user whose target is in the catalog (and, `retrieved`, was retrieved).
    `size`: candidates per group (sampled modes) or depth per retriever (retrieved)."""
    xs, ys, sizes, users = [], [], [], []
    for user_id, j in judged.items():
        found = group_rows(sources, j, mode, size, seed)
        if found is None:
            continue
        scored, rows, target = found
        mine = evidence.get(user_id) if evidence is not None else None
        xs.append(feature_matrix(sources, scored, rows, names, mine))
        ys.append((rows == target).astype(np.float32))
        sizes.append(len(rows))
        users.append(user_id)
    width = len(names)
    x = np.concatenate(xs) if xs else np.zeros((0, width), dtype=np.float32)
    y = np.concatenate(ys) if ys else np.zeros(0, dtype=np.float32)
    return Groups(x, y, sizes, users)
