"""Any csv/tsv or JSON Lines file, with a column mapping given on the command line.

`mapping` maps personae's field names to the file's column names; fields not mapped are
looked up under their own name. For items and users, columns that map to no field are kept
as attributes; for interactions they are ignored (logs often carry bulky extra columns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
    value = values.get(options.column(name))
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value.strip() if isinstance(value, str) else value


def _need(values: dict[str, Any], options: TabularOptions, name: str) -> Any:
    value = _get(values, options, name)
    if value is None:
        raise RowError(f"missing field: {options.column(name)!r} is empty or absent")
    return value


def _interaction(values: dict[str, Any], options: TabularOptions) -> Interaction:
    rating = _get(values, options, "rating")
    event = _get(values, options, "event_type")
    try:
        event_type = EventType(str(event).lower()) if event is not None else options.event_type
    except ValueError:
        allowed = ", ".join(e.value for e in EventType)
        raise RowError(f"bad type: event type {event!r} is not one of {allowed}") from None
    column = options.column("timestamp")
    return Interaction(
        user_id=str(_need(values, options, "user_id")),
        item_id=str(_need(values, options, "item_id")),
        timestamp=parse_timestamp(_need(values, options, "timestamp"), column, options.time_unit),
        event_type=event_type,
        rating=None
        if rating is None
        else parse_rating(rating, *options.rating_range, field=options.column("rating")),
        review_title=text_of(_get(values, options, "review_title")) or None,
        review_text=text_of(_get(values, options, "review_text")) or None,
    )


def _item(values: dict[str, Any], options: TabularOptions) -> Item:
    item_id = str(_need(values, options, "item_id"))
    categories = _get(values, options, "categories")
    if isinstance(categories, str):
        categories = categories.split(options.category_separator)
    year = _get(values, options, "year")
    return Item(
        item_id=item_id,
        title=text_of(_get(values, options, "title")) or item_id,
        categories=[str(c) for c in categories or []],
        description=text_of(_get(values, options, "description")),
        year=year if isinstance(year, int) else parse_year(None if year is None else str(year)),
        attributes=_rest(values, options),
    )


def _user(values: dict[str, Any], options: TabularOptions) -> User:
    return User(user_id=str(_need(values, options, "user_id")), attributes=_rest(values, options))


def _rest(values: dict[str, Any], options: TabularOptions) -> dict[str, Any]:
    """Columns that no field maps to, kept as attributes (scalars only)."""
    required, optional = FIELDS[options.kind]
    used = {options.column(name) for name in required + optional}
    return {
        key: value.strip() if isinstance(value, str) else value
        for key, value in values.items()
        if key not in used and isinstance(value, str | int | float | bool) and value != ""
    }
