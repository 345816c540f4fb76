"""Typed values from the fields of one row: ids, numbers, timestamps, years and text.

Each parser takes what the file holds (a string from a delimited file, any JSON value from a
JSON line) and returns the typed value or raises a `RowError` naming the field. Nothing is
coerced silently: `true` is not a rating, `{"nested": 1}` is not an id, `4_5` and `٤` are
not numbers. Text is bounded before anything else looks at it, then cleaned of control and
invisible characters; a cut is recorded (see `collecting_cuts`) so the ingest report counts
it instead of losing the tail unnoticed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from agent.cleantext import bound, clean_text, invisible_at

MAX_ID_CHARS = 512
"""As `agent.schemas.catalog.Id`."""
MAX_TITLE_CHARS = 1_000
MAX_REVIEW_CHARS = 20_000
MAX_DESCRIPTION_CHARS = 4_000
MAX_CATEGORY_CHARS = 200
MAX_CATEGORIES = 50
MAX_ATTRIBUTE_CHARS = 1_000
MAX_NUMBER_CHARS = 64
"""Longest string read as a number; epoch milliseconds need 13 digits."""

MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
_MS_THRESHOLD = 100_000_000_000
"""Numbers above this are epoch milliseconds (1e11 s would be the year 5138)."""
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
"""A plain decimal number. Python's float() also takes '4_5', '٤', 'inf' and 'nan'."""


class RowError(ValueError):
    """One row is bad; it becomes a reject (or stops a --strict ingest)."""


_CUTS: ContextVar[list[str] | None] = ContextVar("personae_ingest_cuts", default=None)


@contextmanager
def collecting_cuts() -> Iterator[list[str]]:
    """Collect the names of fields cut to their bound (or, if optional and unreadable,
    left out) while building one record."""
    cuts: list[str] = []
    token = _CUTS.set(cuts)
    try:
        yield cuts
    finally:
        _CUTS.reset(token)


def _note(field: str) -> None:
    cuts = _CUTS.get()
    if cuts is not None:
        cuts.append(field)


def shown(value: object, limit: int = 60) -> str:
    """A short repr of a field value for a reject reason (bounded before repr)."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + "..."
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def require(row: dict[str, str], field: str) -> str:
    """A field of a delimited row that must not be blank, stripped."""
    value = row.get(field)
    if value is None or not value.strip():
        raise RowError(f"missing field: {field!r} is empty or absent")
    return value.strip()


def parse_id(value: object, field: str, *, digits: bool = False) -> str:
    """A user or item id: a string, or an integer (JSON); not a bool, float or object. It
    must be one line of visible characters; `digits` requires ASCII digits (MovieLens)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RowError(f"bad type: {field!r} is {shown(value)}, expected a string id")
    if isinstance(value, int):
        if digits and value < 0:
            raise RowError(f"bad type: {field!r} is {value}, expected a non-negative integer id")
        return str(value)
    if len(value) > MAX_ID_CHARS * 2:
        raise RowError(f"bad id: {field!r} is longer than {MAX_ID_CHARS} characters")
    text = value.strip()
    if not text:
        raise RowError(f"missing field: {field!r} is empty or absent")
    if len(text) > MAX_ID_CHARS:
        raise RowError(f"bad id: {field!r} is longer than {MAX_ID_CHARS} characters")
    at = invisible_at(text)
    if at is not None:
        raise RowError(
            f"bad id: {field!r} has the control or invisible character "
            f"U+{ord(text[at]):04X} at column {at + 1}"
        )
    if digits and not (text.isascii() and text.isdigit()):
        raise RowError(f"bad type: {field!r} is {shown(text)}, expected an integer id")
    return text


def parse_text(
    value: object,
    field: str,
    max_chars: int,
    *,
    one_line: bool = False,
    lists: bool = False,
) -> str:
    """A text field: None is ''. A string is cut to `max_chars` first (the cut recorded),
    then cleaned of control and invisible characters and stripped. With `lists`, a list of
    strings (Amazon descriptions and features) is joined with spaces. Anything else is a
    bad type, never its repr."""
    if value is None:
        return ""
    if lists and isinstance(value, list):
        parts = [_string(part, field) for part in value if part is not None]
        value = " ".join(part for part in parts if part.strip())
    text = _string(value, field)
    if len(text) > max_chars:
        _note(field)
        text = bound(text, max_chars)
    return clean_text(text, keep_newlines=not one_line).strip()


def _string(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise RowError(f"bad type: {field!r} is {shown(value)}, expected a string")
    return value


def parse_list(value: object, field: str, max_chars: int = MAX_CATEGORY_CHARS) -> list[str]:
    """A list of short strings (categories), at most MAX_CATEGORIES of them."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RowError(f"bad type: {field!r} is {shown(value)}, expected a list of strings")
    if len(value) > MAX_CATEGORIES:
        _note(field)
        value = value[:MAX_CATEGORIES]
    return [parse_text(part, field, max_chars, one_line=True) for part in value]


def as_number(value: object) -> float | None:
    """A finite int/float, or a string holding a plain decimal number; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            return None
        return number if math.isfinite(number) else None
    if isinstance(value, str) and len(value) <= MAX_NUMBER_CHARS:
        text = value.strip()
        if _NUMBER.fullmatch(text):
            number = float(text)
            return number if math.isfinite(number) else None
    return None


def parse_rating(value: object, low: float, high: float, field: str = "rating") -> float:
    rating = as_number(value)
    if rating is None:
        raise RowError(f"bad type: {field!r} is {shown(value)}, not a number")
    if not low <= rating <= high:
        raise RowError(
            f"rating out of range: {field!r} is {shown(value)}, expected {low:g}..{high:g}"
        )
    return rating


def parse_timestamp(value: object, field: str = "timestamp", unit: str = "auto") -> datetime:
    """Epoch seconds or milliseconds (auto-detected unless `unit` is 's' or 'ms') or ISO 8601."""
    moment = _to_datetime(value, field, unit)
    if not MIN_TIME <= moment < MAX_TIME:
        raise RowError(f"bad timestamp: {field!r} is {shown(value)}, outside 1970..2100")
    return moment


def _to_datetime(value: object, field: str, unit: str) -> datetime:
    number = as_number(value)
    if number is not None and unit != "iso":
        millis = unit == "ms" or (unit == "auto" and abs(number) >= _MS_THRESHOLD)
        seconds = number / 1000 if millis else number
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise RowError(f"bad timestamp: {field!r} is {shown(value)}") from None
    if isinstance(value, str) and unit in ("auto", "iso") and len(value) <= MAX_NUMBER_CHARS:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise RowError(
        f"bad timestamp: {field!r} is {shown(value)}, expected epoch seconds/ms or ISO 8601"
    )


def find_year(value: str | None) -> int | None:
    """A four-digit year from '1995', '01-Jan-1995' or '1995-01-01'; None if there is none."""
    if not value:
        return None
    for token in bound(value, MAX_NUMBER_CHARS).replace("/", "-").split("-"):
        token = token.strip()
        if len(token) == 4 and token.isascii() and token.isdigit():
            return int(token)
    return None


def parse_year(value: object, field: str, *, lenient: bool = False) -> int | None:
    """A year field: absent or blank is None; an integer, or a string holding a year as
    `find_year` reads it. Anything else is a bad value, or with `lenient` (an optional
    field known to be dirty, as in RecBole's ML-100K: 'unkonwn', 'V') no year, recorded
    like a cut, never a silently missing year."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    year: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        year = value
    elif isinstance(value, str):
        year = find_year(value)
    if year is None or not 1000 <= year <= 2999:
        if lenient:
            _note(field)
            return None
        raise RowError(f"bad year: {field!r} is {shown(value)}, expected a year 1000..2999")
    return year
