"""Delimited tables (csv, tsv, pipe files) checked against the columns a format expects.

The first row decides whether the file is in the announced format at all: a header without
the required columns, or a headerless first row with the wrong number of fields, is a
`FormatError` (fail fast). After that, a bad row is a reject and the read goes on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.ingest.fields import RowError, collecting_cuts, shown
from agent.ingest.rows import (
    DelimitedRow,
    FormatError,
    Parsed,
    ReadContext,
    Record,
    Rejected,
    Row,
    Source,
    check_encoding,
    delimiter_name,
    guess_delimiter,
    printable,
    read_delimited,
)


@dataclass(frozen=True, slots=True)
class Table:
    """How to read one kind of delimited file."""

    description: str
    """What the file should be, for error messages, e.g. 'MovieLens ratings.csv'."""
    delimiter: str
    required: Sequence[str]
    columns: Sequence[str] | None = None
    """Column names of a headerless file; None means the first row is the header."""
    encoding: str = "utf-8"
    quoted: bool = True
    header_name: Callable[[str], str] = str.strip


@dataclass(frozen=True, slots=True)
class TableRow:
    source: Source
    values: dict[str, str]
    raw: str


def read_table(path: Path, table: Table, ctx: ReadContext) -> Iterator[TableRow | Rejected]:
    rows = read_delimited(
        path, table.delimiter, table.encoding, ctx.progress_for(path), quoted=table.quoted
    )
    first = next(rows, None)
    if first is None:
        raise FormatError(f"{path}: file is empty; expected {table.description}")
    columns = _columns(path, table, first)
    if table.columns is not None:
        yield _row(path, table, columns, first)
    for row in rows:
        yield _row(path, table, columns, row)


def _columns(path: Path, table: Table, first: DelimitedRow) -> list[str]:
    sep = delimiter_name(table.delimiter)
    if "\r" in first.raw:
        raise FormatError(
            f"{path}:{first.line}: lines end in CR alone (old Mac OS line ends); save the "
            "file with LF or CRLF line ends"
        )
    if table.columns is not None:
        if len(first.fields) != len(table.columns):
            raise FormatError(
                f"{path}:{first.line}: expected {table.description}: {len(table.columns)} "
                f"{sep}-separated fields ({', '.join(table.columns)}), found "
                f"{len(first.fields)}{guess_delimiter(first.raw, table.delimiter)}: "
                f"{printable(first.raw)[:200]!r}"
            )
        return list(table.columns)
    header = [table.header_name(name) for name in first.fields]
    missing = [name for name in table.required if name not in header]
    if missing or first.error:
        raise FormatError(
            f"{path}:{first.line}: expected {table.description}: a {sep}-separated header with "
            f"columns {', '.join(table.required)}; missing {', '.join(missing)}"
            f"{guess_delimiter(first.raw, table.delimiter)}; header was "
            f"{printable(first.raw)[:200]!r}"
        )
    repeated = sorted(name for name, n in Counter(header).items() if n > 1)
    if repeated:
        raise FormatError(
            f"{path}:{first.line}: the header names {', '.join(map(repr, repeated))} more "
            "than once; which column is meant?"
        )
    return header


def _row(path: Path, table: Table, columns: list[str], row: DelimitedRow) -> TableRow | Rejected:
    source = Source(str(path), row.line)
    if row.error:
        return Rejected(source, row.error, printable(row.raw))
    try:
        check_encoding(row.raw, table.encoding)
    except RowError as err:
        return Rejected(source, str(err), printable(row.raw))
    if len(row.fields) != len(columns):
        sep = delimiter_name(table.delimiter)
        reason = (
            f"wrong field count: expected {len(columns)} {sep}-separated fields, "
            f"got {len(row.fields)}"
        )
        return Rejected(source, reason, printable(row.raw))
    return TableRow(source, dict(zip(columns, row.fields, strict=True)), row.raw)


def convert(
    source: Source, raw: str, build: Callable[[dict[str, Any]], Record], values: dict[str, Any]
) -> Iterator[Row]:
    """Run a row converter; a RowError or a schema ValidationError becomes a reject. Text
    fields the converter cut to their bound are named on the parsed row."""
    try:
        with collecting_cuts() as cuts:
            record = build(values)
    except RowError as err:
        yield Rejected(source, str(err), printable(raw))
        return
    except ValidationError as err:
        yield Rejected(source, describe_validation(err), printable(raw))
        return
    yield Parsed(source, record, raw, tuple(cuts))


def describe_validation(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "row"
    return f"invalid value: {where!r}: {first['msg']} (got {shown(first.get('input'))})"[:300]


def convert_rows(
    rows: Iterator[TableRow | Rejected], build: Callable[[dict[str, Any]], Record]
) -> Iterator[Row]:
    for row in rows:
        if isinstance(row, Rejected):
            yield row
        else:
            yield from convert(row.source, row.raw, build, row.values)
