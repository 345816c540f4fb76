"""The SASRec-family retriever: it learns an order that only a sequence model can see, it is
deterministic for a seed, and a saved model scores exactly as the fitted one."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from agent.recommend.sequential import SasRecParams, SequentialModel, fit_sequential

SMALL = SasRecParams(epochs=30, max_len=12, dim=32, batch_size=32, dropout=0.1)


def cycles(n: int, seed: int) -> list[list[str]]:
    """Sequences walking a 30-item cycle in steps of 7 from random starts: the next item is
    fixed by the last one, while every item is equally popular."""
    rng = random.Random(seed)
    found = []
    for _ in range(n):
        start, length = rng.randrange(30), rng.randrange(4, 14)
        found.append([f"i{(start + 7 * k) % 30}" for k in range(length)])
    return found


def test_it_learns_the_next_item_of_a_sequence() -> None:
    model = fit_sequential(cycles(300, 0), SMALL)
    right = 0
    for seq in cycles(50, 1):
        history, expected = seq[:-1], seq[-1]
        right += model.item_ids[int(np.argmax(model.scores(history)))] == expected
    assert right >= 45
    assert model.losses[-1] < model.losses[0]


def test_same_seed_same_model_and_a_saved_model_scores_the_same(tmp_path: Path) -> None:
    params = SasRecParams(epochs=2, max_len=8, dim=16, batch_size=16)
    a = fit_sequential(cycles(40, 2), params)
    b = fit_sequential(cycles(40, 2), params)
    history = ["i0", "i7", "i14"]
    np.testing.assert_array_equal(a.scores(history), b.scores(history))
    a.save(tmp_path / "seq.pt")
    loaded = SequentialModel.load(tmp_path / "seq.pt")
    assert loaded.item_ids == a.item_ids and loaded.params == params
    np.testing.assert_allclose(loaded.scores(history), a.scores(history), rtol=1e-6)


def test_unknown_or_empty_histories_score_zero_and_batches_match_singles() -> None:
    model = fit_sequential(cycles(40, 3), SasRecParams(epochs=1, max_len=8, dim=16))
    assert not model.scores(["nope"]).any() and not model.scores([]).any()
    histories = [["i0", "i7"], [], ["i3", "i10", "i17"]]
    together = model.scores_many(histories)
    for row, history in enumerate(histories):
        np.testing.assert_allclose(together[row], model.scores(history), rtol=1e-5, atol=1e-5)
