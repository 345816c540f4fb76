"""Query embeddings remembered on disk, so a command that needs a few vectors for texts it has
seen before does not load the embedding model.

`personae recommend` embeds one text per user (the profile's interests, intent and summary).
Loading sentence-transformers and its model costs seconds (torch alone is ~1-3 s to import on
2 cores), the embedding itself milliseconds. `CachedEmbedder` wraps any `Embedder`: a text
seen before with the same `model_id` is read back from `folder/<hash>.npy`; the others are
embedded by the wrapped embedder (loaded only then) and written for next time. The key is a
hash of the model id and the exact text, so a new profile version or another model is simply a
miss. A damaged file is a miss too (re-embedded and rewritten, with a warning line).

Not for bulk indexing (one file per text): wrap the embedder only where queries are embedded.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from agent.embeddings import Embedder, Vectors

log = logging.getLogger(__name__)

FOLDER = "cache/query-vectors"
"""Under data_dir."""


def cache_folder(data_dir: Path) -> Path:
    return Path(data_dir) / FOLDER


class CachedEmbedder:
    def __init__(self, inner: Embedder, folder: Path) -> None:
        self.inner = inner
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def key(self, text: str) -> str:
        return hashlib.sha256(f"{self.model_id}\0{text}".encode()).hexdigest()[:32]

    def _read(self, path: Path) -> Vectors | None:
        if not path.is_file():
            return None
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            log.warning("query vector cache: %s unreadable (%s); embedding again", path.name, err)
            return None
        if vector.ndim != 1 or vector.dtype != np.float32:
            log.warning("query vector cache: %s is not a float32 vector; embedding again", path)
            return None
        return vector

    def _write(self, path: Path, vector: Vectors) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, vector.astype(np.float32), allow_pickle=False)
        tmp.replace(path)

    def embed(self, texts: Sequence[str]) -> Vectors:
        found: dict[int, Vectors] = {}
        missing: list[int] = []
        for row, text in enumerate(texts):
            vector = self._read(self.folder / f"{self.key(text)}.npy")
            if vector is None:
                missing.append(row)
            else:
                found[row] = vector
        self.hits += len(found)
        self.misses += len(missing)
        if missing:
            computed = self.inner.embed([texts[row] for row in missing])
            for row, vector in zip(missing, computed, strict=True):
                found[row] = vector
                self._write(self.folder / f"{self.key(texts[row])}.npy", vector)
        if not found:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[row] for row in range(len(texts))]).astype(np.float32)
