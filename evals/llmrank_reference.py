"""LLMRank's own candidate lists, reproduced, so a number here can sit next to the paper's and
RecBole's on the same lists (`--protocol llmrank-ref`).

What RUCAIBox/LLMRank does (`llmrank/sample_candidates.py -s random` writes `<dataset>.random`,
`llmrank/trainer.py` reads it, props `overall.yaml`: recall_budget 20, has_gt True, fix_pos -1):

1. RecBole's `init_seed(2020)` seeds Python's `random` (nothing between it and the draws below
   uses Python's `random`: RecBole's dataset, loaders and model draw from numpy and torch);
2. `random.sample(user_tokens, n_users)`: the users, from RecBole's user tokens in its
   remapped-id order (`field2id_token['user_id'][1:]`);
3. for each selected user in that order, `random.sample(item_tokens, k)` (k = 100 by default)
   from every item token: a user's own items can be among them;
4. the trainer drops the user's test item from that list if it is there, keeps the first
   `recall_budget - 1` = 19 and appends the test item, then shuffles each row with numpy.

RecBole's remapped ids follow first appearance in the atomic `.inter` file (`pd.factorize` on
the loaded column, after filtering, before sorting by time), and RecBole's `ml-100k.inter`
lists u.data's rows in u.data's order. The record store keeps rows in ingestion order (its
`id`), so `recbole_tokens` rebuilds that order from an ML-100K ingested from u.data with
nothing filtered. Not reproduced: step 4's numpy shuffle (its state depends on RecBole's
training run); the candidates are shuffled here with a seeded `random.Random` per user, which
changes nothing for a system without ties."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from evals.sampling import rng_for
from evals.splits import UserSplit

SEED = 2020
"""RecBole's default `seed`, which LLMRank's props do not override."""
DRAWN = 100
"""`sample_candidates.py -k` default: items written per user."""
BUDGET = 20
"""`recall_budget` in LLMRank's overall.yaml: candidates per user, the test item included."""


@dataclass(frozen=True)
class ReferenceLists:
    """What `sample_candidates.py -s random` writes: user -> drawn items, in file order."""

    drawn: dict[str, list[str]]

    def candidates(self, split: UserSplit, budget: int = BUDGET) -> list[str]:
        """The trainer's candidate set for `split`: the drawn items without the target, the
        first `budget - 1` of them, and the target last (unshuffled)."""
        drawn = self.drawn.get(split.user_id)
        if drawn is None:
            raise KeyError(f"user {split.user_id} is not among LLMRank's sampled users")
        kept = [item for item in drawn if item != split.target][: budget - 1]
        return [*kept, split.target]


def recbole_tokens(rows: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """User and item tokens in RecBole's remapped-id order (id 1, 2, ...): first appearance
    in the interaction rows, in file order."""
    users: dict[str, None] = {}
    items: dict[str, None] = {}
    for user, item in rows:
        users.setdefault(user)
        items.setdefault(item)
    return list(users), list(items)


def sample_lists(
    users: Sequence[str],
    items: Sequence[str],
    n_users: int | None = None,
    drawn: int = DRAWN,
    seed: int = SEED,
) -> ReferenceLists:
    """`sample_candidates.py -s random -u n_users -k drawn` after `init_seed(seed)`. LLMRank's
    default is 200 users; on ML-100K all 943 are taken (None: every user)."""
    rng = random.Random(seed)
    selected = rng.sample(list(users), len(users) if n_users is None else n_users)
    pool = list(items)
    k = min(drawn, len(pool))  # LLMRank's script fails on a catalog under `drawn` items
    return ReferenceLists({user: rng.sample(pool, k) for user in selected})


def reference_candidates(
    rows: Iterable[tuple[str, str]],
    splits: Mapping[str, UserSplit],
    seed: int,
    budget: int = BUDGET,
) -> dict[str, list[str]]:
    """Every split's LLMRank candidates (all users sampled, as on ML-100K with `-u 943`),
    shuffled with `seed` (LLMRank shuffles with numpy: see the module's note)."""
    users, items = recbole_tokens(rows)
    lists = sample_lists(users, items)
    found = {}
    for user_id, split in splits.items():
        candidates = lists.candidates(split, budget)
        rng_for(seed, "llmrank-ref", user_id).shuffle(candidates)
        found[user_id] = candidates
    return found


INTERACTION_ROWS = "SELECT user_id, item_id FROM interactions ORDER BY id"
"""The record's interactions in ingestion order (u.data's order for ML-100K)."""
