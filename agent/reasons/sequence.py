"""What drove an item's score in the sequential model: the user's recent liked items whose
removal lowers it most (leave-one-out over the last few), so a reason for an item the
sequence model put forward cites the items it followed on from, not its popularity.

Why leave-one-out and not attention weights: the drop in the item's own score when an item
is taken out of the sequence is what that item contributed, and it is checkable the way the
collaborative drivers are (take them out, the score falls); attention weights of a two-block
network are not. The cost is one numpy forward pass per recent item tried."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from agent.reasons.phrasing import both, display
from agent.schemas import Interaction

SEQUENTIAL = "sequential"
"""The learned ranker's sequence retriever, as it names itself in an item's hits."""
RECENT_TRIED = 5
"""Recent liked items tried: the sequence model weighs the latest ones most."""
MAX_DRIVERS = 2


class SequenceScorer(Protocol):
    """What this needs of `agent.recommend.sequential.SequentialModel`."""

    item_ids: list[str]

    def __contains__(self, item_id: str) -> bool: ...

    def scores_many(self, histories: Sequence[Sequence[str]], batch: int = 256) -> np.ndarray: ...


def sequence_drivers(
    model: SequenceScorer,
    positives: Sequence[str],
    item_id: str,
    tried: int = RECENT_TRIED,
    k: int = MAX_DRIVERS,
) -> list[str]:
    """Up to `k` of the user's last `tried` liked items (`positives`, oldest first, as the
    model reads them) whose removal lowers `item_id`'s score, largest drop first; [] when the
    model does not know the item or no removal lowers it."""
    if item_id not in model or not positives:
        return []
    column = model.item_ids.index(item_id)
    recent = [i for i in dict.fromkeys(reversed(positives)) if i in model][:tried]
    if not recent:
        return []
    histories = [list(positives), *([p for p in positives if p != r] for r in recent)]
    scores = model.scores_many(histories)[:, column]
    drops = scores[0] - scores[1:]
    order = np.argsort(-drops, kind="stable")
    return [recent[i] for i in order[:k] if drops[i] > 0]


def sequence_reason(
    drivers: Sequence[str], titles: Mapping[str, str], ratings: Mapping[str, float]
) -> tuple[str, list[str]] | None:
    """ "Follows on from what you rated lately: Fargo (5/5) and Swingers (5/5)." citing the
    drivers; None without any."""
    named = [d for d in drivers if d in titles]
    if not named:
        return None
    said = [display(titles[d]) + (f" ({ratings[d]:g}/5)" if d in ratings else "") for d in named]
    return f"Follows on from what you rated lately: {both(said)}.", named


def followed_reason(
    model: SequenceScorer | None,
    history: Sequence[Interaction],
    positives: Sequence[str],
    item_id: str,
    titles: Mapping[str, str],
) -> tuple[str, list[str]] | None:
    """The sequence model's reason for `item_id`; None: no model, or nothing drove it."""
    if model is None:
        return None
    ratings = {e.item_id: e.rating for e in history if e.rating is not None}
    return sequence_reason(sequence_drivers(model, positives, item_id), titles, ratings)
