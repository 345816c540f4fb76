"""Metadata filters on items (`category=Drama`, `category!=Horror`, `year>=1990`,
`category=Drama|Comedy`), applied the same way everywhere: as a Chroma `where` for the dense
retriever, and as a predicate on the record's item metadata for every other source and for
fusion. The predicate mirrors Chroma's semantics, including for items missing the field:
a negation (`!=`) matches them, a comparison (`=`, `>=`, ...) does not."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agent.store.record import RecordStore

Field = Literal["category", "year"]
Op = Literal["=", "!=", ">=", "<=", ">", "<"]

_SPEC = re.compile(r"^\s*(?P<field>[a-z_]+)\s*(?P<op>>=|<=|!=|=|>|<)\s*(?P<value>.+?)\s*$", re.I)
_FIELDS = {"category": "category", "categories": "category", "genre": "category", "year": "year"}
_CHROMA_OPS = {"=": "$eq", "!=": "$ne", ">=": "$gte", "<=": "$lte", ">": "$gt", "<": "$lt"}


class FilterError(ValueError):
    """A filter that cannot be parsed or names an unknown category."""


@dataclass(frozen=True)
class ItemMeta:
    categories: frozenset[str]
    year: int | None


@dataclass(frozen=True)
class Condition:
    field: Field
    op: Op
    values: tuple[str | int, ...]
    """Alternatives: the condition holds when any of them does (`!=`: when none does)."""

    def __str__(self) -> str:
        return f"{self.field}{self.op}{'|'.join(str(v) for v in self.values)}"

    def where(self) -> dict[str, Any]:
        if self.field == "category":
            if self.op == "!=":
                parts = [{"categories": {"$not_contains": v}} for v in self.values]
                return parts[0] if len(parts) == 1 else {"$and": parts}
            parts = [{"categories": {"$contains": v}} for v in self.values]
            return parts[0] if len(parts) == 1 else {"$or": parts}
        if self.op == "=" and len(self.values) > 1:
            return {"year": {"$in": list(self.values)}}
        if self.op == "!=" and len(self.values) > 1:
            return {"year": {"$nin": list(self.values)}}
        return {"year": {_CHROMA_OPS[self.op]: self.values[0]}}

    def matches(self, meta: ItemMeta) -> bool:
        if self.field == "category":
            hit = any(v in meta.categories for v in self.values)
            return not hit if self.op == "!=" else hit
        if meta.year is None:
            return self.op == "!="
        year = meta.year
        if self.op == "=":
            return year in self.values
        if self.op == "!=":
            return year not in self.values
        bound = int(self.values[0])
        return {">=": year >= bound, "<=": year <= bound, ">": year > bound, "<": year < bound}[
            self.op
        ]


@dataclass(frozen=True)
class ItemFilter:
    """All conditions must hold."""

    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def specs(self) -> list[str]:
        return [str(c) for c in self.conditions]

    def where(self) -> dict[str, Any] | None:
        parts = [c.where() for c in self.conditions]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else {"$and": parts}

    def matches(self, meta: ItemMeta | None) -> bool:
        if not self.conditions:
            return True
        return meta is not None and all(c.matches(meta) for c in self.conditions)

    def failing(self, meta: ItemMeta | None) -> list[str]:
        """The conditions an item does not meet (for explanations)."""
        if meta is None:
            return [str(c) for c in self.conditions]
        return [str(c) for c in self.conditions if not c.matches(meta)]


def excluding(filters: ItemFilter, categories: Iterable[str]) -> ItemFilter:
    """`filters` and one more condition: none of `categories` (the user's `--never`
    categories, `agent.recommend.steer`); `filters` itself when there are none."""
    names = tuple(dict.fromkeys(categories))
    if not names:
        return filters
    return ItemFilter((*filters.conditions, Condition("category", "!=", names)))


def parse_condition(spec: str) -> Condition:
    match = _SPEC.match(spec)
    if not match:
        raise FilterError(f"cannot read filter {spec!r}: use e.g. category=Drama or year>=1990")
    field = _FIELDS.get(match["field"].lower())
    if field is None:
        raise FilterError(f"filter {spec!r}: unknown field (use category or year)")
    op: Op = match["op"]  # type: ignore[assignment]
    raw = [v.strip() for v in match["value"].split("|") if v.strip()]
    if not raw:
        raise FilterError(f"filter {spec!r} has no value")
    if field == "category":
        if op not in ("=", "!="):
            raise FilterError(f"filter {spec!r}: categories take = or != only")
        return Condition("category", op, tuple(raw))
    try:
        years = tuple(int(v) for v in raw)
    except ValueError as err:
        raise FilterError(f"filter {spec!r}: the year must be a whole number") from err
    if len(years) > 1 and op not in ("=", "!="):
        raise FilterError(f"filter {spec!r}: alternatives (a|b) only with = or !=")
    return Condition("year", op, years)


def parse_filters(specs: Iterable[str], known_categories: Iterable[str] = ()) -> ItemFilter:
    """Parse `--filter` values. With `known_categories`, category names are matched without
    regard to case and spelled as the catalog spells them (Chroma compares exactly); an
    unknown category is an error that lists the known ones."""
    known = {c.lower(): c for c in known_categories}
    conditions = []
    for spec in specs:
        condition = parse_condition(spec)
        if condition.field == "category" and known:
            condition = Condition("category", condition.op, _canonical(condition, known))
        conditions.append(condition)
    return ItemFilter(tuple(conditions))


def _canonical(condition: Condition, known: Mapping[str, str]) -> tuple[str, ...]:
    spelled = []
    for value in condition.values:
        name = known.get(str(value).lower())
        if name is None:
            listed = ", ".join(sorted(known.values()))
            raise FilterError(f"unknown category {value!r}; the catalog has: {listed}")
        spelled.append(name)
    return tuple(spelled)


def load_item_meta(record: RecordStore) -> dict[str, ItemMeta]:
    """Categories and year of every item, for filtering sources that are not Chroma."""
    rows = record.conn.execute("SELECT item_id, categories, year FROM items")
    return {row[0]: ItemMeta(frozenset(json.loads(row[1])), row[2]) for row in rows}
