"""SASRec's torch side: the network and its training loop (`fit_sequential` in
`agent.recommend.sequential` calls `train` here), and batched scoring for a model trained in
this process. A saved model is scored with numpy (`agent.recommend.sequential`), so serving
never imports torch."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from agent.recommend.sequential import PAD, SasRecParams, Scores

if TYPE_CHECKING:
    from agent.recommend.sequential import SequentialModel


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


def weights_of(net: SasRecNet) -> dict[str, np.ndarray]:
    return {name: t.detach().cpu().numpy().copy() for name, t in net.state_dict().items()}


def scores_many(
    net: SasRecNet, encoded: Sequence[Sequence[int]], n_items: int, threads: int, batch: int
) -> Scores:
    """Batched scores of encoded histories (rows of zeros for empty ones)."""
    out = np.zeros((len(encoded), n_items), dtype=np.float32)
    with _threads(threads), torch.inference_mode():
        for start in range(0, len(encoded), batch):
            chunk = encoded[start : start + batch]
            rows = [i for i, seq in enumerate(chunk) if seq]
            if not rows:
                continue
            seq = _left_pad([chunk[i] for i in rows], max(len(chunk[i]) for i in rows))
            last = net(seq)[:, -1]
            out[[start + i for i in rows]] = net.logits(last)[:, 1:].numpy()
    return out


def train(
    model: SequentialModel,
    encoded: list[list[int]],
    on_epoch: Callable[[int, SequentialModel], None] | None = None,
) -> None:
    """Fit `model` (its `net` is set here) on encoded sequences: every position of a
    sequence is a training example (predict the next item), full softmax over the catalog."""
    p = model.params
    torch.manual_seed(p.seed)
    net = SasRecNet(len(model.item_ids), p)
    model.net = net
    if not encoded:
        net.eval()
        model.weights = weights_of(net)
        return
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
                model.weights = weights_of(net)
                paused = time.perf_counter()
                on_epoch(len(model.losses), model)
                started += time.perf_counter() - paused
                net.train()
        net.eval()
    model.weights = weights_of(net)
    model.train_seconds = round(time.perf_counter() - started, 2)


def load_legacy(path: Path) -> dict[str, object]:
    """A model saved with `torch.save` before serving went numpy-only."""
    return dict(torch.load(path, weights_only=True))
