"""The ranker's trees scored with numpy (`agent.rank.trees`) give LightGBM's own numbers:
NaN and zero handling per missing type, values on a threshold, constant trees; and a loaded
ranker scores without importing lightgbm."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from agent.rank import model
from agent.rank.model import Groups, Ranker, RankerParams, train_ranker
from agent.rank.trees import UnsupportedTrees, read_trees
from tests.fresh import modules_loaded_by

FEATURES = ["a", "b", "c", "d"]


def groups(seed: int = 0, users: int = 60, size: int = 20) -> Groups:
    """Features with NaN (a), many exact zeros (b), few distinct values (c): LightGBM then
    writes NaN, zero and none missing types and thresholds the test rows can sit on."""
    rng = np.random.default_rng(seed)
    n = users * size
    x = np.column_stack([
        np.where(rng.random(n) < 0.3, np.nan, rng.normal(size=n)),
        np.where(rng.random(n) < 0.5, 0.0, rng.normal(size=n)),
        rng.integers(0, 4, n).astype(float),
        rng.normal(size=n),
    ]).astype(np.float32)  # fmt: skip
    y = np.zeros(n, dtype=np.float32)
    for g in range(users):
        scores = np.nan_to_num(x[g * size : (g + 1) * size, 0]) + x[g * size : (g + 1) * size, 2]
        y[g * size + int(np.argmax(scores))] = 1.0
    return Groups(x, y, [size] * users, [f"u{g}" for g in range(users)])


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ranker, Path]:
    params = RankerParams(rounds=40, folds=1, min_data_in_leaf=5)
    ranker = train_ranker(groups(), FEATURES, params)
    path = tmp_path_factory.mktemp("ranker") / "ranker.txt"
    ranker.save(path)
    return ranker, path


def probe_rows(path: Path) -> np.ndarray:
    """Random rows plus every threshold exactly, NaN, 0, -0, a denormal and +-inf."""
    rng = np.random.default_rng(1)
    rows = [groups(seed=2).x[:300]]
    trees = read_trees(path)
    for t in range(len(trees)):
        for node in range(trees.feature.shape[1]):
            if trees.left[t, node] == -1 and trees.right[t, node] == -1:
                continue
            row = rng.normal(size=len(FEATURES)).astype(np.float32)
            row[trees.feature[t, node]] = np.float32(trees.threshold[t, node])
            rows.append(row[None, :])
    specials = np.array([np.nan, 0.0, -0.0, 1e-40, np.inf, -np.inf], dtype=np.float32)
    for value in specials:
        for j in range(len(FEATURES)):
            row = rng.normal(size=(1, len(FEATURES))).astype(np.float32)
            row[0, j] = value
            rows.append(row)
    return np.concatenate(rows).astype(np.float32)


def test_numpy_scores_are_lightgbms(saved: tuple[Ranker, Path]) -> None:
    trained, path = saved
    x = probe_rows(path)
    expected = lgb.Booster(model_file=str(path)).predict(x)
    loaded = Ranker.load(path, FEATURES, trained.params)
    assert loaded.trees is not None and len(loaded.trees) == trained.booster.current_iteration()
    np.testing.assert_array_equal(loaded.score(x), expected)
    np.testing.assert_allclose(trained.score(x), expected, rtol=0, atol=1e-12)
    assert set(read_trees(path).missing.ravel()) >= {0, 2}  # the test reached both kinds


def test_constant_trees_and_contributions(saved: tuple[Ranker, Path], tmp_path: Path) -> None:
    trained, path = saved
    flat = Groups(np.zeros((40, 4), np.float32), np.tile([1.0, 0.0], 20).astype(np.float32),
                  [2] * 20, [f"u{i}" for i in range(20)])  # fmt: skip
    constant = train_ranker(flat, FEATURES, RankerParams(rounds=3, folds=1, min_data_in_leaf=1))
    constant.save(tmp_path / "flat.txt")
    x = probe_rows(path)
    loaded = Ranker.load(tmp_path / "flat.txt", FEATURES, constant.params)
    np.testing.assert_array_equal(loaded.score(x), constant.booster.predict(x))
    again = Ranker.load(path, FEATURES, trained.params)  # contributions load lightgbm
    np.testing.assert_array_equal(again.contributions(x[:5]), trained.contributions(x[:5]))


def test_a_file_that_is_not_a_model_or_has_other_features_is_refused(
    saved: tuple[Ranker, Path], tmp_path: Path
) -> None:
    trained, path = saved
    with pytest.raises(ValueError, match="features differ"):
        Ranker.load(path, ["z", "b", "c", "d"], trained.params)
    bad = tmp_path / "bad.txt"
    bad.write_text("not a model\n")
    with pytest.raises(ValueError, match="no trees"):
        read_trees(bad)
    text = path.read_text().replace("num_tree_per_iteration=1", "num_tree_per_iteration=2", 1)
    (tmp_path / "multi.txt").write_text(text)
    with pytest.raises(UnsupportedTrees, match="one tree per iteration"):
        read_trees(tmp_path / "multi.txt")


def test_a_model_the_reader_does_not_implement_is_scored_by_lightgbm(
    saved: tuple[Ranker, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained, path = saved

    def unsupported(path: Path) -> None:
        raise UnsupportedTrees(f"{path}: pretend")

    monkeypatch.setattr(model, "read_trees", unsupported)
    loaded = Ranker.load(path, FEATURES, trained.params)
    assert loaded.trees is None
    x = probe_rows(path)
    np.testing.assert_array_equal(loaded.score(x), trained.booster.predict(x))


def test_a_loaded_ranker_scores_without_lightgbm(saved: tuple[Ranker, Path]) -> None:
    _, path = saved
    code = (
        "import numpy as np\nfrom pathlib import Path\n"
        "from agent.rank.model import Ranker, RankerParams\n"
        f"r = Ranker.load(Path({str(path)!r}), {FEATURES!r}, RankerParams())\n"
        "r.score(np.zeros((3, 4), np.float32))"
    )
    assert modules_loaded_by(code, ("lightgbm", "sklearn", "pandas", "torch")) == []
