"""A LightGBM model's trees scored with numpy, read from its text file: what `recommend`
needs from the ranker without importing lightgbm (which imports scikit-learn and pandas
when installed: about 3 s of CPU per process here, for a 5 ms prediction).

Exactly LightGBM's numerical decision (`Tree::NumericalDecision`): the feature as a double
(|x| <= 1e-35 as 0, as its row reader does); NaN read as 0 unless the node's missing type is
NaN; a missing value (NaN for missing type NaN, |x| <= 1e-35 for missing type Zero) goes the
node's default way; otherwise left when `value <= threshold`. Trees are summed in file order
in float64, as LightGBM does, so the scores are the same numbers (tests/test_rank_trees.py
holds them equal to `Booster.predict`).
Only what `personae rank fit` trains is read: one output per iteration, numerical splits,
constant leaves; anything else (categorical splits, linear trees, multiclass, random forest
averaging) raises `UnsupportedTrees`, and `Ranker.load` scores with lightgbm instead."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

ZERO_THRESHOLD = float(np.float32(1e-35))
"""LightGBM's kZeroThreshold (`1e-35f`, a float literal held in a double)."""
DEFAULT_LEFT = 2
MISSING_ZERO, MISSING_NAN = 1, 2
INT_KEYS = ("split_feature", "decision_type", "left_child", "right_child")


class UnsupportedTrees(ValueError):
    """A valid model using what this reader does not implement."""


@dataclass(frozen=True)
class Trees:
    feature_names: list[str]
    feature: npt.NDArray[np.int64]
    """(trees, nodes) split feature of each internal node (padded with 0)."""
    threshold: npt.NDArray[np.float64]
    default_left: npt.NDArray[np.bool_]
    missing: npt.NDArray[np.int8]
    """Missing type per node: 0 none, 1 zero, 2 NaN."""
    left: npt.NDArray[np.int64]
    right: npt.NDArray[np.int64]
    """Children: >= 0 an internal node, < 0 the leaf ~child."""
    leaf_value: npt.NDArray[np.float64]
    """(trees, leaves)."""
    splits: npt.NDArray[np.bool_]
    """Per tree: False for a one-leaf (constant) tree."""

    def __len__(self) -> int:
        return len(self.leaf_value)

    def predict(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """Raw scores, one per row of `x` (rows, features)."""
        values = np.asarray(x, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.feature_names):
            raise ValueError(f"expected (rows, {len(self.feature_names)}) features, got {x.shape}")
        # LightGBM drops |x| <= kZeroThreshold from a row before predicting: they read as 0
        values = np.where(np.abs(values) <= ZERO_THRESHOLD, 0.0, values)
        rows, trees = len(values), len(self)
        node = np.zeros((rows, trees), dtype=np.int64)
        leaf = np.where(self.splits, -1, 0)[None, :].repeat(rows, axis=0)
        row_index = np.arange(rows)[:, None].repeat(trees, axis=1)
        tree_index = np.arange(trees)[None, :].repeat(rows, axis=0)
        active = leaf < 0
        while active.any():
            r, t, n = row_index[active], tree_index[active], node[active]
            fval = values[r, self.feature[t, n]]
            missing = self.missing[t, n]
            nan = np.isnan(fval)
            fval = np.where(nan & (missing != MISSING_NAN), 0.0, fval)
            default = ((missing == MISSING_ZERO) & (np.abs(fval) <= ZERO_THRESHOLD)) | (
                (missing == MISSING_NAN) & nan
            )
            go_left = np.where(default, self.default_left[t, n], fval <= self.threshold[t, n])
            child = np.where(go_left, self.left[t, n], self.right[t, n])
            done = child < 0
            leaf[r[done], t[done]] = ~child[done]
            node[r, t] = np.where(done, 0, child)
            active = leaf < 0
        picked = self.leaf_value[tree_index, leaf]
        total = np.zeros(rows, dtype=np.float64)
        for k in range(trees):  # in order, as LightGBM adds them
            total += picked[:, k]
        return total


def _numbers(block: dict[str, str], key: str, kind: type) -> list[float] | list[int]:
    text = block.get(key, "").strip()
    return [kind(v) for v in text.split()] if text else []


def read_trees(path: Path) -> Trees:
    """The trees of a LightGBM text model file (`Booster.save_model`)."""
    header: dict[str, str] = {}
    blocks: list[dict[str, str]] = []
    current = header
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("Tree="):
            current = {}
            blocks.append(current)
        elif line.startswith("end of trees"):
            break
        elif "=" in line:
            key, _, value = line.partition("=")
            current[key] = value
    if header.get("num_tree_per_iteration", "1") != "1" or "average_output" in header:
        raise UnsupportedTrees(f"{path}: only one tree per iteration, without averaging")
    if not blocks:
        raise ValueError(f"{path}: no trees")
    names = header.get("feature_names", "").split()
    nodes = max(int(b["num_leaves"]) - 1 for b in blocks) or 1
    leaves = max(int(b["num_leaves"]) for b in blocks)
    shape = (len(blocks), nodes)
    ints = {key: np.zeros(shape, dtype=np.int64) for key in INT_KEYS}
    ints["left_child"][:] = ints["right_child"][:] = -1
    threshold = np.zeros(shape, dtype=np.float64)
    leaf_value = np.zeros((len(blocks), leaves), dtype=np.float64)
    for t, block in enumerate(blocks):
        if block.get("num_cat", "0") != "0" or block.get("is_linear", "0") != "0":
            raise UnsupportedTrees(f"{path}: tree {t} has categorical splits or linear leaves")
        values = _numbers(block, "leaf_value", float)
        leaf_value[t, : len(values)] = values
        n = int(block["num_leaves"]) - 1
        for key, kind in [("threshold", float), *((k, int) for k in INT_KEYS)]:
            found = _numbers(block, key, kind)
            if len(found) != n:
                raise ValueError(f"{path}: tree {t} has {len(found)} {key} for {n} splits")
            (threshold if key == "threshold" else ints[key])[t, :n] = found
    decision = ints["decision_type"]
    if (decision & 1).any():
        raise UnsupportedTrees(f"{path}: categorical decision in a numerical tree")
    if len(names) and int(ints["split_feature"].max()) >= len(names):
        raise ValueError(f"{path}: a split reads a feature the model does not name")
    return Trees(
        names, ints["split_feature"], threshold, (decision & DEFAULT_LEFT) > 0,
        ((decision >> 2) & 3).astype(np.int8), ints["left_child"], ints["right_child"],
        leaf_value, np.array([int(b["num_leaves"]) > 1 for b in blocks]),
    )  # fmt: skip
