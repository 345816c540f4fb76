"""Dense retrieval: the profile's interests and summary, embedded, against the item vectors.

`DenseItems` reads the vectors from the item snapshot when there is a current one, so a
command that only reads never opens Chroma (`agent.store.item_snapshot` says why), and from
the item index otherwise, opened on first use."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.recommend.candidates import Allow, Scored, take
from agent.schemas.profile import UserProfile

if TYPE_CHECKING:  # chromadb is imported only when the index is really opened
    from agent.embeddings import Embedder, Vectors
    from agent.store.item_index import Hit, ItemIndex
    from agent.store.item_snapshot import ItemSnapshot


def profile_query_text(profile: UserProfile) -> str:
    """What is embedded to find items for a profile. Unlike `UserProfile.embedding_text` it
    leaves the dislikes out: in a bi-encoder, 'Dislikes: horror' pulls horror closer."""
    liked = ", ".join(i.topic for i in sorted(profile.interests, key=lambda i: -i.weight))
    parts = [f"Likes: {liked}." if liked else "", profile.intent, profile.summary]
    return " ".join(p.strip() for p in parts if p.strip())


class DenseItems:
    """Nearest items to a query vector: exact cosine over the snapshot if given, else the
    item index's approximate search. `index` may be a function that opens it."""

    def __init__(
        self,
        embedder: Embedder,
        index: ItemIndex | Callable[[], ItemIndex],
        snapshot: ItemSnapshot | None = None,
    ) -> None:
        self.embedder = embedder
        self._index = index
        self.snapshot = snapshot

    @classmethod
    def of(cls, index: ItemIndex) -> DenseItems:
        return cls(index.embedder, index)

    @property
    def index(self) -> ItemIndex:
        if callable(self._index):
            self._index = self._index()
        return self._index

    def count(self) -> int:
        if self.snapshot is not None:
            return self.snapshot.count()
        return catalog_size(self.index)

    def nearest(
        self,
        vector: Vectors,
        n: int,
        *,
        where: dict[str, Any] | None = None,
        allow: Allow | None = None,
    ) -> list[Scored]:
        """`where` filters Chroma's metadata; `allow` the snapshot's ids. Give both, or none."""
        if self.snapshot is not None:
            found = self.snapshot.nearest(vector, n, allow)
            return [Scored(item_id, round(similarity, 6)) for item_id, similarity in found]
        return to_scored(self.index.query_vectors(np.asarray([vector]), n, where)[0])


def dense_candidates(
    dense: DenseItems,
    query: str,
    n: int,
    *,
    where: dict[str, Any] | None = None,
    allow: Allow | None = None,
    exclude: Collection[str] = (),
    catalog_size: int | None = None,
) -> list[Scored]:
    """The `n` items nearest to `query` that pass the filter and are not in `exclude`, scored
    by cosine similarity. Chroma cannot exclude ids, so it is asked for `n + len(exclude)`
    (at most the catalog size) and the excluded ones are dropped here."""
    wanted = n + len(exclude)
    if catalog_size is not None:
        wanted = min(wanted, catalog_size)
    if wanted <= 0:
        return []
    vector = dense.embedder.embed([query])[0]
    return take(dense.nearest(vector, wanted, where=where, allow=allow), n, exclude)


def to_scored(hits: list[Hit]) -> list[Scored]:
    return [Scored(h.item_id, round(1.0 - h.distance, 6)) for h in hits]


def catalog_size(index: ItemIndex) -> int:
    collection = index.get_collection()
    if collection is None:
        raise LookupError(f"no {index.name!r} collection: run `personae index items`")
    return collection.count()
