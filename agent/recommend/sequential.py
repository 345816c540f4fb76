"""A sequential retriever of the SASRec family (Kang & McAuley, ICDM'18): causal self-attention
over a user's most recent items, trained to predict the next item at every position.

Why a compact torch model here instead of a library: torch-rechub 0.9 (which ships SASRec)
would bring pandas and scikit-learn for a model of about a hundred lines, trains it with its own
dataframe pipeline and one sampled negative per position (binary cross-entropy); RecBole pins
old numpy-era dependencies and `rectools` needs numpy < 2. This one trains with the full
softmax over the catalog (cross-entropy, as gSASRec and "SASRec with CE" show, it is much
stronger than one sampled negative at this catalog size) and needs only torch, which the vLLM
CPU build already installs.

Numpy in, numpy out: `scores(history)` gives one score per item of `item_ids`, like EASE, so
the ranker and the eval treat both alike. Deterministic for a given seed on CPU."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

Scores = npt.NDArray[np.float32]
PAD = 0


@dataclass(frozen=True)
class SasRecParams:
    max_len: int = 50
    """Most recent items a user is represented by (and trained on)."""
    dim: int = 64
    blocks: int = 2
    heads: int = 1
    dropout: float = 0.2
    epochs: int = 50
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0
    threads: int = 1
    """torch threads while training and scoring (the build machines are shared)."""


class SasRecNet(nn.Module):
    def __init__(self, n_items: int, p: SasRecParams) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items + 1, p.dim, padding_idx=PAD)
        self.positions = nn.Embedding(p.max_len, p.dim)
        self.dropout = nn.Dropout(p.dropout)
        layer = nn.TransformerEncoderLayer(
            p.dim, p.heads, p.dim, p.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, p.blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(p.dim)
        self.heads = p.heads
        nn.init.normal_(self.items.weight, std=p.dim**-0.5)
        with torch.no_grad():
            self.items.weight[PAD].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, len) item indices, left-padded -> (batch, len, dim) states."""
        length = seq.shape[1]
        # distance from the newest item: the newest is always position 0, whatever the padding
        positions = torch.arange(length - 1, -1, -1, device=seq.device).unsqueeze(0)
        x = self.items(seq) + self.positions(positions)
        x = self.dropout(x) * (seq != PAD).unsqueeze(-1)
        return self.norm(self.encoder(x, mask=self.mask(seq)))

    def mask(self, seq: torch.Tensor) -> torch.Tensor:
        """True where a position may not look: later positions and padding. Every position
        may look at itself, so no row is fully masked (padded rows would turn to NaN)."""
        length = seq.shape[1]
        later = torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)
        blocked = later.unsqueeze(0) | (seq == PAD).unsqueeze(1)
        blocked &= ~torch.eye(length, dtype=torch.bool).unsqueeze(0)
        return blocked.repeat_interleave(self.heads, dim=0)

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        return states @ self.items.weight.T


@dataclass
class SequentialModel:
    item_ids: list[str]
    net: SasRecNet
    params: SasRecParams
    train_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {item: i + 1 for i, item in enumerate(self.item_ids)}
        self.net.eval()

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._index

    def encode(self, history: Iterable[str]) -> list[int]:
        return [self._index[i] for i in history if i in self._index][-self.params.max_len :]

    def scores(self, history: Sequence[str]) -> Scores:
        """One score per item of `item_ids` (higher is better); zeros without known items."""
        return self.scores_many([history])[0]

    def scores_many(self, histories: Sequence[Sequence[str]], batch: int = 256) -> Scores:
        out = np.zeros((len(histories), len(self.item_ids)), dtype=np.float32)
        encoded = [self.encode(h) for h in histories]
        with _threads(self.params.threads), torch.inference_mode():
            for start in range(0, len(encoded), batch):
                chunk = encoded[start : start + batch]
                rows = [i for i, seq in enumerate(chunk) if seq]
                if not rows:
                    continue
                seq = _left_pad([chunk[i] for i in rows], max(len(chunk[i]) for i in rows))
                last = self.net(seq)[:, -1]
                logits = self.net.logits(last)[:, 1:].numpy()
                out[[start + i for i in rows]] = logits
        return out

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        payload = {"item_ids": self.item_ids, "params": asdict(self.params),
                   "state": self.net.state_dict(), "train_seconds": self.train_seconds}  # fmt: skip
        torch.save(payload, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SequentialModel:
        payload = torch.load(path, weights_only=True)
        params = SasRecParams(**payload["params"])
        net = SasRecNet(len(payload["item_ids"]), params)
        net.load_state_dict(payload["state"])
        return cls(list(payload["item_ids"]), net, params, float(payload["train_seconds"]))


class _threads:
    """torch's thread count for a block, restored afterwards."""

    def __init__(self, n: int) -> None:
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


def _left_pad(seqs: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    out = torch.full((len(seqs), length), PAD, dtype=torch.long)
    for row, seq in enumerate(seqs):
        if seq:
            out[row, length - len(seq) :] = torch.tensor(seq[-length:], dtype=torch.long)
    return out


def fit_sequential(
    sequences: Iterable[Sequence[str]],
    params: SasRecParams | None = None,
    on_epoch: Callable[[int, SequentialModel], None] | None = None,
) -> SequentialModel:
    """Fit on users' positive items in time order (one sequence per user). Every position of
    a sequence's last `max_len + 1` items is a training example (predict the next item).
    `on_epoch(epoch, model)` runs after each epoch with the model in eval mode (to watch a
    validation metric; the time it takes is not counted as training time)."""
    p = params or SasRecParams()
    seqs = [list(s) for s in sequences if len(s) >= 2]
    counts: dict[str, int] = {}
    for seq in seqs:
        for item in seq:
            counts[item] = counts.get(item, 0) + 1
    item_ids = sorted(counts)
    index = {item: i + 1 for i, item in enumerate(item_ids)}
    encoded = [[index[i] for i in s][-(p.max_len + 1) :] for s in seqs]
    torch.manual_seed(p.seed)
    net = SasRecNet(len(item_ids), p)
    model = SequentialModel(item_ids, net, p)
    if not encoded:
        return model
    rng = np.random.default_rng(p.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=p.lr, betas=(0.9, 0.98))
    loss_fn = nn.CrossEntropyLoss()
    by_length = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    batches = [by_length[i : i + p.batch_size] for i in range(0, len(by_length), p.batch_size)]
    started = time.perf_counter()
    with _threads(p.threads):
        net.train()
        for _ in range(p.epochs):
            total = 0.0
            for b in rng.permutation(len(batches)):
                chunk = [encoded[i] for i in batches[b]]
                length = max(len(s) for s in chunk) - 1
                inputs = _left_pad([s[:-1] for s in chunk], length)
                targets = _left_pad([s[1:] for s in chunk], length)
                real = targets != PAD
                logits = net.logits(net(inputs)[real])  # only positions with a next item
                loss = loss_fn(logits, targets[real])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item()
            model.losses.append(round(total / len(batches), 4))
            if on_epoch is not None:
                net.eval()
                paused = time.perf_counter()
                on_epoch(len(model.losses), model)
                started += time.perf_counter() - paused
                net.train()
        net.eval()
    model.train_seconds = round(time.perf_counter() - started, 2)
    return model
