"""Amazon Reviews JSONL (optionally .gz) in the 2018 and the 2023 field layouts, reviews
plus item metadata. Each file's layout is read off its first record; metadata files are
loaded before review files so that reviews of unknown items are caught.

2018 reviews: reviewerID, asin, overall, reviewText, summary, unixReviewTime (reviewTime)
2018 meta:    asin, title, category, description, brand, main_cat, price
2023 reviews: user_id, parent_asin (asin), rating, title, text, timestamp (ms)
2023 meta:    parent_asin, title, main_category, categories, description, features, store
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.ingest.jsonl import read_jsonl, text_of
from agent.ingest.rows import (
    FormatError,
    ReadContext,
    Record,
    Rejected,
    Row,
    RowError,
    parse_rating,
    parse_timestamp,
    parse_year,
)
from agent.ingest.table import convert
from agent.schemas import EventType, Interaction, Item

RATING_RANGE = (1.0, 5.0)
MAX_DESCRIPTION = 4000
EXPECTED = (
    "Amazon Reviews JSONL: 2018 reviews (reviewerID, asin, overall, unixReviewTime), "
    "2023 reviews (user_id, parent_asin, rating, timestamp) or their item metadata "
    "(asin/parent_asin, title)"
)


class Layout(StrEnum):
    REVIEWS_2018 = "reviews-2018"
    REVIEWS_2023 = "reviews-2023"
    META_2018 = "meta-2018"
    META_2023 = "meta-2023"


def layout_of(keys: set[str]) -> Layout | None:
    if {"reviewerID", "asin"} <= keys:
        return Layout.REVIEWS_2018
    if "user_id" in keys and keys & {"parent_asin", "asin"}:
        return Layout.REVIEWS_2023
    if "parent_asin" in keys and "title" in keys:
        return Layout.META_2023
    if "asin" in keys and "title" in keys:
        return Layout.META_2018
    return None


def _peek(path: Path, ctx: ReadContext) -> Layout:
    first = next(read_jsonl(path, ReadContext(), EXPECTED))
    assert not isinstance(first, Rejected)  # read_jsonl fails fast on a bad first line
    layout = layout_of(set(first.values))
    if layout is None:
        keys = ", ".join(sorted(first.values)[:12])
        raise FormatError(f"{first.source}: expected {EXPECTED}; found keys {keys}")
    return layout


def read(paths: Sequence[Path], ctx: ReadContext) -> Iterator[Row]:
    files = [(path, _peek(path, ctx)) for path in _expand(paths)]
    files.sort(key=lambda pair: not pair[1].startswith("meta"))
    for path, layout in files:
        build = _BUILDERS[layout]
        for row in read_jsonl(path, ctx, EXPECTED):
            if isinstance(row, Rejected):
                yield row
            else:
                yield from convert(row.source, row.raw, build, row.values)


def _expand(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.iterdir() if p.name.endswith((".jsonl", ".json", ".gz"))
            )
        else:
            found.append(path)
    if not found:
        raise FormatError(f"no .jsonl/.json/.gz files among {[str(p) for p in paths]}")
    return found


def _need(values: dict[str, Any], key: str) -> Any:
    value = values.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowError(f"missing field: {key!r} is empty or absent")
    return value


def _id(values: dict[str, Any], key: str) -> str:
    value = _need(values, key)
    if not isinstance(value, str | int):
        raise RowError(f"bad type: {key!r} is {value!r}, expected a string id")
    return str(value)


def _rating(values: dict[str, Any], key: str) -> float | None:
    value = values.get(key)
    return None if value is None else parse_rating(value, *RATING_RANGE, field=key)


def _review_2018(v: dict[str, Any]) -> Interaction:
    if v.get("unixReviewTime") is not None:
        moment = parse_timestamp(v["unixReviewTime"], "unixReviewTime", unit="s")
    else:
        moment = _review_time(_need(v, "reviewTime"))
    text = text_of(v.get("reviewText")) or None
    attributes = {
        key: v[key] for key in ("verified", "vote") if isinstance(v.get(key), str | int | bool)
    }
    return Interaction(
        user_id=_id(v, "reviewerID"),
        item_id=_id(v, "asin"),
        timestamp=moment,
        event_type=EventType.REVIEW if text else EventType.RATING,
        rating=_rating(v, "overall"),
        review_title=text_of(v.get("summary")) or None,
        review_text=text,
        attributes=attributes,
    )


def _review_time(value: Any) -> datetime:
    """2018's human-readable 'MM DD, YYYY' date, used when unixReviewTime is absent."""
    try:
        return datetime.strptime(str(value).strip(), "%m %d, %Y").replace(tzinfo=UTC)
    except ValueError:
        raise RowError(
            f"bad timestamp: 'reviewTime' is {value!r}, expected 'MM DD, YYYY'"
        ) from None


def _review_2023(v: dict[str, Any]) -> Interaction:
    item_key = "parent_asin" if v.get("parent_asin") else "asin"
    text = text_of(v.get("text")) or None
    attributes = {
        key: v[key]
        for key in ("asin", "helpful_vote", "verified_purchase")
        if isinstance(v.get(key), str | int | bool) and key != item_key
    }
    return Interaction(
        user_id=_id(v, "user_id"),
        item_id=_id(v, item_key),
        timestamp=parse_timestamp(_need(v, "timestamp"), unit="ms"),
        event_type=EventType.REVIEW if text else EventType.RATING,
        rating=_rating(v, "rating"),
        review_title=text_of(v.get("title")) or None,
        review_text=text,
        attributes=attributes,
    )


def _meta_2018(v: dict[str, Any]) -> Item:
    item_id = _id(v, "asin")
    categories = [c for c in v.get("category") or [] if isinstance(c, str)]
    return Item(
        item_id=item_id,
        title=text_of(v.get("title")) or item_id,
        categories=categories or [text_of(v.get("main_cat"))],
        description=_describe(v.get("description"), v.get("feature")),
        year=parse_year(text_of(v.get("date"))[-4:] or None),
        attributes=_scalars(v, ("brand", "main_cat", "price")),
    )


def _meta_2023(v: dict[str, Any]) -> Item:
    item_id = _id(v, "parent_asin")
    categories = [c for c in v.get("categories") or [] if isinstance(c, str)]
    return Item(
        item_id=item_id,
        title=text_of(v.get("title")) or item_id,
        categories=categories or [text_of(v.get("main_category"))],
        description=_describe(v.get("description"), v.get("features")),
        attributes=_scalars(
            v, ("store", "main_category", "price", "average_rating", "rating_number")
        ),
    )


def _describe(description: Any, features: Any) -> str:
    return " ".join(part for part in (text_of(description), text_of(features)) if part)[
        :MAX_DESCRIPTION
    ]


def _scalars(
    values: dict[str, Any], keys: tuple[str, ...]
) -> dict[str, str | int | float | bool | None]:
    return {
        key: values[key] for key in keys if isinstance(values.get(key), str | int | float | bool)
    }


_BUILDERS: dict[Layout, Callable[[dict[str, Any]], Record]] = {
    Layout.REVIEWS_2018: _review_2018,
    Layout.REVIEWS_2023: _review_2023,
    Layout.META_2018: _meta_2018,
    Layout.META_2023: _meta_2023,
}
