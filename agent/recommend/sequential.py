"""A sequential retriever of the SASRec family (Kang & McAuley, ICDM'18): causal self-attention
over a user's most recent items, trained to predict the next item at every position.

Why a compact torch model here instead of a library: torch-rechub 0.9 (which ships SASRec)
would bring pandas and scikit-learn for a model of about a hundred lines, trains it with its own
dataframe pipeline and one sampled negative per position (binary cross-entropy); RecBole pins
old numpy-era dependencies and `rectools` needs numpy < 2. This one trains as RecBole's SASRec
does in LLMRank's comparison (`agent.recommend.sasrec_torch`): full softmax over the catalog,
every item a target with up to 50 items of context, early stopping on full-sort NDCG@10 of each
sequence's held-out last item. Measured on ML-100K (943 users, leave-one-out by time) against
RecBole's own SASRec on LLMRank's own candidate lists: see `SasRecParams` and the eval's
`llmrank-ref` protocol.

Dependencies run one way: this module imports `agent.recommend.sasrec_torch` only inside
`fit_sequential` (and to read a legacy torch file); `sasrec_torch` never imports this module.
A model is saved as numpy arrays and a saved model scores with numpy: the same forward pass
(RecBole's post-norm blocks, or the pre-norm ones of models saved before them; exact GELU,
causal attention) in float32, so `recommend` never imports torch (about 2 s per process here).
A model trained in this process scores its batches with torch.

Numpy in, numpy out: `scores(history)` gives one score per item of `item_ids`, like EASE, so
the ranker and the eval treat both alike. Deterministic for a given seed on CPU."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.recommend.sasrec_params import PAD, SasRecParams, Scores

__all__ = ["PAD", "SasRecParams", "Scores", "SequentialModel", "fit_sequential"]

Weights = dict[str, npt.NDArray[np.float32]]
FORMAT = "personae-sasrec-1"
_erf = np.frompyfunc(math.erf, 1, 1)
POST_EPS = 1e-12
"""RecBole's layer_norm_eps (`sasrec_torch.POST_EPS`; not imported, so serving needs no torch)."""
BEFORE_LAYOUT = {"layout": "pre", "positions": "newest"}
"""What a model saved before `layout` and `positions` existed was trained with."""


@dataclass
class SequentialModel:
    item_ids: list[str]
    params: SasRecParams
    weights: Weights = field(default_factory=dict)
    """The network's state dict (torch's names) as float32 arrays."""
    train_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    valid_ndcg: list[float] = field(default_factory=list)
    """Full-sort NDCG@10 (x100) of each training sequence's held-out last item, per epoch."""
    best_epoch: int = 0
    """The epoch whose weights were kept (the last one without early stopping)."""
    net: Any = None
    """The torch module when trained in this process (batched scoring with torch)."""
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {item: i + 1 for i, item in enumerate(self.item_ids)}

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._index

    def refit_params(self) -> SasRecParams:
        """Settings that retrain on every event for the epoch count this fit's early stopping
        chose, with nothing held out (`rank fit`'s serving fit: no second validation)."""
        if self.params.patience == 0 or self.best_epoch == 0:
            return self.params
        return replace(self.params, patience=0, epochs=self.best_epoch)

    def encode(self, history: Iterable[str]) -> list[int]:
        return [self._index[i] for i in history if i in self._index][-self.params.max_len :]

    def scores(self, history: Sequence[str]) -> Scores:
        """One score per item of `item_ids` (higher is better); zeros without known items."""
        return self.scores_many([history])[0]

    def scores_many(self, histories: Sequence[Sequence[str]], batch: int = 256) -> Scores:
        encoded = [self.encode(h) for h in histories]
        if self.net is not None:
            from agent.recommend.sasrec_torch import scores_many

            return scores_many(self.net, encoded, len(self.item_ids), self.params.threads, batch)
        out = np.zeros((len(histories), len(self.item_ids)), dtype=np.float32)
        for row, seq in enumerate(encoded):
            if seq:
                out[row] = self.numpy_scores(seq)
        return out

    def numpy_scores(self, seq: Sequence[int]) -> Scores:
        """The network's forward pass for one encoded history (no padding), in numpy."""
        w, p = self.weights, self.params
        length = len(seq)
        order = np.arange(length - 1, -1, -1) if p.positions == "newest" else np.arange(length)
        x = w["items.weight"][list(seq)] + w["positions.weight"][order]
        blocked = np.triu(np.ones((length, length), dtype=np.bool_), k=1)
        if p.layout == "post":
            x = _post_blocks(_norm(x, w, "emb_norm", POST_EPS), w, p, blocked)[-1]
        else:
            x = _norm(_pre_blocks(x, w, p, blocked), w, "norm")[-1]
        return np.einsum("ij,j->i", w["items.weight"][1:], x).astype(np.float32)

    def save(self, path: Path) -> None:
        """Numpy arrays only (np.savez, no pickle), whatever the file's name."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        meta = {"format": FORMAT, "params": asdict(self.params),
                "train_seconds": self.train_seconds, "best_epoch": self.best_epoch}  # fmt: skip
        arrays: dict[str, Any] = {f"w/{name}": value for name, value in self.weights.items()}
        arrays |= {"meta": np.array(json.dumps(meta)), "item_ids": np.array(self.item_ids, str)}
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SequentialModel:
        """A saved model; one saved with torch (before this format) is read with torch."""
        with np.load(path, allow_pickle=False) as data:
            if "meta.npy" not in data.zip.namelist():
                return cls._load_legacy(path)
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: unknown sequential model format {meta.get('format')}")
            weights = {
                name.removeprefix("w/"): data[name].astype(np.float32)
                for name in data.files
                if name.startswith("w/")
            }
            item_ids = [str(i) for i in data["item_ids"]]
        params = SasRecParams(**(BEFORE_LAYOUT | meta["params"]))
        model = cls(item_ids, params, weights, float(meta["train_seconds"]))
        model.best_epoch = int(meta.get("best_epoch", 0))
        return model

    @classmethod
    def _load_legacy(cls, path: Path) -> SequentialModel:
        from agent.recommend.sasrec_torch import load_legacy

        payload = load_legacy(path)
        state: dict[str, Any] = payload["state"]  # type: ignore[assignment]
        weights = {name: t.numpy().astype(np.float32) for name, t in state.items()}
        params = SasRecParams(**(BEFORE_LAYOUT | payload["params"]))  # type: ignore[operator]
        item_ids = list(payload["item_ids"])  # type: ignore[call-overload]
        return cls(item_ids, params, weights, float(payload["train_seconds"]))  # type: ignore[arg-type]


def _pre_blocks(
    x: npt.NDArray[np.float32], w: Weights, p: SasRecParams, blocked: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """torch's TransformerEncoderLayer with norm_first=True, in eval mode."""
    for b in range(p.blocks):
        pre = f"encoder.layers.{b}."
        x = x + _attention(_norm(x, w, pre + "norm1"), w, pre + "self_attn.", p.heads, blocked)
        h = _linear(_norm(x, w, pre + "norm2"), w, pre + "linear1")
        x = x + _linear(_gelu(h), w, pre + "linear2")
    return x


def _post_blocks(
    x: npt.NDArray[np.float32], w: Weights, p: SasRecParams, blocked: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """RecBole's TransformerLayer (torch's layer with norm_first=False), in eval mode."""
    for b in range(p.blocks):
        pre = f"encoder.layers.{b}."
        x = x + _attention(x, w, pre + "self_attn.", p.heads, blocked)
        x = _norm(x, w, pre + "norm1", POST_EPS)
        x = x + _linear(_gelu(_linear(x, w, pre + "linear1")), w, pre + "linear2")
        x = _norm(x, w, pre + "norm2", POST_EPS)
    return x


def _linear(x: npt.NDArray[np.float32], w: Weights, name: str) -> npt.NDArray[np.float32]:
    return np.einsum("ij,kj->ik", x, w[name + ".weight"]) + w[name + ".bias"]


def _norm(
    x: npt.NDArray[np.float32], w: Weights, name: str, eps: float = 1e-5
) -> npt.NDArray[np.float32]:
    """torch.nn.LayerNorm (eps 1e-5 unless given)."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    out: npt.NDArray[np.float32] = (x - mean) / np.sqrt(var + np.float32(eps))
    return out * w[name + ".weight"] + w[name + ".bias"]


def _gelu(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Exact GELU (torch's default): x * Phi(x)."""
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float32))).astype(np.float32)


def _attention(
    x: npt.NDArray[np.float32], w: Weights, name: str, heads: int, blocked: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """torch.nn.MultiheadAttention on (len, dim), self-attention, True in `blocked` masked."""
    length, dim = x.shape
    qkv = np.einsum("ij,kj->ik", x, w[name + "in_proj_weight"]) + w[name + "in_proj_bias"]
    q, k, v = (qkv[:, i * dim : (i + 1) * dim].reshape(length, heads, -1) for i in range(3))
    logits = np.einsum("qhd,khd->hqk", q / np.float32(math.sqrt(dim // heads)), k)
    logits = np.where(blocked[None], -np.inf, logits)
    logits = np.exp(logits - logits.max(axis=-1, keepdims=True))
    attn = logits / logits.sum(axis=-1, keepdims=True)
    out = np.einsum("hqk,khd->qhd", attn, v).reshape(length, dim)
    return _linear(out.astype(np.float32), w, name + "out_proj")


def fit_sequential(
    sequences: Iterable[Sequence[str]], params: SasRecParams | None = None
) -> SequentialModel:
    """Fit on users' positive items in time order (one sequence per user): every item after a
    sequence's first is a target once, predicted from up to `max_len` items before it. With
    `params.patience`, each sequence's last item is held out to pick the epoch (see
    `agent.recommend.sasrec_torch`)."""
    from agent.recommend.sasrec_torch import train

    p = params or SasRecParams()
    seqs = [list(s) for s in sequences if len(s) >= 2]
    counts: dict[str, int] = {}
    for seq in seqs:
        for item in seq:
            counts[item] = counts.get(item, 0) + 1
    item_ids = sorted(counts)
    index = {item: i + 1 for i, item in enumerate(item_ids)}
    trained = train(len(item_ids), [[index[i] for i in s] for s in seqs], p)
    model = SequentialModel(item_ids, p, trained.weights, trained.seconds, trained.losses,
                            net=trained.net)  # fmt: skip
    model.valid_ndcg, model.best_epoch = trained.valid_ndcg, trained.best_epoch
    return model
