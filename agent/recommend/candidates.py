"""What every retriever returns: item ids with a score, best first."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum


class Source(StrEnum):
    DENSE = "dense"
    COLLABORATIVE = "collaborative"
    POPULARITY = "popularity"


@dataclass(frozen=True)
class Scored:
    item_id: str
    score: float


Allow = Callable[[str], bool]
"""Whether an item id passes the metadata filters (None: every item does)."""


def take(
    ranked: Iterable[Scored], n: int, exclude: Collection[str] = (), allow: Allow | None = None
) -> list[Scored]:
    """The first `n` of `ranked` that are neither excluded nor filtered out."""
    kept: list[Scored] = []
    for hit in ranked:
        if len(kept) >= n:
            break
        if hit.item_id in exclude or (allow is not None and not allow(hit.item_id)):
            continue
        kept.append(hit)
    return kept
