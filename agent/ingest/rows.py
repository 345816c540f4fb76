"""Reading input files line by line, whatever their compression and byte-order mark.

Every parsed or rejected row carries its file and line, so a problem is always reported
where the user can find it. Bytes are decoded with `surrogateescape`: a line with bytes
that are not valid in the file's encoding is rejected as such instead of crashing the read.
What the file is (gzip, bzip2, xz by their first bytes; zip, zstd and UTF-16 refused in one
line) is decided before the first line; a line longer than MAX_LINE_BYTES is a reject, read
past in pieces, never held whole. Field values are typed in `agent.ingest.fields`.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple, cast

from agent.ingest.fields import RowError
from agent.schemas import Interaction, Item, User

Record = Item | User | Interaction

MAX_LINE_BYTES = 16 * 1024 * 1024
"""Longest line read (a 2 MB review fits; its text is then cut to its field's bound)."""
_SKIP_CHUNK = 1024 * 1024


class FormatError(Exception):
    """The file is not in the announced format; the ingest stops before writing anything."""


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
    cut: tuple[str, ...] = field(default=())
    """Text fields cut to their bound while reading this row."""


@dataclass(frozen=True, slots=True)
class Rejected:
    source: Source
    reason: str
    raw: str


Row = Parsed | Rejected
Advance = Callable[[int], None]
"""Progress callback: total bytes read so far in the current file."""


class Line(NamedTuple):
    number: int
    text: str
    overlong: int = 0
    """Bytes (without the line end) of a line longer than MAX_LINE_BYTES, whose `text` is
    then empty; else 0."""


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


_MAGIC = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"PK\x03\x04": "zip",
    b"(\xb5/\xfd": "zstd",
}
_SUFFIXES = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}


def _decompressed(raw: IO[bytes], compression: str) -> IO[bytes]:
    """A reading stream over `raw`; the caller closes both."""
    if compression == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if compression == "bzip2":
        return cast(IO[bytes], bz2.BZ2File(raw, mode="rb"))
    return cast(IO[bytes], lzma.LZMAFile(raw, mode="rb"))  # noqa: SIM115 - closed by caller


_DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
"""gzip.BadGzipFile is an OSError; a truncated stream is an EOFError."""


def _open_binary(path: Path) -> tuple[IO[bytes], IO[bytes], str | None]:
    """(stream to read, underlying file for byte progress, compression or None)."""
    try:
        raw = path.open("rb")
    except (FileNotFoundError, IsADirectoryError):
        raise
    except OSError as err:
        raise FormatError(f"{path}: cannot read the file: {err.strerror or err}") from None
    head = raw.peek(8)[:8]
    found = next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)
    named = _SUFFIXES.get(path.suffix.lower())
    problem = None
    if named is not None and found != named:
        start = f"starts with bytes {head[:4].hex(' ')}" if head else "is empty"
        problem = f"not {named} data although its name ends in {path.suffix} (the file {start})"
    elif found in ("zip", "zstd"):
        problem = f"a {found} archive; unpack it and ingest the files inside"
    elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
        problem = f"UTF-16 text (byte-order mark {head[:2].hex(' ')}); save it as UTF-8"
    if problem is not None:
        raw.close()
        raise FormatError(f"{path}: {problem}")
    if found is None:
        return raw, raw, None
    return _decompressed(raw, found), raw, found


def read_lines(path: Path, encoding: str, advance: Advance | None) -> Iterator[Line]:
    """Each line's number and text without its line ending, streaming; works on pipes. A
    UTF-8 byte-order mark before the first line is dropped. A compressed file that turns
    out corrupt or truncated is a FormatError naming the line where it broke."""
    stream, raw, compression = _open_binary(path)
    number = done = 0

    def readline(limit: int) -> bytes:
        try:
            return stream.readline(limit)
        except _DECOMPRESS_ERRORS as err:
            if compression is None:
                raise
            raise FormatError(
                f"{path}:{number + 1}: {compression} data is corrupt or truncated after "
                f"line {number}: {err}"
            ) from None

    with raw, stream:
        while data := readline(MAX_LINE_BYTES + 1):
            number += 1
            done += len(data)
            if number == 1:
                _check_first_line(path, data)
                data = data.removeprefix(b"\xef\xbb\xbf")
            if advance is not None and number % 2048 == 0:
                advance(raw.tell() if compression else done)
            if len(data) > MAX_LINE_BYTES and not data.endswith(b"\n"):
                size = len(data)
                while data and not data.endswith(b"\n"):
                    data = readline(_SKIP_CHUNK)
                    size += len(data)
                done += size - MAX_LINE_BYTES - 1
                yield Line(number, "", size - data.endswith(b"\n"))
                continue
            yield Line(number, data.decode(encoding, "surrogateescape").rstrip("\r\n"))
        if advance is not None:
            advance(raw.tell() if compression else done)


def _check_first_line(path: Path, data: bytes) -> None:
    if b"\x00" in data:
        raise FormatError(
            f"{path}:1: NUL bytes in the first line: UTF-16 text without a byte-order mark, "
            "or not a text file; save it as UTF-8"
        )


def overlong_reason(size: int) -> str:
    return f"line too long: {size:,} bytes, more than {MAX_LINE_BYTES:,}"


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
    """Rows of a delimited file via the csv module (quoted fields may span lines). A field
    may be as long as a line (the csv module's own limit, 128 KiB, is raised to it)."""
    if csv.field_size_limit() < MAX_LINE_BYTES:
        csv.field_size_limit(MAX_LINE_BYTES)
    lines = read_lines(path, encoding, advance)
    consumed: list[Line] = []

    def feed() -> Iterator[str]:
        for line in lines:
            consumed.append(line)
            yield line.text

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
        first_line = consumed[0].number
        overlong = max(line.overlong for line in consumed)
        raw = "\n".join(line.text for line in consumed)
        consumed.clear()
        if overlong:
            yield DelimitedRow(first_line, [], raw, overlong_reason(overlong))
        elif fields or error:
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
