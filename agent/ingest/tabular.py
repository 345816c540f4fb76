"""Any csv/tsv or JSON Lines file, with a column mapping given on the command line.

`mapping` maps personae's field names to the file's column names; fields not mapped are
looked up under their own name. For items and users, columns that map to no field are kept
as attributes; for interactions they are ignored (logs often carry bulky extra columns).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.ingest.fields import (
    MAX_ATTRIBUTE_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_REVIEW_CHARS,
    MAX_TITLE_CHARS,
    RowError,
    parse_id,
    parse_list,
    parse_rating,
    parse_text,
    parse_timestamp,
    parse_year,
    shown,
)
from agent.ingest.jsonl import read_jsonl
from agent.ingest.rows import FormatError, ReadContext, Record, Rejected, Row
from agent.ingest.table import Table, convert, read_table
from agent.schemas import EventType, Interaction, Item, User


class Kind(StrEnum):
    INTERACTIONS = "interactions"
    ITEMS = "items"
    USERS = "users"


FIELDS: dict[Kind, tuple[tuple[str, ...], tuple[str, ...]]] = {
    Kind.INTERACTIONS: (
        ("user_id", "item_id", "timestamp"),
        ("rating", "review_title", "review_text", "event_type"),
    ),
    Kind.ITEMS: (("item_id",), ("title", "categories", "description", "year")),
    Kind.USERS: (("user_id",), ()),
}
"""(required, optional) fields per kind of file."""


@dataclass(frozen=True)
class TabularOptions:
    kind: Kind = Kind.INTERACTIONS
    mapping: dict[str, str] = field(default_factory=dict)
    delimiter: str = ","
    event_type: EventType = EventType.RATING
    rating_range: tuple[float, float] = (0.0, 5.0)
    category_separator: str = "|"
    time_unit: str = "auto"

    def column(self, name: str) -> str:
        return self.mapping.get(name, name)

    def check(self) -> None:
        required, optional = FIELDS[self.kind]
        unknown = set(self.mapping) - set(required) - set(optional)
        if unknown:
            raise FormatError(
                f"cannot map {', '.join(sorted(unknown))} for {self.kind} files; fields are "
                f"{', '.join(required + optional)}"
            )


def read_csv(paths: Sequence[Path], ctx: ReadContext, options: TabularOptions) -> Iterator[Row]:
    options.check()
    required = [options.column(name) for name in FIELDS[options.kind][0]]
    table = Table(f"a {options.kind} file", options.delimiter, required)
    build = _builder(options)
    for path in paths:
        for row in read_table(path, table, ctx):
            if isinstance(row, Rejected):
                yield row
            else:
                yield from convert(row.source, row.raw, build, row.values)


def read_jsonl_files(
    paths: Sequence[Path], ctx: ReadContext, options: TabularOptions
) -> Iterator[Row]:
    options.check()
    required = [options.column(name) for name in FIELDS[options.kind][0]]
    expected = f"a JSON Lines {options.kind} file with keys {', '.join(required)}"
    build = _builder(options)
    for path in paths:
        first = True
        for row in read_jsonl(path, ctx, expected):
            if isinstance(row, Rejected):
                yield row
                continue
            if first and not set(required) <= set(row.values):
                missing = ", ".join(key for key in required if key not in row.values)
                raise FormatError(f"{row.source}: expected {expected}; missing {missing}")
            first = False
            yield from convert(row.source, row.raw, build, row.values)


def _builder(options: TabularOptions) -> Callable[[dict[str, Any]], Record]:
    builders: dict[Kind, Callable[[dict[str, Any], TabularOptions], Record]] = {
        Kind.INTERACTIONS: _interaction,
        Kind.ITEMS: _item,
        Kind.USERS: _user,
    }
    build = builders[options.kind]

    def run(values: dict[str, Any]) -> Record:
        return build(values, options)

    return run


def _get(values: dict[str, Any], options: TabularOptions, name: str) -> Any:
    """The raw value of a field; None when absent, null or blank."""
    value = values.get(options.column(name))
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _need(values: dict[str, Any], options: TabularOptions, name: str) -> Any:
    value = _get(values, options, name)
    if value is None:
        raise RowError(f"missing field: {options.column(name)!r} is empty or absent")
    return value


def _text(values: dict[str, Any], options: TabularOptions, name: str, max_chars: int) -> str:
    one_line = max_chars <= MAX_TITLE_CHARS
    return parse_text(
        _get(values, options, name), options.column(name), max_chars, one_line=one_line
    )


def _interaction(values: dict[str, Any], options: TabularOptions) -> Interaction:
    rating = _get(values, options, "rating")
    event = _get(values, options, "event_type")
    if event is not None and not isinstance(event, str):
        raise RowError(
            f"bad type: {options.column('event_type')!r} is {shown(event)}, expected a string"
        )
    try:
        event_type = EventType(event.strip().lower()) if event is not None else options.event_type
    except ValueError:
        allowed = ", ".join(e.value for e in EventType)
        raise RowError(f"bad type: event type {shown(event)} is not one of {allowed}") from None
    column = options.column("timestamp")
    return Interaction(
        user_id=parse_id(_need(values, options, "user_id"), options.column("user_id")),
        item_id=parse_id(_need(values, options, "item_id"), options.column("item_id")),
        timestamp=parse_timestamp(_need(values, options, "timestamp"), column, options.time_unit),
        event_type=event_type,
        rating=None
        if rating is None
        else parse_rating(rating, *options.rating_range, field=options.column("rating")),
        review_title=_text(values, options, "review_title", MAX_TITLE_CHARS) or None,
        review_text=_text(values, options, "review_text", MAX_REVIEW_CHARS) or None,
    )


def _item(values: dict[str, Any], options: TabularOptions) -> Item:
    item_id = parse_id(_need(values, options, "item_id"), options.column("item_id"))
    column = options.column("categories")
    categories = _get(values, options, "categories")
    if isinstance(categories, str):
        text = parse_text(categories, column, MAX_ATTRIBUTE_CHARS * 4, one_line=True)
        categories = text.split(options.category_separator)
    return Item(
        item_id=item_id,
        title=_text(values, options, "title", MAX_TITLE_CHARS) or item_id,
        categories=parse_list(categories, column),
        description=_text(values, options, "description", MAX_DESCRIPTION_CHARS),
        year=parse_year(_get(values, options, "year"), options.column("year")),
        attributes=_rest(values, options),
    )


def _user(values: dict[str, Any], options: TabularOptions) -> User:
    user_id = parse_id(_need(values, options, "user_id"), options.column("user_id"))
    return User(user_id=user_id, attributes=_rest(values, options))


def _rest(values: dict[str, Any], options: TabularOptions) -> dict[str, Any]:
    """Columns that no field maps to, kept as attributes: scalars only (a JSON list or
    object there is left out, as documented), strings bounded and cleaned like all text."""
    required, optional = FIELDS[options.kind]
    used = {options.column(name) for name in required + optional}
    kept: dict[str, Any] = {}
    for key, value in values.items():
        if key in used:
            continue
        name = parse_text(key, "column name", MAX_ATTRIBUTE_CHARS // 10, one_line=True)
        if isinstance(value, str):
            value = parse_text(value, name, MAX_ATTRIBUTE_CHARS, one_line=True)
        elif isinstance(value, float) and not math.isfinite(value):
            raise RowError(f"bad type: {name!r} is {value}, not a finite number")
        if name and isinstance(value, str | int | float | bool) and value != "":
            kept[name] = value
    return kept
