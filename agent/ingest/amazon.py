"""Amazon Reviews JSONL (optionally .gz) in the 2018 and the 2023 field layouts, reviews
plus item metadata. Each file's layout is read off its first record; metadata files are
loaded before review files so that reviews of unknown items are caught.

2018 reviews: reviewerID, asin, overall, reviewText, summary, unixReviewTime (reviewTime)
2018 meta:    asin, title, category, description, brand, main_cat, price
2023 reviews: user_id, parent_asin (asin), rating, title, text, timestamp (ms)
2023 meta:    parent_asin, title, main_category, categories, description, features, store
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.ingest.fields import (
    MAX_ATTRIBUTE_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_REVIEW_CHARS,
    MAX_TITLE_CHARS,
    RowError,
    find_year,
    parse_id,
    parse_list,
    parse_rating,
    parse_text,
    parse_timestamp,
    shown,
)
from agent.ingest.jsonl import read_jsonl
from agent.ingest.rows import FormatError, ReadContext, Record, Rejected, Row
from agent.ingest.table import convert
from agent.schemas import EventType, Interaction, Item

RATING_RANGE = (1.0, 5.0)
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
    return parse_id(_need(values, key), key)


def _rating(values: dict[str, Any], key: str) -> float | None:
    value = values.get(key)
    return None if value is None else parse_rating(value, *RATING_RANGE, field=key)


def _title(values: dict[str, Any], key: str) -> str:
    return parse_text(values.get(key), key, MAX_TITLE_CHARS, one_line=True)


def _review(values: dict[str, Any], key: str) -> str | None:
    return parse_text(values.get(key), key, MAX_REVIEW_CHARS) or None


def _review_2018(v: dict[str, Any]) -> Interaction:
    if v.get("unixReviewTime") is not None:
        moment = parse_timestamp(v["unixReviewTime"], "unixReviewTime", unit="s")
    else:
        moment = _review_time(_need(v, "reviewTime"))
    text = _review(v, "reviewText")
    return Interaction(
        user_id=_id(v, "reviewerID"),
        item_id=_id(v, "asin"),
        timestamp=moment,
        event_type=EventType.REVIEW if text else EventType.RATING,
        rating=_rating(v, "overall"),
        review_title=_title(v, "summary") or None,
        review_text=text,
        attributes=_scalars(v, ("verified", "vote")),
    )


def _review_time(value: Any) -> datetime:
    """2018's human-readable 'MM DD, YYYY' date, used when unixReviewTime is absent."""
    if not isinstance(value, str) or len(value) > 40:
        raise RowError(f"bad timestamp: 'reviewTime' is {shown(value)}, expected 'MM DD, YYYY'")
    try:
        return datetime.strptime(value.strip(), "%m %d, %Y").replace(tzinfo=UTC)
    except ValueError:
        raise RowError(
            f"bad timestamp: 'reviewTime' is {shown(value)}, expected 'MM DD, YYYY'"
        ) from None


def _review_2023(v: dict[str, Any]) -> Interaction:
    item_key = "parent_asin" if v.get("parent_asin") not in (None, "") else "asin"
    text = _review(v, "text")
    extra = tuple(key for key in ("asin", "helpful_vote", "verified_purchase") if key != item_key)
    return Interaction(
        user_id=_id(v, "user_id"),
        item_id=_id(v, item_key),
        timestamp=parse_timestamp(_need(v, "timestamp"), unit="ms"),
        event_type=EventType.REVIEW if text else EventType.RATING,
        rating=_rating(v, "rating"),
        review_title=_title(v, "title") or None,
        review_text=text,
        attributes=_scalars(v, extra),
    )


def _meta_2018(v: dict[str, Any]) -> Item:
    item_id = _id(v, "asin")
    categories = parse_list(v.get("category"), "category")
    main = parse_text(v.get("main_cat"), "main_cat", MAX_ATTRIBUTE_CHARS, one_line=True)
    date = parse_text(v.get("date"), "date", MAX_ATTRIBUTE_CHARS, one_line=True)
    return Item(
        item_id=item_id,
        title=_title(v, "title") or item_id,
        categories=categories or [main],
        description=_describe(v, "description", "feature"),
        year=find_year(date[-4:] or None),  # free text such as 'June 5, 2014', often junk
        attributes=_scalars(v, ("brand", "main_cat", "price")),
    )


def _meta_2023(v: dict[str, Any]) -> Item:
    item_id = _id(v, "parent_asin")
    categories = parse_list(v.get("categories"), "categories")
    main = parse_text(v.get("main_category"), "main_category", MAX_ATTRIBUTE_CHARS, one_line=True)
    return Item(
        item_id=item_id,
        title=_title(v, "title") or item_id,
        categories=categories or [main],
        description=_describe(v, "description", "features"),
        attributes=_scalars(
            v, ("store", "main_category", "price", "average_rating", "rating_number")
        ),
    )


def _describe(values: dict[str, Any], *keys: str) -> str:
    parts = [parse_text(values.get(key), key, MAX_DESCRIPTION_CHARS, lists=True) for key in keys]
    return parse_text(" ".join(part for part in parts if part), keys[0], MAX_DESCRIPTION_CHARS)


def _scalars(
    values: dict[str, Any], keys: tuple[str, ...]
) -> dict[str, str | int | float | bool | None]:
    """Optional metadata kept as attributes when it is a scalar; a list or object there
    (the 2018 files hold price as text, sometimes HTML) is not an attribute and is left out.
    Strings are bounded and cleaned like every text."""
    kept: dict[str, str | int | float | bool | None] = {}
    for key in keys:
        value = values.get(key)
        if isinstance(value, str):
            kept[key] = parse_text(value, key, MAX_ATTRIBUTE_CHARS, one_line=True)
        elif isinstance(value, int | float | bool) and (
            not isinstance(value, float) or math.isfinite(value)
        ):
            kept[key] = value
    return kept


_BUILDERS: dict[Layout, Callable[[dict[str, Any]], Record]] = {
    Layout.REVIEWS_2018: _review_2018,
    Layout.REVIEWS_2023: _review_2023,
    Layout.META_2018: _meta_2018,
    Layout.META_2023: _meta_2023,
}
