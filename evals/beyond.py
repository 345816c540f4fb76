"""Beyond-accuracy columns of the `full` protocol, from each system's top 10 per user:

- coverage@10: distinct items recommended to anyone / catalog size;
- diversity: intra-list diversity by category, the mean over pairs of the top 10 of
  1 - Jaccard(categories) (items without categories left out of the pairs);
- novelty: mean self-information -log2(p) of the recommended items, p = the share of training
  users with a positive event for the item (items nobody had: 1 / users);
- head share: share of the top-10 slots taken by the head, the 10% most popular items of the
  training events.

Popularity is read from the stage's training events (what the systems were fitted on)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations

from evals.protocols import UserRecord

K = 10
HEAD_SHARE = 0.1
COLUMNS = ("coverage@10", "diversity@10", "novelty@10", "head_share@10")


def jaccard_distance(a: frozenset[str], b: frozenset[str]) -> float:
    union = a | b
    return 1.0 - len(a & b) / len(union) if union else 0.0


def beyond_accuracy(
    records: Sequence[UserRecord],
    protocol: str,
    categories: Mapping[str, frozenset[str]],
    train_pairs: Sequence[tuple[str, str]],
    catalog_size: int,
) -> dict[str, dict[str, float]]:
    """System -> the four columns (x100 for coverage, diversity and head share; bits for
    novelty)."""
    users = {u for u, _ in train_pairs} or {""}
    holders = Counter(i for _, i in set(train_pairs))
    head_n = max(1, int(round(HEAD_SHARE * catalog_size)))
    head = {i for i, _ in holders.most_common(head_n)}
    lists: dict[str, list[list[str]]] = {}
    for record in records:
        entry = record.protocols.get(protocol)
        if entry is None:
            continue
        for name, outcome in entry.systems.items():
            lists.setdefault(name, []).append(outcome.top[:K])
    found = {}
    for name, tops in lists.items():
        slots = [i for top in tops for i in top]
        distances = [
            jaccard_distance(categories[a], categories[b])
            for top in tops
            for a, b in combinations([i for i in top if categories.get(i)], 2)
        ]
        info = [-math.log2(max(holders.get(i, 0), 1) / len(users)) for i in slots]
        found[name] = {
            "coverage@10": round(100 * len(set(slots)) / max(catalog_size, 1), 2),
            "diversity@10": round(100 * sum(distances) / len(distances), 2) if distances else 0.0,
            "novelty@10": round(sum(info) / len(info), 3) if info else 0.0,
            "head_share@10": round(100 * sum(i in head for i in slots) / len(slots), 2)
            if slots
            else 0.0,
        }
    return found
