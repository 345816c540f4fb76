"""The `profiles` collection in Chroma: one vector per user (their latest profile), with the
profile JSON as metadata. Derived from the record, so it can always be rebuilt from it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.errors import NotFoundError

from agent.embeddings import Embedder, Vectors
from agent.schemas.profile import UserProfile
from agent.store.layout import PROFILES_COLLECTION

COLLECTION = PROFILES_COLLECTION


@dataclass(frozen=True)
class SimilarUser:
    user_id: str
    distance: float
    profile: UserProfile


def profile_metadata(profile: UserProfile) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "user_id": profile.user_id,
        "version": profile.provenance.version,
        "confidence": profile.confidence,
        "profile": profile.model_dump_json(),
    }
    if profile.interests:
        metadata["interests"] = [i.topic for i in profile.interests]
    return metadata


class ProfileIndex:
    def __init__(self, client: ClientAPI, embedder: Embedder, name: str = COLLECTION) -> None:
        self.client = client
        self.embedder = embedder
        self.name = name

    def get_collection(self) -> Collection | None:
        try:
            return self.client.get_collection(self.name)
        except NotFoundError:
            return None

    def collection(self) -> Collection:
        existing = self.get_collection()
        if existing is not None:
            if (existing.metadata or {}).get("embedding_model") == self.embedder.model_id:
                return existing
            self.client.delete_collection(self.name)  # built with another model: rebuild
        return self.client.create_collection(
            self.name,
            embedding_function=None,
            metadata={"embedding_model": self.embedder.model_id, "dim": self.embedder.dim},
            configuration={"hnsw": {"space": "cosine"}},
        )

    def upsert(self, profiles: Sequence[UserProfile]) -> None:
        if not profiles:
            return
        vectors = self.embedder.embed([p.embedding_text() for p in profiles])
        self.collection().upsert(
            ids=[p.user_id for p in profiles],
            embeddings=vectors,
            metadatas=[profile_metadata(p) for p in profiles],
            documents=[p.embedding_text() for p in profiles],
        )

    def versions(self) -> dict[str, int]:
        """user id -> profile version the index holds."""
        collection = self.get_collection()
        if collection is None:
            return {}
        found: dict[str, int] = {}
        offset, page_size = 0, self.client.get_max_batch_size()
        while True:
            page = collection.get(include=["metadatas"], limit=page_size, offset=offset)
            if not page["ids"]:
                return found
            for user_id, meta in zip(page["ids"], page["metadatas"] or [], strict=True):
                found[user_id] = int((meta or {}).get("version", 0))  # type: ignore[arg-type]
            offset += len(page["ids"])

    def sync(self, latest: Iterable[UserProfile], batch: int = 256) -> int:
        """Upsert every profile the index lacks or holds at an older version."""
        have = self.versions()
        pending: list[UserProfile] = []
        written = 0
        for profile in latest:
            if have.get(profile.user_id) != profile.provenance.version:
                pending.append(profile)
            if len(pending) >= batch:
                self.upsert(pending)
                written, pending = written + len(pending), []
        self.upsert(pending)
        return written + len(pending)

    def embedding_array(self, user_id: str) -> Vectors | None:
        vector = self.embedding(user_id)
        return None if vector is None else np.asarray([vector], dtype=np.float32)

    def embedding(self, user_id: str) -> list[float] | None:
        collection = self.get_collection()
        if collection is None:
            return None
        got = collection.get(ids=[user_id], include=["embeddings"])
        embeddings = got["embeddings"]
        if embeddings is None or len(embeddings) == 0:
            return None
        return [float(x) for x in embeddings[0]]

    def similar(self, user_id: str, n: int = 10) -> list[SimilarUser]:
        vector = self.embedding_array(user_id)
        if vector is None:
            raise LookupError(f"user {user_id} has no profile vector: run `personae profile`")
        collection = self.collection()
        result = collection.query(
            query_embeddings=vector, n_results=n + 1, include=["metadatas", "distances"]
        )
        metas = (result["metadatas"] or [[]])[0]
        dists = (result["distances"] or [[]])[0]
        return [
            SimilarUser(uid, float(d), UserProfile.model_validate_json(str(m["profile"])))
            for uid, d, m in zip(result["ids"][0], dists, metas, strict=True)
            if uid != user_id and m is not None
        ][:n]

    def delete(self, user_ids: list[str]) -> None:
        collection = self.get_collection()
        if collection is not None and user_ids:
            collection.delete(ids=user_ids)
