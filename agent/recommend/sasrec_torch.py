"""SASRec's torch side: the network, its training loop with early stopping, and batched
scoring for a model trained in this process. `agent.recommend.sequential` calls `train` here;
this module never imports it (`agent.recommend.sasrec_params` holds what both share). A saved
model is scored with numpy, so serving never imports torch.

Training as RecBole trains SASRec (the reference LLMRank compares against): every item of a
sequence is a target once, predicted from up to `max_len` items before it, with cross-entropy
over the whole catalog; with `patience`, each sequence's last item is held out, full-sort
NDCG@10 on it (the sequence's other items masked) is measured after every epoch, training
stops after `patience` epochs without a better one and the best epoch's weights are kept."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agent.recommend.sasrec_params import PAD, SasRecParams, Scores

log = logging.getLogger(__name__)
POST_EPS = 1e-12
"""RecBole's layer_norm_eps."""
Window = tuple[list[int], int]
"""Items (at most max_len + 1) and how many of its first targets are not trained on here."""


class SasRecNet(nn.Module):
    """The network in either layout of `SasRecParams.layout`. The state dict's names are the
    same in both (torch's encoder layers), plus `emb_norm` ("post") or `norm` ("pre")."""

    def __init__(self, n_items: int, p: SasRecParams) -> None:
        super().__init__()
        post = p.layout == "post"
        self.items = nn.Embedding(n_items + 1, p.dim, padding_idx=PAD)
        self.positions = nn.Embedding(p.max_len, p.dim)
        self.dropout = nn.Dropout(p.dropout)
        layer = nn.TransformerEncoderLayer(
            p.dim, p.heads, p.inner, p.dropout, activation="gelu", batch_first=True,
            norm_first=not post, layer_norm_eps=POST_EPS if post else 1e-5,
        )  # fmt: skip
        if post:  # RecBole's feed-forward has no dropout between its two layers
            layer.dropout = nn.Identity()  # type: ignore[assignment]
        self.encoder = nn.TransformerEncoder(layer, p.blocks, enable_nested_tensor=False)
        self.norm: nn.Module = nn.Identity() if post else nn.LayerNorm(p.dim)
        self.emb_norm: nn.Module = nn.LayerNorm(p.dim, eps=POST_EPS) if post else nn.Identity()
        self.heads, self.newest_first = p.heads, p.positions == "newest"
        if post:
            self.apply(_recbole_init)
        else:
            nn.init.normal_(self.items.weight, std=p.dim**-0.5)
        with torch.no_grad():
            self.items.weight[PAD].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(batch, len) item indices, left-padded -> (batch, len, dim) states."""
        x = self.emb_norm(self.items(seq) + self.positions(self.position_ids(seq)))
        x = self.dropout(x) * (seq != PAD).unsqueeze(-1)
        return self.norm(self.encoder(x, mask=self.mask(seq)))

    def position_ids(self, seq: torch.Tensor) -> torch.Tensor:
        """Newest first: the newest item is position 0 whatever the padding. Oldest first:
        each row's first real item is position 0 (padding clamped to 0, never attended)."""
        length = seq.shape[1]
        if self.newest_first:
            return torch.arange(length - 1, -1, -1, device=seq.device).unsqueeze(0)
        pads = (seq == PAD).long().cumprod(dim=1).sum(dim=1, keepdim=True)
        return (torch.arange(length, device=seq.device).unsqueeze(0) - pads).clamp(min=0)

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


def _recbole_init(module: nn.Module) -> None:
    """RecBole's `_init_weights`: normal(0, 0.02) weights, zero biases, LayerNorms at 1/0."""
    if isinstance(module, nn.MultiheadAttention):
        nn.init.normal_(module.in_proj_weight, std=0.02)
        nn.init.zeros_(module.in_proj_bias)
    elif isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class _threads:
    """torch's thread count for a block, restored afterwards."""

    def __init__(self, n: int) -> None:
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)


@dataclass
class Trained:
    net: SasRecNet
    weights: dict[str, np.ndarray]
    losses: list[float] = field(default_factory=list)
    valid_ndcg: list[float] = field(default_factory=list)
    """Full-sort NDCG@10 (x100) of the held-out last items after each epoch."""
    best_epoch: int = 0
    seconds: float = 0.0


def windows(seq: Sequence[int], max_len: int, stride: int) -> list[Window]:
    """Training windows of one sequence: together they make every item after the first a
    target exactly once, each with at least `max_len - stride` items of context (all of
    them in the first window)."""
    last = len(seq) - 1  # index of the last target
    if last < 1:
        return []
    if last <= max_len:
        return [(list(seq), 0)]
    ends = list(range(last, max_len, -stride)) + [max_len]
    found = []
    for k, end in enumerate(ends):
        start = end - max_len  # inputs seq[start:end], targets seq[start + 1 : end + 1]
        covered = ends[k + 1] if k + 1 < len(ends) else 0  # targets up to here: other windows
        found.append((list(seq[start : end + 1]), max(covered - start, 0)))
    return found


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


def full_sort_ndcg(
    net: SasRecNet, held: Sequence[tuple[Sequence[int], int]], n_items: int, threads: int
) -> float:
    """Mean NDCG@10 (x100) of each held-out item among all items, the history's own masked
    (RecBole's full-sort evaluation)."""
    if not held:
        return math.nan
    scores = scores_many(net, [h for h, _ in held], n_items, threads, 512)
    gains = []
    for row, (history, target) in enumerate(held):
        s = scores[row]
        mine = s[target - 1]
        s[[i - 1 for i in history]] = -np.inf
        rank = 1 + int((s > mine).sum())
        gains.append(1.0 / math.log2(rank + 1) if rank <= 10 else 0.0)
    return round(100 * float(np.mean(gains)), 3)


def _epoch(net: SasRecNet, optimizer: torch.optim.Optimizer, batches: list[list[Window]]) -> float:
    loss_fn = nn.CrossEntropyLoss()
    total = 0.0
    net.train()
    for chunk in batches:
        length = max(len(w) for w, _ in chunk) - 1
        inputs = _left_pad([w[:-1] for w, _ in chunk], length)
        targets = _left_pad([[PAD] * skip + w[1 + skip :] for w, skip in chunk], length)
        real = targets != PAD
        logits = net.logits(net(inputs)[real])  # only positions trained on in this window
        loss = loss_fn(logits, targets[real])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
    net.eval()
    return round(total / max(len(batches), 1), 4)


def train(n_items: int, encoded: Sequence[Sequence[int]], p: SasRecParams) -> Trained:
    """A network fitted on encoded sequences (item indices from 1, oldest first)."""
    torch.manual_seed(p.seed)
    net = SasRecNet(n_items, p)
    net.eval()
    held: list[tuple[list[int], int]] = []
    if p.patience > 0:
        held = [(list(s[:-1][-p.max_len :]), s[-1]) for s in encoded if len(s) >= 3]
        encoded = [s[:-1] if len(s) >= 3 else s for s in encoded]
    every = [w for s in encoded for w in windows(s, p.max_len, p.stride)]
    found = Trained(net, weights_of(net))
    if not every:
        return found
    rng = np.random.default_rng(p.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=p.lr)
    started, best = time.perf_counter(), -1.0
    with _threads(p.threads):
        for epoch in range(1, p.epochs + 1):
            order = rng.permutation(len(every))
            batches = [[every[i] for i in order[k : k + p.batch_size]]
                       for k in range(0, len(order), p.batch_size)]  # fmt: skip
            found.losses.append(_epoch(net, optimizer, batches))
            if not held:
                continue
            paused = time.perf_counter()
            ndcg = full_sort_ndcg(net, held, n_items, p.threads)
            started += time.perf_counter() - paused  # validation is not training time
            found.valid_ndcg.append(ndcg)
            log.info("epoch %d loss %.4f valid NDCG@10 %.2f", epoch, found.losses[-1], ndcg)
            if ndcg > best:
                best, found.best_epoch, found.weights = ndcg, epoch, weights_of(net)
            elif epoch - found.best_epoch >= p.patience:
                break
    if held:
        net.load_state_dict({k: torch.from_numpy(v) for k, v in found.weights.items()})
    else:
        found.weights, found.best_epoch = weights_of(net), len(found.losses)
    found.seconds = round(time.perf_counter() - started, 2)
    return found


def load_legacy(path: Path) -> dict[str, object]:
    """A model saved with `torch.save` before serving went numpy-only."""
    return dict(torch.load(path, weights_only=True))
