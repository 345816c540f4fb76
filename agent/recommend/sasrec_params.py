"""What both sides of the SASRec retriever share: its settings and the padding index.

The dependency runs one way: `agent.recommend.sequential` (the model, numpy scoring, the fit
entry point) imports `agent.recommend.sasrec_torch` (the network and its training, torch) only
to train, and both import this module; `sasrec_torch` never imports `sequential`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float32]
PAD = 0


@dataclass(frozen=True)
class SasRecParams:
    """RecBole's SASRec.yaml as LLMRank runs it (2 blocks, 2 heads, hidden 64, inner 256,
    full cross-entropy over the catalog, 50 items, early stopping on full-sort NDCG@10 of each
    sequence's held-out last item with patience 10), except where ML-100K's validation events
    chose otherwise: with its dropout 0.5 and lr 1e-3 this (pre-norm) network stays on the
    popularity plateau (loss 6.8, validation NDCG@10 about 3 after 15 epochs, stopped by the
    patience); dropout 0.2 and lr 2e-3 leave it by epoch 10 and reach about 9 by epoch 45."""

    max_len: int = 50
    """Most recent items a user is represented by (the context of every training target)."""
    dim: int = 64
    blocks: int = 2
    heads: int = 2
    inner: int = 256
    """Feed-forward width of each block."""
    dropout: float = 0.2
    epochs: int = 200
    """At most this many epochs (early stopping usually ends training well before)."""
    patience: int = 10
    """Stop after this many epochs without a better validation NDCG@10 and keep the best
    epoch's weights; 0: no validation, train `epochs` epochs on every item."""
    batch_size: int = 128
    """Training windows per step."""
    stride: int = 25
    """Windows over a sequence longer than `max_len + 1` start every `stride` items, so every
    item is a target once with at least `max_len - stride` items of context."""
    lr: float = 2e-3
    seed: int = 0
    threads: int = 1
    """torch threads while training and scoring (the build machines are shared)."""
