"""What can be said about a history without an LLM, and the hash that says it changed."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from agent.schemas import Interaction, Item
from agent.schemas.profile import CategoryRating, CategoryShare, ComputedFacts

TOP_CATEGORIES = 5
MIN_RATED = 3
"""A category or decade needs this many rated items for its mean rating to be shown."""


def history_hash(history: Sequence[Interaction]) -> str:
    """Stable over re-ingests; changes when any event of the history changes."""
    digest = hashlib.sha256()
    for event in history:
        digest.update(event.model_dump_json().encode())
        digest.update(b"\n")
    return digest.hexdigest()


def compute_facts(
    history: Sequence[Interaction],
    items: Mapping[str, Item],
    newest_event: datetime | None,
) -> ComputedFacts:
    ratings = [e.rating for e in history if e.rating is not None]
    counts: Counter[str] = Counter()
    for event in history:
        item = items.get(event.item_id)
        if item is not None:
            counts.update(item.categories)
    total = sum(counts.values())
    top = [
        CategoryShare(category=name, share=round(n / total, 3))
        for name, n in counts.most_common(TOP_CATEGORIES)
    ]
    rated = [(items.get(e.item_id), e.rating) for e in history if e.rating is not None]
    last = history[-1].timestamp if history else None
    days = (newest_event - last).total_seconds() / 86400 if last and newest_event else None
    return ComputedFacts(
        event_count=len(history),
        rated_count=len(ratings),
        rating_mean=round(sum(ratings) / len(ratings), 3) if ratings else None,
        review_count=sum(1 for e in history if e.review_text),
        top_categories=top,
        first_event=history[0].timestamp if history else None,
        last_event=last,
        days_since_last=round(days, 1) if days is not None else None,
        five_point=bool(ratings) and all(1 <= r <= 5 for r in ratings),
        category_ratings=mean_ratings(
            (c, r) for item, r in rated if item is not None for c in item.categories
        ),
        era_ratings=mean_ratings(
            (f"{item.year // 10 * 10}s", r) for item, r in rated if item is not None and item.year
        ),
    )


def mean_ratings(pairs: Iterable[tuple[str, float]]) -> list[CategoryRating]:
    """Mean rating per name with at least `MIN_RATED` ratings, most rated first."""
    grouped: dict[str, list[float]] = {}
    for name, rating in pairs:
        grouped.setdefault(name, []).append(rating)
    found = [
        CategoryRating(name=name, mean=round(sum(v) / len(v), 2), count=len(v))
        for name, v in grouped.items()
        if len(v) >= MIN_RATED
    ]
    return sorted(found, key=lambda c: (-c.count, c.name))
