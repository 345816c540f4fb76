"""Which users are evaluated and which candidates they get, from the seed alone.

Every random choice is drawn from `random.Random` seeded with a string that names the seed, the
purpose and the user, so a user's candidates do not depend on which other users are in the run
or in what order they are processed."""

from __future__ import annotations

import random
from collections.abc import Sequence

from evals.splits import UserSplit, natural


def rng_for(seed: int, purpose: str, user_id: str = "") -> random.Random:
    return random.Random(f"{seed}:{purpose}:{user_id}")


def choose_users(eligible: Sequence[str], count: int | None, seed: int) -> list[str]:
    """`count` users sampled with the seed (all of them when count is None or larger). The
    users of a smaller run are among those of a larger one with the same seed (one seeded
    shuffle, then the first `count`), so a pilot run's cached LLM results serve the full run."""
    users = sorted(eligible, key=natural)
    if count is None or count >= len(users):
        return users
    rng_for(seed, "users").shuffle(users)
    return sorted(users[:count], key=natural)


def llmrank_candidates(split: UserSplit, catalog: Sequence[str], size: int, seed: int) -> list[str]:
    """The held-out item plus `size - 1` items the user never interacted with, shuffled.
    `catalog` must be in a fixed order (sorted ids) for the draw to be reproducible."""
    pool = [item for item in catalog if item not in split.seen]
    rng = rng_for(seed, "candidates", split.user_id)
    negatives = rng.sample(pool, min(size - 1, len(pool)))
    candidates = [split.target, *negatives]
    rng.shuffle(candidates)
    return candidates
