"""Test embedders beyond `agent.embeddings.HashEmbedder` (plumbing, never quality)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


class SpreadEmbedder:
    """Deterministic and input-dependent, like `HashEmbedder`, but every text gets its own
    direction: a standard normal vector seeded by the text's digest, so distinct texts are
    far apart (cosine distance about 1 in 16 dimensions) instead of sharing hashed tokens."""

    dim = 16
    model_id = "spread-16"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            row = np.random.default_rng(seed).standard_normal(self.dim)
            rows.append(row / np.linalg.norm(row))
        return np.asarray(rows, dtype=np.float32)
