"""What both sides of the SASRec retriever share: its settings and the padding index.

The dependency runs one way: `agent.recommend.sequential` (the model, numpy scoring, the fit
entry point) imports `agent.recommend.sasrec_torch` (the network and its training, torch) only
to train, and both import this module; `sasrec_torch` never imports `sequential`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Scores = npt.NDArray[np.float32]
PAD = 0


@dataclass(frozen=True)
class SasRecParams:
    """RecBole's SASRec as LLMRank runs it (SASRec.yaml: 2 blocks, 2 heads, hidden 64, inner
    256, dropout 0.5 in the hidden states and the attention, lr 1e-3, full cross-entropy over
    the catalog, 50 items; early stopping on full-sort NDCG@10 of each sequence's held-out last
    item with patience 10), in RecBole's post-norm layout with its initialisation. Training
    targets come in windows (`stride`) instead of one sample per prefix, which with causal
    attention and positions counted from the oldest item gives each target the same input as
    RecBole's prefix sample (stride 1 would be exact) for far fewer forward passes.

    Chosen on ML-100K's validation events (`bench/sasrec_valid.py`, 943 users, NDCG@10 x100 of
    each user's validation event on llmrank / LLMRank-style lists / full sort): this layout
    scores 76.2 / 72.6 / 11.6 (best epoch 57, 10-15 s an epoch on a shared core) against 72.4 /
    69.3 / 9.1 for the earlier pre-norm network (dropout 0.2, lr 2e-3, newest item at position
    0, best epoch 74; with dropout 0.5 and lr 1e-3 it stayed on the popularity plateau). Stride
    10 stopped earlier and scored 75.6 / 72.1 / 10.5; refitting on every event for the best
    epoch count (what `rank fit` serves) scored alike, 76.2 / 72.0 / 12.1."""

    layout: Literal["post", "pre"] = "post"
    """"post": RecBole's blocks (item + position embedding -> LayerNorm -> dropout; each block
    attention -> dropout -> residual -> LayerNorm, FFN -> dropout -> residual -> LayerNorm,
    LayerNorm eps 1e-12), weights drawn from normal(0, 0.02). "pre": pre-norm blocks with a
    final LayerNorm (torch's eps 1e-5), item embeddings drawn with std dim**-0.5 (the models
    saved before the layout existed)."""
    positions: Literal["oldest", "newest"] = "oldest"
    """Position 0 is the oldest item of the context (RecBole; every training target sees
    positions 0..t, as a served history does) or the newest one (the earlier models)."""
    max_len: int = 50
    """Most recent items a user is represented by (the context of every training target)."""
    dim: int = 64
    blocks: int = 2
    heads: int = 2
    inner: int = 256
    """Feed-forward width of each block."""
    dropout: float = 0.5
    """Of the embeddings, the attention weights and each block's two residual branches."""
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
    lr: float = 1e-3
    seed: int = 0
    threads: int = 1
    """torch threads while training and scoring (the build machines are shared)."""
