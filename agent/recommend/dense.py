"""Dense retrieval: the profile's interests and summary, embedded, against the item index."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from agent.recommend.candidates import Scored, take
from agent.schemas.profile import UserProfile
from agent.store.item_index import Hit, ItemIndex


def profile_query_text(profile: UserProfile) -> str:
    """What is embedded to find items for a profile. Unlike `UserProfile.embedding_text` it
    leaves the dislikes out: in a bi-encoder, 'Dislikes: horror' pulls horror closer."""
    liked = ", ".join(i.topic for i in sorted(profile.interests, key=lambda i: -i.weight))
    parts = [f"Likes: {liked}." if liked else "", profile.intent, profile.summary]
    return " ".join(p.strip() for p in parts if p.strip())


def dense_candidates(
    index: ItemIndex,
    query: str,
    n: int,
    *,
    where: dict[str, Any] | None = None,
    exclude: Collection[str] = (),
    catalog_size: int | None = None,
) -> list[Scored]:
    """The `n` items nearest to `query` that pass `where` and are not in `exclude`, scored
    by cosine similarity. Chroma cannot exclude ids, so it is asked for `n + len(exclude)`
    (at most the catalog size) and the excluded ones are dropped here."""
    wanted = n + len(exclude)
    if catalog_size is not None:
        wanted = min(wanted, catalog_size)
    if wanted <= 0:
        return []
    hits = index.query(query, n=wanted, where=where)
    return take(to_scored(hits), n, exclude)


def to_scored(hits: list[Hit]) -> list[Scored]:
    return [Scored(h.item_id, round(1.0 - h.distance, 6)) for h in hits]


def catalog_size(index: ItemIndex) -> int:
    collection = index.get_collection()
    if collection is None:
        raise LookupError(f"no {index.name!r} collection: run `personae index items`")
    return collection.count()
