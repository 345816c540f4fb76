"""The sequence model's reasons: the recent liked items whose removal lowers the item's score
most, on a deterministic scorer (the leave-one-out plumbing) and on a real SASRec trained on
sequences whose next item is fixed by the last one (the driver must be that last item)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.reasons.sequence import followed_reason, sequence_drivers, sequence_reason
from agent.recommend.fusion import SourceHit
from agent.recommend.reasons import retrieval_reason
from agent.recommend.sequential import fit_sequential
from agent.schemas import Item
from tests.profile_data import event
from tests.test_sequential import SMALL, cycles

HIT = SourceHit(1, 0.0)


class WeightedScorer:
    """Each item's score is the sum of its history items' weights toward it."""

    item_ids = ["a", "b", "c", "x"]
    toward_x = {"a": 0.1, "b": 2.0, "c": -1.0}

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.item_ids

    def scores_many(self, histories: Sequence[Sequence[str]], batch: int = 256) -> np.ndarray:
        out = np.zeros((len(histories), len(self.item_ids)), dtype=np.float32)
        for row, history in enumerate(histories):
            out[row, 3] = sum(self.toward_x.get(i, 0.0) for i in history)
        return out


def test_drivers_are_the_recent_items_whose_removal_lowers_the_score_most() -> None:
    scorer = WeightedScorer()
    assert sequence_drivers(scorer, ["a", "b", "c"], "x") == ["b", "a"]  # c raises it: not one
    assert sequence_drivers(scorer, ["a", "b", "c"], "x", tried=1) == []  # only c tried
    assert sequence_drivers(scorer, ["a", "b"], "unknown") == []
    assert sequence_drivers(scorer, [], "x") == []


def test_the_reason_names_the_drivers_with_their_ratings_and_only_for_sequence_hits() -> None:
    made = sequence_reason(["b", "a"], {"a": "Alien", "b": "Fargo"}, {"b": 5.0})
    assert made == ("Follows on from what you rated lately: Fargo (5/5) and Alien.", ["b", "a"])
    assert sequence_reason(["z"], {"a": "Alien"}, {}) is None
    history = [event("u", i, 5, day) for day, i in enumerate(["a", "b", "c"])]
    titles = {"a": "Alien", "b": "Fargo", "c": "Heat"}
    scorer = WeightedScorer()
    calls: list[str] = []

    def followed() -> tuple[str, list[str]] | None:
        calls.append("x")
        return followed_reason(scorer, history, ["a", "b", "c"], "x", titles)

    item = Item(item_id="x", title="X", categories=[])
    other = retrieval_reason(item, {"collaborative": HIT}, None, None, titles, followed=followed)
    assert other.cited == [] and calls == []  # not a sequence hit: never computed
    found = retrieval_reason(item, {"sequential": HIT}, None, None, titles, followed=followed)
    assert found.cited == ["b", "a"] and calls == ["x"]
    assert followed_reason(None, history, ["a", "b", "c"], "x", titles) is None


def test_on_a_trained_sasrec_the_driver_is_the_item_that_fixes_the_next_one() -> None:
    model = fit_sequential(cycles(300, 0), SMALL)
    right = 0
    for seq in cycles(30, 7):
        history, expected = seq[:-1], seq[-1]
        drivers = sequence_drivers(model, history, expected, k=1)
        right += drivers == [history[-1]]
    assert right >= 27
