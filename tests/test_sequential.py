"""The SASRec-family retriever: it learns an order that only a sequence model can see, it is
deterministic for a seed, a saved model scores exactly as the fitted one, every item of a long
sequence is a training target once, early stopping keeps the best epoch, and the torch side
never imports the numpy side."""

from __future__ import annotations

import random
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from agent.recommend.sasrec_torch import windows
from agent.recommend.sequential import SasRecParams, SequentialModel, fit_sequential
from tests.fresh import modules_loaded_by

SMALL = SasRecParams(
    epochs=30, max_len=12, dim=32, inner=64, batch_size=32, dropout=0.1, patience=0
)
"""No early stopping: on these cycles the held-out NDCG saturates at 100 by epoch 2."""


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
    # the saved model scores with numpy, the fitted one with torch: float32 rounding apart
    np.testing.assert_allclose(loaded.scores(history), a.scores(history), rtol=0, atol=2e-5)


def test_unknown_or_empty_histories_score_zero_and_batches_match_singles() -> None:
    model = fit_sequential(cycles(40, 3), SasRecParams(epochs=1, max_len=8, dim=16))
    assert not model.scores(["nope"]).any() and not model.scores([]).any()
    histories = [["i0", "i7"], [], ["i3", "i10", "i17"]]
    together = model.scores_many(histories)
    for row, history in enumerate(histories):
        np.testing.assert_allclose(together[row], model.scores(history), rtol=1e-5, atol=1e-5)


def test_a_saved_model_scores_with_numpy_as_the_torch_model_does(tmp_path: Path) -> None:
    """Serving reads numpy arrays and runs the forward pass in numpy (no torch import)."""
    base = SasRecParams(epochs=3, max_len=8, dim=16, batch_size=16)
    variants = [replace(base, heads=1), base, replace(base, layout="pre", positions="newest"),
                replace(base, layout="pre")]  # fmt: skip
    for k, params in enumerate(variants):
        trained = fit_sequential(cycles(60, 4), params)
        trained.save(tmp_path / f"seq{k}.pt")
        loaded = SequentialModel.load(tmp_path / f"seq{k}.pt")
        assert loaded.net is None and loaded.train_seconds == trained.train_seconds
        histories = [["i0"], ["i0", "i7", "i14"], [f"i{k}" for k in range(30)], ["nope"]]
        np.testing.assert_allclose(
            loaded.scores_many(histories), trained.scores_many(histories), rtol=0, atol=2e-5
        )


def test_a_model_saved_with_torch_still_loads(tmp_path: Path) -> None:
    import torch

    params = SasRecParams(epochs=1, max_len=8, dim=16, layout="pre", positions="newest")
    trained = fit_sequential(cycles(40, 5), params)
    before_layout = {k: v for k, v in asdict(params).items() if k not in ("layout", "positions")}
    payload = {"item_ids": trained.item_ids, "params": before_layout,
               "state": trained.net.state_dict(), "train_seconds": 1.5}  # fmt: skip
    torch.save(payload, tmp_path / "old.pt")
    loaded = SequentialModel.load(tmp_path / "old.pt")
    assert loaded.item_ids == trained.item_ids and loaded.train_seconds == 1.5
    np.testing.assert_allclose(loaded.scores(["i0", "i7"]), trained.scores(["i0", "i7"]),
                               rtol=0, atol=2e-5)  # fmt: skip


def test_serving_a_saved_model_imports_no_torch(tmp_path: Path) -> None:
    model = fit_sequential(cycles(40, 6), SasRecParams(epochs=1, max_len=8, dim=16))
    model.save(tmp_path / "seq.pt")
    code = (
        "from pathlib import Path\nfrom agent.recommend.sequential import SequentialModel\n"
        f"m = SequentialModel.load(Path({str(tmp_path / 'seq.pt')!r}))\n"
        "assert m.scores(['i0', 'i7']).any()"
    )
    assert modules_loaded_by(code, ("torch",)) == []


def test_windows_make_every_item_a_target_once_with_enough_context() -> None:
    for length, max_len, stride in [(1, 5, 2), (2, 5, 2), (6, 5, 2), (7, 5, 2), (40, 8, 3),
                                    (41, 8, 8), (120, 50, 25)]:  # fmt: skip
        seq = list(range(1, length + 1))
        targets: list[int] = []
        for window, skip in windows(seq, max_len, stride):
            assert 2 <= len(window) <= max_len + 1
            start = seq.index(window[0])
            assert window == seq[start : start + len(window)]
            trained = window[1 + skip :]
            targets += trained
            for t in trained:  # the items before a target inside its window
                assert t - window[0] >= min(max_len - stride, t - 1)
        assert sorted(targets) == seq[1:], (length, max_len, stride)


def test_early_stopping_keeps_the_best_epoch_s_weights() -> None:
    params = SasRecParams(epochs=40, max_len=8, dim=16, inner=32, batch_size=16, patience=3,
                          dropout=0.1, lr=5e-3)  # fmt: skip
    model = fit_sequential(cycles(80, 7), params)
    assert len(model.valid_ndcg) == len(model.losses) >= model.best_epoch >= 1
    assert model.valid_ndcg[model.best_epoch - 1] == max(model.valid_ndcg)
    stopped = len(model.losses) < params.epochs
    assert not stopped or len(model.losses) - model.best_epoch == params.patience
    # the kept weights are the best epoch's, also after saving (numpy scores them alike)
    from agent.recommend.sasrec_torch import full_sort_ndcg

    index = {item: k + 1 for k, item in enumerate(model.item_ids)}
    held = [([index[i] for i in s[:-1]][-8:], index[s[-1]]) for s in cycles(80, 7) if len(s) >= 3]
    assert full_sort_ndcg(model.net, held, len(model.item_ids), 1) == pytest.approx(
        model.valid_ndcg[model.best_epoch - 1], abs=1e-6)  # fmt: skip


def test_without_patience_every_epoch_runs_on_every_item() -> None:
    params = SasRecParams(epochs=3, max_len=8, dim=16, inner=32, batch_size=16, patience=0)
    model = fit_sequential(cycles(40, 8), params)
    assert len(model.losses) == 3 and model.best_epoch == 3 and model.valid_ndcg == []


def test_the_torch_side_does_not_import_the_numpy_side() -> None:
    """One-way dependency: sequential -> sasrec_torch -> sasrec_params, never back."""
    loaded = modules_loaded_by("import agent.recommend.sasrec_torch", ("agent",))
    assert "agent.recommend.sasrec_params" in loaded
    assert "agent.recommend.sequential" not in loaded
