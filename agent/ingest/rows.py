"""Reading input files line by line, and turning fields into typed values.

Every parsed or rejected row carries its file and line, so a problem is always reported
where the user can find it. Bytes are decoded with `surrogateescape`: a line with bytes
that are not valid in the file's encoding is rejected as such instead of crashing the read.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast

from agent.schemas import Interaction, Item, User

Record = Item | User | Interaction

MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(2100, 1, 1, tzinfo=UTC)
_MS_THRESHOLD = 100_000_000_000
"""Numbers above this are epoch milliseconds (1e11 s would be the year 5138)."""


class FormatError(Exception):
    """The file is not in the announced format; the ingest stops before writing anything."""


class RowError(ValueError):
    """One row is bad; it becomes a reject (or stops a --strict ingest)."""


@dataclass(frozen=True, slots=True)
class Source:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Parsed:
    source: Source
    record: Record
    raw: str


@dataclass(frozen=True, slots=True)
class Rejected:
    source: Source
    reason: str
    raw: str


Row = Parsed | Rejected
Advance = Callable[[int], None]
"""Progress callback: total bytes read so far in the current file."""


def printable(text: str) -> str:
    """Text that may hold undecodable bytes (as surrogates), shown with \\x escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def check_encoding(text: str, encoding: str = "utf-8") -> None:
    """Raise a RowError if the decoded line held bytes invalid in `encoding` (surrogates)."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        byte = ord(text[err.start]) - 0xDC00
        raise RowError(
            f"bad encoding: byte 0x{byte:02X} at column {err.start + 1} is not valid {encoding}"
        ) from None


def _open_binary(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(stream to read, underlying file for byte progress); .gz files are decompressed."""
    raw: IO[bytes] = path.open("rb")
    if path.suffix == ".gz":
        stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        return stream, raw
    return raw, raw


def read_lines(path: Path, encoding: str, advance: Advance | None) -> Iterator[tuple[int, str]]:
    """(line number, text without line ending) for each line, streaming. Works on pipes."""
    stream, raw = _open_binary(path)
    compressed = stream is not raw
    done = 0
    with raw, stream:
        for number, data in enumerate(stream, start=1):
            done += len(data)
            if advance is not None and number % 2048 == 0:
                advance(raw.tell() if compressed else done)
            yield number, data.decode(encoding, "surrogateescape").rstrip("\r\n")
        if advance is not None:
            advance(raw.tell() if compressed else done)


@dataclass(slots=True)
class DelimitedRow:
    line: int
    fields: list[str]
    raw: str
    error: str | None = None
    """Set when the csv module could not split the row (e.g. a stray quote)."""


def read_delimited(
    path: Path, delimiter: str, encoding: str, advance: Advance | None, quoted: bool = True
) -> Iterator[DelimitedRow]:
    """Rows of a delimited file via the csv module (quoted fields may span lines)."""
    lines = read_lines(path, encoding, advance)
    consumed: list[tuple[int, str]] = []

    def feed() -> Iterator[str]:
        for number, text in lines:
            consumed.append((number, text))
            yield text

    if quoted:
        reader = csv.reader(feed(), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL, strict=True)
    else:
        reader = csv.reader(feed(), delimiter=delimiter, quoting=csv.QUOTE_NONE, strict=True)
    while True:
        error = None
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            fields, error = [], f"unreadable row: {err}"
        if not consumed:
            return
        first_line = consumed[0][0]
        raw = "\n".join(text for _, text in consumed)
        consumed.clear()
        if fields or error:
            yield DelimitedRow(first_line, fields, raw, error)


class ReadContext:
    """What loaders need besides paths: progress reporting per file (bytes read)."""

    def __init__(self, on_file: Callable[[Path], Advance | None] | None = None) -> None:
        self._on_file = on_file

    def progress_for(self, path: Path) -> Advance | None:
        return self._on_file(path) if self._on_file is not None else None


def delimiter_name(delimiter: str) -> str:
    return {"\t": "tab", ",": "comma", "|": "pipe", ";": "semicolon"}.get(
        delimiter, repr(delimiter)
    )


def guess_delimiter(text: str, expected: str) -> str:
    """A hint for 'wrong delimiter' errors: which common separator the line does use."""
    for candidate in ("\t", ",", ";", "|"):
        if candidate != expected and candidate in text:
            return f" (it looks {delimiter_name(candidate)}-separated)"
    return ""


def require(row: dict[str, str], field: str) -> str:
    value = row.get(field)
    if value is None or not value.strip():
        raise RowError(f"missing field: {field!r} is empty or absent")
    return value.strip()


def optional(row: dict[str, str], field: str | None) -> str | None:
    if field is None:
        return None
    value = row.get(field)
    if value is None or not value.strip():
        return None
    return value.strip()


def parse_rating(value: str | float | int, low: float, high: float, field: str = "rating") -> float:
    try:
        rating = float(value)
    except (TypeError, ValueError):
        raise RowError(f"bad type: {field!r} is {value!r}, not a number") from None
    if not math.isfinite(rating) or not low <= rating <= high:
        raise RowError(f"rating out of range: {field!r} is {value!r}, expected {low:g}..{high:g}")
    return rating


def parse_timestamp(value: object, field: str = "timestamp", unit: str = "auto") -> datetime:
    """Epoch seconds or milliseconds (auto-detected unless `unit` is 's' or 'ms') or ISO 8601."""
    moment = _to_datetime(value, field, unit)
    if not MIN_TIME <= moment < MAX_TIME:
        raise RowError(f"bad timestamp: {field!r} is {value!r}, outside 1970..2100")
    return moment


def _to_datetime(value: object, field: str, unit: str) -> datetime:
    number = _as_number(value)
    if number is not None and unit != "iso":
        millis = unit == "ms" or (unit == "auto" and abs(number) >= _MS_THRESHOLD)
        seconds = number / 1000 if millis else number
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise RowError(f"bad timestamp: {field!r} is {value!r}") from None
    if isinstance(value, str) and unit in ("auto", "iso"):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise RowError(f"bad timestamp: {field!r} is {value!r}, expected epoch seconds/ms or ISO 8601")


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def parse_year(value: str | None) -> int | None:
    """A four-digit year from '1995', '01-Jan-1995' or '1995-01-01'; None if there is none."""
    if not value:
        return None
    for token in value.replace("/", "-").split("-"):
        token = token.strip()
        if len(token) == 4 and token.isdigit():
            return int(token)
    return None
