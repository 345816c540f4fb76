"""JSON Lines reading shared by the Amazon and generic jsonl loaders.

The first non-blank line decides whether the file is JSON Lines at all (fail fast); later
lines that do not parse (a truncated last line, say) are rejects. Blank lines hold no row.
Beyond `json.loads`, a line is refused when an object repeats a key (which value would be
meant?), when it holds NaN or Infinity (not JSON), an integer of more than 4,300 digits, or
nesting deeper than Python's recursion limit: each is a reject at its line, not a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.ingest.fields import RowError
from agent.ingest.rows import (
    FormatError,
    ReadContext,
    Rejected,
    Source,
    check_encoding,
    overlong_reason,
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
    for line in read_lines(path, "utf-8", ctx.progress_for(path)):
        source = Source(str(path), line.number)
        if line.overlong:
            row: JsonRow | Rejected = Rejected(source, overlong_reason(line.overlong), "")
        elif not line.text.strip():
            continue
        else:
            row = _parse(source, line.text)
        if first and isinstance(row, Rejected):
            raise FormatError(
                f"{source}: expected {expected} (one JSON object per line): {row.reason}"
            )
        first = False
        yield row
    if first:
        raise FormatError(f"{path}: file is empty; expected {expected}")


class _NotJson(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    values = dict(pairs)
    if len(values) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _NotJson(f"duplicate key {key[:60]!r}")
            seen.add(key)
    return values


def _no_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _parse(source: Source, text: str) -> JsonRow | Rejected:
    try:
        check_encoding(text)
    except RowError as err:
        return Rejected(source, str(err), printable(text))
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        hint = " (truncated line?)" if err.pos >= len(text.rstrip()) - 1 else ""
        return Rejected(source, f"invalid JSON: {err.msg} at column {err.colno}{hint}", text)
    except _NotJson as err:
        return Rejected(source, f"invalid JSON: {err}", text)
    except ValueError as err:  # an integer beyond Python's 4,300-digit conversion limit
        return Rejected(source, f"invalid JSON: {str(err)[:120]}", text)
    except RecursionError:
        return Rejected(source, "invalid JSON: nested too deeply", text)
    if not isinstance(value, dict):
        return Rejected(
            source, f"invalid JSON: expected an object, got {type(value).__name__}", text
        )
    return JsonRow(source, value, text)
