"""Property tests of every loader (issue 19): random rows, types and encodings. Each row is
generated as good or bad field by field, so the expected outcome is known: a row whose
fields are all good is accepted with exactly the values meant (text cleaned of control and
invisible characters, nothing else changed); a row with any bad field, or a stray byte
that is not UTF-8, is rejected at its own line with a reason. Never a traceback, never a
silently coerced value."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cleantext import clean_text
from agent.ingest import Format, read_rows
from agent.ingest.fields import MAX_REVIEW_CHARS, MAX_TITLE_CHARS
from agent.ingest.rows import Parsed, Rejected
from agent.schemas import Interaction

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
REASONS = (
    "bad type", "missing field", "bad id", "bad timestamp", "rating out of range",
    "invalid JSON", "bad encoding", "wrong field count", "unreadable row", "invalid value",
)  # fmt: skip
HOSTILE = st.sampled_from(
    ["\u202e", "\x07", "\u200b", "\x1b[2J", "\ufeff", "\x00", "\u2028", "\t", "\U000e0041"]
)
ANY_TEXT = st.lists(st.one_of(st.text(max_size=12), HOSTILE), max_size=6).map("".join)


@dataclass(frozen=True)
class Value:
    raw: Any
    """What the file holds (a JSON value, or the text of a delimited field)."""
    meant: Any = None
    good: bool = True


def bad(raw: Any) -> Value:
    return Value(raw, good=False)


# -- values as JSON holds them -----------------------------------------------------------

ID_TEXT = st.text(
    st.characters(categories=("L", "N", "P", "S"), exclude_characters="\x85"),
    min_size=1,
    max_size=20,
)
JSON_ID = st.one_of(
    ID_TEXT.map(lambda s: Value(s, s)),
    st.integers(0, 10**18).map(lambda n: Value(n, str(n))),
    st.sampled_from([True, False, 1.5, None, "", "  ", [1], {"nested": 1}, "a\x07b"]).map(bad),
    ID_TEXT.map(lambda s: bad("\u202e" + s)),
)
BAD_RATINGS = [True, "4_5", "\u0664", "nan", "inf", "x", "4,5", [4], {"r": 4}]


def _numbers(low: float, high: float) -> st.SearchStrategy[float]:
    return st.one_of(st.integers(int(low + 0.5), int(high)).map(float), st.floats(low, high))


def json_rating(low: float, high: float) -> st.SearchStrategy[Value]:
    return st.one_of(
        st.integers(int(low + 0.5), int(high)).map(lambda n: Value(n, float(n))),
        _numbers(low, high).map(lambda n: Value(n, n)),
        _numbers(low, high).map(lambda n: Value(repr(n), n)),
        st.sampled_from(BAD_RATINGS + [low - 1, high + 1]).map(bad),
        st.floats(high + 0.001, 1e300).map(bad),
    )


def csv_rating(low: float, high: float, required: bool) -> st.SearchStrategy[Value]:
    """A delimited file's rating: a number's text (an empty field is no rating, unless
    the format requires one)."""
    texts = [str(b) if not isinstance(b, str) else b for b in BAD_RATINGS[:7]]
    empty = bad("") if required else Value("", None)
    return st.one_of(
        _numbers(low, high).map(lambda n: Value(repr(n), n)),
        st.sampled_from([f" {high:g} ", f"{low:g}e0"]).map(lambda s: Value(s, float(s))),
        st.sampled_from([*texts, f"{low - 1:g}", f"{high + 1:g}"]).map(bad),
        st.just(empty),
    )


SECONDS = st.integers(1, 4_000_000_000)
JSON_TIME = st.one_of(
    SECONDS.map(lambda s: Value(s, datetime.fromtimestamp(s, tz=UTC))),
    SECONDS.map(lambda s: Value(str(s), datetime.fromtimestamp(s, tz=UTC))),
    st.sampled_from([True, -5, "soon", "1_000_000_000", [1], None, 10**30]).map(bad),
)


def json_text(max_chars: int, one_line: bool) -> st.SearchStrategy[Value]:
    def meant(text: str) -> str | None:
        return clean_text(text[:max_chars], keep_newlines=not one_line).strip() or None

    return st.one_of(
        ANY_TEXT.map(lambda s: Value(s, meant(s))),
        st.just(Value(None, None)),
        st.sampled_from([12, 1.5, True, ["a"], {"a": 1}]).map(bad),
    )


JSON_REVIEW = json_text(MAX_REVIEW_CHARS, one_line=False)
JSON_TITLE = json_text(MAX_TITLE_CHARS, one_line=True)


# -- running one generated file ----------------------------------------------------------


@dataclass(frozen=True)
class GeneratedRow:
    line: bytes
    expected: dict[str, Any] | None
    """The interaction's fields if every field is good, else None (a reject)."""


def check(fmt: Format, name: str, header: bytes, rows: list[GeneratedRow], bom: bool) -> None:
    """Read the file; every row must come back accepted exactly or rejected at its line."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        ending = b"\r\n" if bom else b"\n"
        body = b"".join(row.line + ending for row in rows)
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + header + body)
        found = list(read_rows(fmt, [Path(folder) if fmt is Format.MOVIELENS else path]))
    first = 2 if header else 1
    by_line = {r.source.line: r for r in found}
    assert len(by_line) == len(found) == len(rows)
    for number, row in enumerate(rows, start=first):
        result = by_line[number]
        if row.expected is None:
            assert isinstance(result, Rejected), (row.line, result)
            assert result.reason.startswith(REASONS), result.reason
        else:
            assert isinstance(result, Parsed), (row.line, result)
            record = result.record
            assert isinstance(record, Interaction)
            for key, value in row.expected.items():
                assert getattr(record, key) == value, (key, row.line, record)


def with_stray_byte(row: GeneratedRow, stray: bool) -> GeneratedRow:
    """A byte invalid in UTF-8 inside the line makes the row a reject, whatever else."""
    return GeneratedRow(row.line + b"\xff", None) if stray else row


def json_row(
    fields: dict[str, Value], key_of: Callable[[str], str], extra: dict[str, Any]
) -> GeneratedRow:
    values = {key_of(name): v.raw for name, v in fields.items() if v.raw is not None}
    line = json.dumps({**values, **extra}, ensure_ascii=False).encode("utf-8", "surrogatepass")
    good = all(v.good for v in fields.values())
    return GeneratedRow(line, {k: v.meant for k, v in fields.items()} if good else None)


INTERACTION_FIELDS = {
    "user_id": JSON_ID,
    "item_id": JSON_ID,
    "timestamp": JSON_TIME,
    "review_text": JSON_REVIEW,
    "review_title": JSON_TITLE,
}
INTERACTION = st.fixed_dictionaries(
    {**INTERACTION_FIELDS, "rating": st.one_of(st.just(Value(None, None)), json_rating(0, 5))}
)
GOOD_JSON = GeneratedRow(
    b'{"user_id": "u0", "item_id": "i0", "timestamp": 978300760}', {"user_id": "u0"}
)


def json_rows(row: st.SearchStrategy[GeneratedRow]) -> st.SearchStrategy[list[GeneratedRow]]:
    """1..5 rows; about one in ten gets a stray byte that is not UTF-8."""
    rows = st.lists(st.tuples(row, st.integers(0, 9)), min_size=1, max_size=5)
    return rows.map(lambda pairs: [with_stray_byte(r, n == 0) for r, n in pairs])


def _absent_required(fields: dict[str, Value]) -> dict[str, Value]:
    """A missing id or timestamp (JSON null) is a bad field, not a good one."""
    return {
        k: bad(v.raw) if v.raw is None and k in ("user_id", "item_id", "timestamp") else v
        for k, v in fields.items()
    }


@SETTINGS
@given(json_rows(INTERACTION.map(lambda f: json_row(_absent_required(f), str, {}))), st.booleans())
def test_jsonl_loader_accepts_exactly_or_rejects_at_the_line(
    rows: list[GeneratedRow], bom: bool
) -> None:
    check(Format.JSONL, "events.jsonl", b"", [GOOD_JSON, *rows], bom)


AMAZON_2023 = {
    "user_id": "user_id", "item_id": "parent_asin", "timestamp": "timestamp",
    "rating": "rating", "review_text": "text", "review_title": "title",
}  # fmt: skip


def _amazon_2023(fields: dict[str, Value]) -> GeneratedRow:
    fields = _absent_required(fields)
    time = fields["timestamp"]
    if time.good:  # 2023 timestamps are milliseconds
        millis = int(time.meant.timestamp()) * 1000
        fields["timestamp"] = Value(
            millis if isinstance(time.raw, int) else str(millis), time.meant
        )
    item = fields["item_id"]
    if item.good and isinstance(item.raw, str) and not item.raw.strip():
        fields["item_id"] = bad(item.raw)
    return json_row(fields, AMAZON_2023.__getitem__, {"helpful_vote": 0})


AMAZON_INTERACTION = st.fixed_dictionaries(
    {**INTERACTION_FIELDS, "rating": st.one_of(st.just(Value(None, None)), json_rating(1, 5))}
)
GOOD_2023 = GeneratedRow(
    b'{"user_id": "u0", "parent_asin": "B0", "timestamp": 1400000000000}', {"user_id": "u0"}
)


@SETTINGS
@given(json_rows(AMAZON_INTERACTION.map(_amazon_2023)), st.booleans())
def test_amazon_loader_accepts_exactly_or_rejects_at_the_line(
    rows: list[GeneratedRow], bom: bool
) -> None:
    check(Format.AMAZON_REVIEWS, "reviews.jsonl", b"", [GOOD_2023, *rows], bom)


# -- values as delimited files hold them -------------------------------------------------

FIELD_TEXT = st.text(
    st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x85\u2028\u2029"),
    max_size=15,
)
CSV_ID = st.one_of(
    ID_TEXT.map(lambda s: Value(s, s)),
    st.sampled_from(["", "  ", "a\x07b", "\u202eu", "x" * 600]).map(bad),
)
DIGIT_ID = st.one_of(
    st.integers(0, 10**9).map(lambda n: Value(str(n), str(n))),
    st.sampled_from(["", "abc", "1.0", "\u0661", "-3", "1e3", "x\x07"]).map(bad),
)
CSV_TIME = st.one_of(
    SECONDS.map(lambda s: Value(str(s), datetime.fromtimestamp(s, tz=UTC))),
    st.sampled_from(["", "true", "-5", "soon", "1_000_000_000", "1e400"]).map(bad),
)
CSV_REVIEW = st.one_of(FIELD_TEXT, HOSTILE.filter(lambda c: c not in "\u2028\x00")).map(
    lambda s: Value(s, clean_text(s).strip() or None)
)


def delimited_row(
    fields: dict[str, Value], order: tuple[str, ...], delimiter: str, quoted: bool
) -> GeneratedRow:
    out = io.StringIO()
    writer = csv.writer(
        out,
        delimiter=delimiter,
        lineterminator="",
        quoting=csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE,
        escapechar=None if quoted else "\\",
    )
    writer.writerow([fields[name].raw for name in order])
    good = all(v.good for v in fields.values())
    expected = {k: v.meant for k, v in fields.items()} if good else None
    return GeneratedRow(out.getvalue().encode(), expected)


CSV_ORDER = ("user_id", "item_id", "timestamp", "rating", "review_text")
ML_ORDER = ("user_id", "item_id", "rating", "timestamp")
ML_100K_ORDER = ("user_id", "item_id", "rating", "timestamp")
CSV_INTERACTION = st.fixed_dictionaries(
    {
        "user_id": CSV_ID,
        "item_id": CSV_ID,
        "timestamp": CSV_TIME,
        "rating": csv_rating(0, 5, required=False),
        "review_text": CSV_REVIEW,
    }
)


@SETTINGS
@given(
    json_rows(CSV_INTERACTION.map(lambda f: delimited_row(f, CSV_ORDER, ",", True))), st.booleans()
)
def test_csv_loader_accepts_exactly_or_rejects_at_the_line(
    rows: list[GeneratedRow], bom: bool
) -> None:
    header = b"user_id,item_id,timestamp,rating,review_text\n"
    check(Format.CSV, "events.csv", header, rows, bom)


ML_RATING = st.fixed_dictionaries(
    {
        "user_id": DIGIT_ID,
        "item_id": DIGIT_ID,
        "rating": csv_rating(0.5, 5, required=True),
        "timestamp": CSV_TIME,
    }
)
ML_100K_RATING = st.fixed_dictionaries(
    {
        "user_id": DIGIT_ID,
        "item_id": DIGIT_ID,
        "rating": csv_rating(1, 5, required=True),
        "timestamp": CSV_TIME,
    }
)


@SETTINGS
@given(json_rows(ML_RATING.map(lambda f: delimited_row(f, ML_ORDER, ",", True))), st.booleans())
def test_movielens_loader_accepts_exactly_or_rejects_at_the_line(
    rows: list[GeneratedRow], bom: bool
) -> None:
    header = b"userId,movieId,rating,timestamp\n"
    check(Format.MOVIELENS, "ratings.csv", header, rows, bom)


@SETTINGS
@given(
    json_rows(
        ML_100K_RATING.filter(lambda f: all("\\" not in v.raw for v in f.values())).map(
            lambda f: delimited_row(f, ML_100K_ORDER, "\t", False)
        )
    ),
    st.booleans(),
)
def test_movielens_100k_loader_accepts_exactly_or_rejects_at_the_line(
    rows: list[GeneratedRow], bom: bool
) -> None:
    check(Format.MOVIELENS_100K, "u.data", b"", rows, bom)
