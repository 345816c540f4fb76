"""JSON Lines reading shared by the Amazon and generic jsonl loaders.

The first non-blank line decides whether the file is JSON Lines at all (fail fast); later
lines that do not parse (a truncated last line, say) are rejects. Blank lines hold no row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.ingest.rows import (
    FormatError,
    ReadContext,
    Rejected,
    RowError,
    Source,
    check_encoding,
    printable,
    read_lines,
)


@dataclass(frozen=True, slots=True)
class JsonRow:
    source: Source
    values: dict[str, Any]
    raw: str


def read_jsonl(path: Path, ctx: ReadContext, expected: str) -> Iterator[JsonRow | Rejected]:
    first = True
    for number, text in read_lines(path, "utf-8", ctx.progress_for(path)):
        if not text.strip():
            continue
        source = Source(str(path), number)
        row = _parse(source, text)
        if first and isinstance(row, Rejected):
            raise FormatError(
                f"{source}: expected {expected} (one JSON object per line): {row.reason}"
            )
        first = False
        yield row
    if first:
        raise FormatError(f"{path}: file is empty; expected {expected}")


def _parse(source: Source, text: str) -> JsonRow | Rejected:
    try:
        check_encoding(text)
    except RowError as err:
        return Rejected(source, str(err), printable(text))
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        hint = " (truncated line?)" if err.pos >= len(text.rstrip()) - 1 else ""
        return Rejected(source, f"invalid JSON: {err.msg} at column {err.colno}{hint}", text)
    if not isinstance(value, dict):
        return Rejected(
            source, f"invalid JSON: expected an object, got {type(value).__name__}", text
        )
    return JsonRow(source, value, text)


def text_of(value: Any) -> str:
    """Amazon fields are strings or lists of strings (description, features)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(text_of(part) for part in value if part).strip()
    return str(value).strip()
