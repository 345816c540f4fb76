"""`store check` and `store rebuild`: verify the Chroma item index against the record, and
rebuild it from the record when it is damaged.

Damage seen in practice: a run killed mid-index leaves items missing or stale; an embedded
store killed mid-write can be wedged (every first operation raises "Failed to apply logs
to the hnsw segment writer") or read back zero vectors for the batch in flight.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.errors import ChromaError

from agent.store.chroma import chroma_dir, is_wedged
from agent.store.item_index import Advance, IndexReport, ItemIndex, content_hash
from agent.store.item_snapshot import load_snapshot, unit_rows
from agent.store.record import RecordStore

SAMPLE = 10
"""How many example ids a report lists per kind of problem."""
PROBES = 20
"""Stored vectors queried back; each should find itself (or an identical vector) first."""
PROBE_MISSES_ALLOWED = 5
"""Misses tolerated among the probes. HNSW search is approximate: among many identical
vectors it can stop on a plateau of equal distances and never reach the probe's own cluster
(measured: 9 to 14 misses in 3,000 self-queries on 20,000 hash-embedded items with ~850
distinct vectors, whatever `n_results` or `ef_search`). A segment that disagrees with the
stored data misses on (nearly) every probe, so a few misses are search noise, not damage."""


@dataclass
class CheckReport:
    record: dict[str, int] = field(default_factory=dict)
    indexed: int = 0
    missing: int = 0
    extra: int = 0
    stale: int = 0
    zero_vectors: int = 0
    probe_misses: int = 0
    wedged: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def check(store: RecordStore, index: ItemIndex) -> CheckReport:
    report = CheckReport(record=store.counts())
    report.problems += store.integrity_problems()
    try:
        _check_index(store, index, report)
    except Exception as err:  # noqa: BLE001 - Chroma failures are findings; others re-raise
        if not (isinstance(err, ChromaError) or is_wedged(err)):
            raise
        report.wedged = is_wedged(err)
        kind = "wedged store" if report.wedged else "chroma error"
        report.problems.append(f"{kind}: {type(err).__name__}: {err}")
    return report


def _check_index(store: RecordStore, index: ItemIndex, report: CheckReport) -> None:
    collection = index.get_collection()
    if collection is None:
        if store.item_count():
            report.problems.append("item index missing: run `personae index items`")
        return
    built_with = (collection.metadata or {}).get("embedding_model")
    if built_with != index.embedder.model_id:
        report.problems.append(
            f"item index built with {built_with!r}, settings use {index.embedder.model_id!r}"
        )
    report.indexed = collection.count()
    stored, zero_ids = _scan(index, collection)
    expected = {
        item.item_id: content_hash(item, index.embedder.model_id) for item in store.iter_items()
    }
    missing = [i for i in expected if i not in stored]
    extra = [i for i in stored if i not in expected]
    stale = [i for i, h in expected.items() if i in stored and stored[i] != h]
    report.missing, report.extra, report.stale = len(missing), len(extra), len(stale)
    report.zero_vectors = len(zero_ids)
    for label, ids in (
        ("missing from index", missing),
        ("in index but not in record", extra),
        ("stale (content changed since indexed)", stale),
        ("zero or non-finite vectors", zero_ids),
    ):
        if ids:
            report.problems.append(f"{len(ids)} items {label}, e.g. {ids[:SAMPLE]}")
    if report.indexed != len(stored):
        report.problems.append(f"count() says {report.indexed} but {len(stored)} records read")
    _probe(index, collection, report)
    _check_snapshot(index, collection, report)


def _scan(index: ItemIndex, collection: Any) -> tuple[dict[str, str], list[str]]:
    stored: dict[str, str] = {}
    zero_ids: list[str] = []
    for page in index.pages(collection, include=["metadatas", "embeddings"]):
        vectors = np.asarray(page["embeddings"], dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1) if len(vectors) else np.zeros(0)
        for item_id, metadata, norm in zip(page["ids"], page["metadatas"], norms, strict=True):
            stored[item_id] = str((metadata or {}).get("content_hash", ""))
            if not np.isfinite(norm) or norm < 1e-6:
                zero_ids.append(item_id)
    return stored, zero_ids


def _probe(index: ItemIndex, collection: Any, report: CheckReport) -> None:
    """Query stored vectors back: the HNSW segment must agree with the stored data."""
    sample = collection.get(limit=PROBES, include=["embeddings"])
    if not sample["ids"]:
        return
    hits = index.query_vectors(np.asarray(sample["embeddings"]), n=1)
    missed = [
        item_id
        for item_id, found in zip(sample["ids"], hits, strict=True)
        if not found or (found[0].item_id != item_id and found[0].distance > 1e-4)
    ]
    report.probe_misses = len(missed)
    if len(missed) > min(PROBE_MISSES_ALLOWED, len(sample["ids"]) // 4):
        report.problems.append(
            f"query probe: {len(missed)} of {len(sample['ids'])} stored vectors did not find"
            f" themselves (the HNSW segment disagrees with the stored data), e.g. {missed[:SAMPLE]}"
        )


def _check_snapshot(index: ItemIndex, collection: Any, report: CheckReport) -> None:
    """The vector snapshot read-only commands use instead of Chroma must equal it."""
    folder = index.snapshot_folder()
    if folder is None or not folder.exists():
        return
    snapshot = load_snapshot(folder, index.embedder.model_id)
    ids, vectors = index.stored_vectors(collection)
    if snapshot is not None and sorted(snapshot.ids) == sorted(ids):
        position = {item_id: row for row, item_id in enumerate(snapshot.ids)}
        mine = np.asarray(snapshot.vectors)[[position[i] for i in ids]]
        if np.allclose(mine, unit_rows(vectors), atol=1e-5):
            return
    report.problems.append(
        f"item vector snapshot {folder} differs from the collection: `personae index items` "
        "writes it again"
    )


def rebuild(store: RecordStore, index: ItemIndex, advance: Advance | None = None) -> IndexReport:
    """Drop the item collection and index every item of the record again."""
    return index.rebuild(store.iter_items(), advance)


def reset_embedded_store(data_dir: Path) -> None:
    """Delete the embedded Chroma directory, for a store so wedged that even dropping a
    collection fails. Every collection in it is derived data, rebuildable from the record;
    do this before any client has opened the directory in this process."""
    shutil.rmtree(chroma_dir(data_dir))
