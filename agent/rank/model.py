"""The LightGBM LambdaRank booster: training on groups (one per held-out event), scoring,
gain importance and per-feature contributions (`pred_contrib`, for explain).

The number of trees is chosen by k-fold over the training users (early stopping on each
fold's held-out users), then the booster is fitted on every group: it is chosen on training
events, never on what the ranker is judged on.

lightgbm is imported where a booster is trained, read or asked for contributions: a ranker
loaded to serve scores its trees with numpy (`agent.rank.trees`), so `recommend` never
imports lightgbm (nor the scikit-learn and pandas it imports when they are installed)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from agent.rank.trees import Trees, UnsupportedTrees, read_trees

if TYPE_CHECKING:
    import lightgbm as lgb

Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class RankerParams:
    num_leaves: int = 15
    learning_rate: float = 0.05
    rounds: int = 600
    early_stopping: int = 50
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    truncation: int = 20
    """lambdarank_truncation_level: pairs below this position carry no gradient."""
    folds: int = 5
    """k-fold over training users that chooses the number of trees (1: `rounds` trees)."""
    threads: int = 1
    seed: int = 0

    def lightgbm(self) -> dict[str, Any]:
        return {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "lambdarank_truncation_level": self.truncation,
            "num_threads": self.threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }


@dataclass
class Groups:
    """LambdaRank training data: rows of candidates, grouped by user, label 1 = held out."""

    x: Matrix
    y: npt.NDArray[np.float32]
    sizes: list[int]
    users: list[str]

    def columns(self, keep: list[int]) -> Groups:
        return Groups(self.x[:, keep], self.y, self.sizes, self.users)

    def subset(self, keep: set[str]) -> Groups:
        starts = np.cumsum([0, *self.sizes])
        picked = [g for g, u in enumerate(self.users) if u in keep]
        rows = (
            np.concatenate([np.arange(starts[g], starts[g + 1]) for g in picked])
            if picked
            else np.zeros(0, dtype=np.int64)
        )
        return Groups(
            self.x[rows], self.y[rows], [self.sizes[g] for g in picked],
            [self.users[g] for g in picked],
        )  # fmt: skip


@dataclass
class Ranker:
    _booster: lgb.Booster | None
    """The trained booster; None for a ranker read from `path` (loaded when first needed)."""
    features: list[str]
    params: RankerParams
    train_seconds: float = 0.0
    best_rounds: int = 0
    valid_ndcg10: float | None = None
    """Mean NDCG@10 (x100) of the k folds on their held-out training users."""
    extra: dict[str, Any] = field(default_factory=dict)
    trees: Trees | None = None
    """The booster's trees for numpy scoring (a ranker read from a file)."""
    path: Path | None = None

    @property
    def booster(self) -> lgb.Booster:
        if self._booster is None:
            import lightgbm as lgb

            if self.path is None:
                raise ValueError("a ranker without a booster or a model file")
            self._booster = lgb.Booster(model_file=str(self.path))
        return self._booster

    def score(self, x: Matrix) -> npt.NDArray[np.float64]:
        if self.trees is not None:
            return self.trees.predict(x)
        return np.asarray(self.booster.predict(x, num_threads=self.params.threads))

    def contributions(self, x: Matrix) -> npt.NDArray[np.float64]:
        """(rows, features + 1): each feature's additive share of the score, then the bias."""
        return np.asarray(
            self.booster.predict(x, pred_contrib=True, num_threads=self.params.threads)
        )

    def importance(self) -> dict[str, float]:
        """Total gain per feature, largest first (features never split on are left out)."""
        gains = self.booster.feature_importance(importance_type="gain")
        pairs = sorted(zip(self.features, gains, strict=True), key=lambda p: -p[1])
        return {name: round(float(g), 3) for name, g in pairs if g > 0}

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        self.booster.save_model(str(tmp))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, features: list[str], params: RankerParams) -> Ranker:
        """The saved booster, scored with numpy (no lightgbm import until contributions or
        the booster itself are asked for)."""
        try:
            trees = read_trees(path)
        except UnsupportedTrees:  # a model this reader cannot score: lightgbm does
            return cls._load_with_lightgbm(path, features, params)
        if trees.feature_names != features:
            raise ValueError(f"{path}: the booster's features differ from its manifest")
        return cls(None, features, params, best_rounds=len(trees), trees=trees, path=path)

    @classmethod
    def _load_with_lightgbm(cls, path: Path, features: list[str], params: RankerParams) -> Ranker:
        import lightgbm as lgb

        booster = lgb.Booster(model_file=str(path))
        if list(booster.feature_name()) != features:
            raise ValueError(f"{path}: the booster's features differ from its manifest")
        return cls(booster, features, params, best_rounds=booster.current_iteration())


def params_dict(params: RankerParams) -> dict[str, Any]:
    return asdict(params)


def fit_booster(
    train: Groups, valid: Groups | None, features: list[str], params: RankerParams, rounds: int
) -> lgb.Booster:
    """`rounds` trees; with `valid`, stopped when its NDCG@10 has not improved for
    `params.early_stopping` rounds (the booster keeps `best_iteration`)."""
    import lightgbm as lgb

    data = lgb.Dataset(train.x, train.y, group=train.sizes, feature_name=features,
                       free_raw_data=False)  # fmt: skip
    sets: list[lgb.Dataset] = []
    callbacks: list[Callable[..., Any]] = []
    if valid is not None and valid.sizes:
        sets = [lgb.Dataset(valid.x, valid.y, group=valid.sizes, reference=data)]
        callbacks = [lgb.early_stopping(params.early_stopping, verbose=False)]
    return lgb.train(params.lightgbm(), data, num_boost_round=rounds, valid_sets=sets,
                     callbacks=callbacks)  # fmt: skip


def choose_rounds(groups: Groups, features: list[str], params: RankerParams) -> tuple[int, float]:
    """Number of trees by k-fold over users: in each fold, early stopping on the fold's users;
    the median best iteration, and the mean NDCG@10 (x100) of the folds at their best."""
    users = sorted(groups.users)
    random.Random(f"{params.seed}:rank-folds").shuffle(users)
    best, scores = [], []
    for k in range(params.folds):
        held = set(users[k :: params.folds])
        booster = fit_booster(groups.subset(set(users) - held), groups.subset(held), features,
                              params, params.rounds)  # fmt: skip
        best.append(booster.best_iteration or booster.current_iteration())
        scores.append(float(booster.best_score["valid_0"]["ndcg@10"]))
    return int(np.median(best)), round(100 * float(np.mean(scores)), 3)


def train_ranker(groups: Groups, features: list[str], params: RankerParams) -> Ranker:
    """LambdaRank on every group, with the number of trees chosen by `choose_rounds` (at least
    two users per fold; else `params.rounds`)."""
    if not groups.sizes:
        raise ValueError("no training groups: every held-out item was missing from its group")
    started = time.perf_counter()
    rounds, cv = params.rounds, None
    if params.folds > 1 and len(groups.sizes) >= 2 * params.folds:
        rounds, cv = choose_rounds(groups, features, params)
    booster = fit_booster(groups, None, features, params, rounds)
    seconds = round(time.perf_counter() - started, 3)
    return Ranker(booster, features, params, seconds, rounds, cv)
