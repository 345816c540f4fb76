"""The item collection in Chroma: one record per item, embedded from title, year, categories
and description, with metadata for filters (`categories` as a string array, `year`).

`ItemIndex.refresh` makes the collection match the record: it embeds only items whose
content hash (text + metadata + model) differs from the hash stored in the collection's own
metadata, upserts by item id and deletes ids the record no longer has. The hash lives in
Chroma, not SQLite, because it must describe what the index really holds.

Every write here first deletes the read-only vector snapshot (`agent.store.item_snapshot`)
and writes it again from the collection when done, so readers can skip Chroma.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError

from agent.embeddings import Embedder, Vectors
from agent.schemas import Item
from agent.store.item_snapshot import (
    MAX_ITEMS,
    discard_snapshot,
    snapshot_folder,
    write_snapshot,
)
from agent.store.layout import ITEMS_COLLECTION

COLLECTION = ITEMS_COLLECTION
EMBED_CHUNK = 4096
"""Items embedded and upserted per round. sentence-transformers sorts each call's texts by
length to cut padding, so small chunks cost throughput (~10% at 512 on ML-100K); 4096 keeps
memory bounded (a few MB of vectors) and a killed run loses little work."""

Metadata = dict[str, Any]


def item_document(item: Item) -> str:
    """The text that is embedded for an item."""
    title = f"{item.title} ({item.year})" if item.year else item.title
    parts = [title]
    if item.categories:
        parts.append("Categories: " + ", ".join(item.categories))
    if item.description:
        parts.append(item.description)
    return ". ".join(parts)


def item_metadata(item: Item) -> Metadata:
    metadata: Metadata = {"title": item.title}
    if item.categories:
        metadata["categories"] = list(item.categories)
    if item.year is not None:
        metadata["year"] = item.year
    return metadata


def content_hash(item: Item, model_id: str) -> str:
    payload = [model_id, item_document(item), item_metadata(item)]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class IndexReport:
    total: int = 0
    embedded: int = 0
    unchanged: int = 0
    deleted: int = 0
    recreated: bool = False
    seconds: float = 0.0

    @property
    def embedded_per_second(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"embedded_per_second": round(self.embedded_per_second, 1)}


@dataclass(frozen=True)
class Hit:
    item_id: str
    distance: float
    metadata: dict[str, Any]


Advance = Callable[[int], None]


class ItemIndex:
    def __init__(self, client: ClientAPI, embedder: Embedder, name: str = COLLECTION) -> None:
        self.client = client
        self.embedder = embedder
        self.name = name
        self.max_batch = client.get_max_batch_size()

    def _collection_metadata(self) -> dict[str, str | int]:
        return {"embedding_model": self.embedder.model_id, "dim": self.embedder.dim}

    def get_collection(self) -> Collection | None:
        try:
            return self.client.get_collection(self.name)
        except NotFoundError:
            return None

    def _ensure(self) -> tuple[Collection, bool]:
        """The collection for this embedder; recreated if it was built with another model."""
        existing = self.get_collection()
        recreated = False
        if existing is not None:
            if (existing.metadata or {}).get("embedding_model") == self.embedder.model_id:
                return existing, False
            self.client.delete_collection(self.name)
            recreated = True
        collection = self.client.create_collection(
            self.name,
            embedding_function=None,
            metadata=self._collection_metadata(),
            configuration={"hnsw": {"space": "cosine"}},
        )
        return collection, recreated

    def stored_hashes(self, collection: Collection) -> dict[str, str]:
        hashes: dict[str, str] = {}
        for page in self.pages(collection, include=["metadatas"]):
            for item_id, metadata in zip(page["ids"], page["metadatas"] or [], strict=True):
                hashes[item_id] = str((metadata or {}).get("content_hash", ""))
        return hashes

    def pages(self, collection: Collection, include: list[Any]) -> Iterator[Any]:
        offset = 0
        while True:
            page = collection.get(include=include, limit=self.max_batch, offset=offset)
            if not page["ids"]:
                return
            yield page
            offset += len(page["ids"])

    def snapshot_folder(self) -> Path | None:
        """Where this collection's vector snapshot lives; None for a Chroma server."""
        chroma = self.client.get_settings()
        if not chroma.is_persistent or not chroma.persist_directory:
            return None
        return snapshot_folder(Path(chroma.persist_directory), self.name)

    def refresh(self, items: Iterable[Item], advance: Advance | None = None) -> IndexReport:
        started = time.perf_counter()
        self._discard_snapshot()
        collection, recreated = self._ensure()
        report = IndexReport(recreated=recreated)
        stored = self.stored_hashes(collection)
        seen: set[str] = set()
        pending: list[tuple[Item, str]] = []
        for item in items:
            report.total += 1
            seen.add(item.item_id)
            digest = content_hash(item, self.embedder.model_id)
            if stored.get(item.item_id) == digest:
                report.unchanged += 1
            else:
                pending.append((item, digest))
            if len(pending) >= EMBED_CHUNK:
                report.embedded += self._upsert(collection, pending)
                pending = []
            if advance is not None:
                advance(report.total)
        report.embedded += self._upsert(collection, pending)
        report.deleted = self._delete(collection, [i for i in stored if i not in seen])
        self._write_snapshot(collection)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def rebuild(self, items: Iterable[Item], advance: Advance | None = None) -> IndexReport:
        """Drop the collection and index every item again."""
        self._discard_snapshot()
        if self.get_collection() is not None:
            self.client.delete_collection(self.name)
        report = self.refresh(items, advance)
        report.recreated = True
        return report

    def _discard_snapshot(self) -> None:
        folder = self.snapshot_folder()
        if folder is not None:
            discard_snapshot(folder)

    def _write_snapshot(self, collection: Collection) -> None:
        folder = self.snapshot_folder()
        if folder is None or collection.count() > MAX_ITEMS:
            return
        ids, vectors = self.stored_vectors(collection)
        write_snapshot(folder, ids, vectors, self.embedder.model_id)

    def stored_vectors(self, collection: Collection) -> tuple[list[str], Vectors]:
        """Every id and vector the collection holds, in its order (nothing is embedded)."""
        ids: list[str] = []
        rows = []
        for page in self.pages(collection, include=["embeddings"]):
            ids.extend(page["ids"])
            rows.append(np.asarray(page["embeddings"], dtype=np.float32))
        vectors = np.concatenate(rows) if rows else np.zeros((0, self.embedder.dim), np.float32)
        return ids, vectors

    def _upsert(self, collection: Collection, batch: list[tuple[Item, str]]) -> int:
        if not batch:
            return 0
        vectors = self.embedder.embed([item_document(item) for item, _ in batch])
        for start in range(0, len(batch), self.max_batch):
            part = batch[start : start + self.max_batch]
            collection.upsert(
                ids=[item.item_id for item, _ in part],
                embeddings=vectors[start : start + len(part)],
                metadatas=[item_metadata(item) | {"content_hash": h} for item, h in part],
                documents=[item_document(item) for item, _ in part],
            )
        return len(batch)

    def _delete(self, collection: Collection, ids: list[str]) -> int:
        for start in range(0, len(ids), self.max_batch):
            collection.delete(ids=ids[start : start + self.max_batch])
        return len(ids)

    def query(self, text: str, n: int = 50, where: dict[str, Any] | None = None) -> list[Hit]:
        vector = self.embedder.embed([text])
        return self.query_vectors(vector, n, where)[0]

    def query_vectors(
        self, vectors: Any, n: int = 50, where: dict[str, Any] | None = None
    ) -> list[list[Hit]]:
        collection = self.get_collection()
        if collection is None:
            raise LookupError(f"no {self.name!r} collection: run `personae index items`")
        result = collection.query(
            query_embeddings=vectors, n_results=n, where=where, include=["metadatas", "distances"]
        )
        distances = result["distances"] or []
        metadatas = result["metadatas"] or []
        return [
            [
                Hit(item_id, float(distance), dict(metadata or {}))
                for item_id, distance, metadata in zip(ids, dists, metas, strict=True)
            ]
            for ids, dists, metas in zip(result["ids"], distances, metadatas, strict=True)
        ]
