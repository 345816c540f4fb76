"""A read-only copy of the item collection's vectors, so commands that only read items need
not open Chroma.

Why: opening the embedded store costs a CLI process about 0.7 s on 2 cores (chromadb's
import checks the signatures of its classes, ~0.46 s; `PersistentClient`, ~0.25 s), a third
of `personae recommend --no-rerank`.

Why it can be trusted: every write to the items collection goes through `ItemIndex`, which
deletes the snapshot before its first write and writes it again from the collection once it
is done. A snapshot on disk therefore equals the collection; a crash in between leaves none,
and readers use Chroma. It lives inside Chroma's own folder, so a store wiped or rebuilt
takes it along. Only the embedded store has one: a Chroma server can have other writers.

Search over it is exact cosine similarity (numpy over a memory-mapped matrix), where Chroma's
HNSW is approximate. A catalog over `MAX_ITEMS` keeps no snapshot (the matrix would be
~0.3 GB per 200,000 items at 384 dimensions, and scanning it costs more than HNSW).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FORMAT = 1
FOLDER = "personae-snapshots"
"""Inside Chroma's persist directory, one sub-folder per collection."""
MAX_ITEMS = 200_000

log = logging.getLogger(__name__)

Matrix = npt.NDArray[np.float32]


def snapshot_folder(persist_dir: Path, collection: str) -> Path:
    return Path(persist_dir) / FOLDER / collection


@dataclass(frozen=True)
class ItemSnapshot:
    ids: list[str]
    vectors: Matrix
    """Unit-length rows, in `ids` order."""
    model_id: str

    def count(self) -> int:
        return len(self.ids)

    def nearest(
        self, vector: Sequence[float] | Matrix, n: int, allow: Callable[[str], bool] | None = None
    ) -> list[tuple[str, float]]:
        """The `n` allowed items most similar to `vector`, with cosine similarity, best first
        (ties by id)."""
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        length = float(np.linalg.norm(query))
        similarity = self.vectors @ (query / length if length else query)
        if allow is not None:
            mask = np.fromiter((allow(i) for i in self.ids), dtype=bool, count=len(self.ids))
            similarity = np.where(mask, similarity, -np.inf)
            n = min(n, int(mask.sum()))
        n = min(n, len(self.ids))
        if n <= 0:
            return []
        top = np.argpartition(-similarity, n - 1)[:n]
        tied = np.flatnonzero(similarity >= similarity[top].min())  # ties at the cut, by id
        ordered = sorted(tied.tolist(), key=lambda i: (-float(similarity[i]), self.ids[i]))
        return [(self.ids[i], float(similarity[i])) for i in ordered[:n]]


def write_snapshot(folder: Path, ids: list[str], vectors: Matrix, model_id: str) -> None:
    """Write a finished snapshot: into a sibling temporary folder, then renamed into place."""
    if len(ids) != len(vectors):
        raise ValueError(f"snapshot of {len(ids)} ids but {len(vectors)} vectors")
    unit = unit_rows(vectors)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    np.save(staging / "vectors.npy", unit)
    (staging / "ids.json").write_text(json.dumps(ids))
    meta = {"format": FORMAT, "model_id": model_id, "count": len(ids)}
    (staging / "meta.json").write_text(json.dumps(meta))
    discard_snapshot(folder)
    staging.rename(folder)


def unit_rows(vectors: Matrix) -> Matrix:
    """Each row scaled to length 1 (a zero row stays zero)."""
    lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(lengths == 0, 1.0, lengths)).astype(np.float32)


def discard_snapshot(folder: Path) -> None:
    """Delete the snapshot (before the collection is written). Failing to is an error: a
    snapshot left behind would no longer equal the collection."""
    if folder.exists():
        shutil.rmtree(folder)


def load_snapshot(folder: Path, model_id: str) -> ItemSnapshot | None:
    """The snapshot for vectors of `model_id`, or None (then read Chroma): none written, for
    another model or format, or damaged (warned)."""
    if not (folder / "meta.json").is_file():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT or meta.get("model_id") != model_id:
            return None
        ids = json.loads((folder / "ids.json").read_text())
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    except (OSError, ValueError, AttributeError) as err:
        log.warning("item snapshot %s is unreadable (%s): reading Chroma instead", folder, err)
        return None
    if not isinstance(ids, list) or vectors.ndim != 2 or len(ids) != len(vectors):
        log.warning("item snapshot %s does not match its ids: reading Chroma instead", folder)
        return None
    if len(ids) != meta.get("count"):
        log.warning("item snapshot %s is incomplete: reading Chroma instead", folder)
        return None
    return ItemSnapshot([str(i) for i in ids], vectors, model_id)
