"""Files as they come from the wild (issue 19): spreadsheet CSVs, wrong types in JSON,
fake or broken compression, huge and invisible text, untitled movies. Each input is read
as usual, or rejected at its file:line with a reason, or refused in one line."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import zipfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import data_cmds
from agent.ingest import Format, read_rows, rows
from agent.ingest.fields import MAX_REVIEW_CHARS, MAX_TITLE_CHARS
from agent.ingest.pipeline import IngestOptions, IngestReport, ingest
from agent.ingest.rows import FormatError, Parsed, Rejected, Row
from agent.ingest.tabular import Kind, TabularOptions
from agent.schemas import Interaction, Item
from agent.store.record import RecordStore
from agent.store.stats import record_stats

INTERACTIONS = "user_id,item_id,timestamp,rating\n"
SPOOF = "\u202e\u0007\u200b\u2066\x1b"
"""Right-to-left override, BEL, zero-width space, a bidi isolate, ESC."""


def read(fmt: Format, *paths: Path, options: TabularOptions | None = None) -> list[Row]:
    return list(read_rows(fmt, list(paths), options=options))


def run(
    tmp_path: Path, fmt: Format, *paths: Path, options: TabularOptions | None = None
) -> tuple[RecordStore, IngestReport]:
    store = RecordStore.at(tmp_path / "data")
    report = ingest(
        store,
        read_rows(fmt, list(paths), options=options),
        fmt.value,
        [str(p) for p in paths],
        IngestOptions(rejects_path=tmp_path / "rejects.jsonl", create_items=True),
    )
    return store, report


def reasons(found: list[Row]) -> dict[int, str]:
    return {r.source.line: r.reason for r in found if isinstance(r, Rejected)}


def records(found: list[Row]) -> list[Interaction | Item]:
    return [r.record for r in found if isinstance(r, Parsed)]  # type: ignore[misc]


def jsonl(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD = '"item_id": "i1", "timestamp": 978300760'


# -- encodings and line ends -------------------------------------------------------------


def test_spreadsheet_csv_with_bom_and_crlf_reads_as_usual(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfuser_id,item_id,timestamp,rating\r\nu1,i1,978300760,4\r\n")
    (record,) = records(read(Format.CSV, path))
    assert isinstance(record, Interaction)
    assert (record.user_id, record.item_id, record.rating) == ("u1", "i1", 4.0)


def test_movielens_ratings_with_bom_read_as_usual(tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "movies.csv").write_bytes(
        b"\xef\xbb\xbfmovieId,title,genres\r\n1,Toy Story (1995),Animation\r\n"
    )
    (folder / "ratings.csv").write_bytes(
        b"\xef\xbb\xbfuserId,movieId,rating,timestamp\r\n7,1,4.5,978300760\r\n"
    )
    store, report = run(tmp_path, Format.MOVIELENS, folder)
    assert report.rejected == 0 and report.interactions_added == 1
    item = store.get_item("1")
    assert item is not None and (item.title, item.year) == ("Toy Story", 1995)


def test_undecodable_bytes_are_a_reject_at_their_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(INTERACTIONS.encode() + b"u1,i1,978300760,4\ncaf\xe9,i1,978300760,4\n")
    found = read(Format.CSV, path)
    assert reasons(found) == {3: "bad encoding: byte 0xE9 at column 4 is not valid utf-8"}
    assert len(records(found)) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfeu\x00s\x00", "UTF-16 text"),
        (b"u\x00s\x00e\x00r\x00\n\x00", "NUL bytes in the first line"),
        (b"user_id,item_id,timestamp\ru1,i1,1\r", "CR alone"),
        (b"user_id,item_id,timestamp,user_id\nu1,i1,1,u2\n", "'user_id' more than once"),
    ],
)
def test_files_that_are_not_utf8_text_fail_in_one_line(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=message) as err:
        read(Format.CSV, path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# -- compression -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "compress"),
    [("e.jsonl.gz", gzip.compress), ("e.jsonl.bz2", bz2.compress), ("e.jsonl.xz", lzma.compress)],
)
def test_compressed_jsonl_is_read(tmp_path: Path, name: str, compress: object) -> None:
    line = '{"user_id": "u1", ' + GOOD + "}\n"
    (tmp_path / name).write_bytes(compress(line.encode()))  # type: ignore[operator]
    (record,) = records(read(Format.JSONL, tmp_path / name))
    assert isinstance(record, Interaction) and record.user_id == "u1"


def test_gzip_without_gz_suffix_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(gzip.compress(('{"user_id": "u1", ' + GOOD + "}\n").encode()))
    assert len(records(read(Format.JSONL, path))) == 1


def test_gz_that_is_not_gzip_is_one_line_naming_the_file(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "reviews.jsonl.gz", '{"user_id": "u1", ' + GOOD + "}")
    with pytest.raises(FormatError) as err:
        read(Format.JSONL, path)
    assert str(err.value) == (
        f"{path}: not gzip data although its name ends in .gz (the file starts with bytes "
        "7b 22 75 73)"
    )


def test_truncated_gzip_names_the_line_where_it_broke(tmp_path: Path) -> None:
    lines = "".join(f'{{"user_id": "u{n}", {GOOD}}}\n' for n in range(2000))
    data = gzip.compress(lines.encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut\.jsonl\.gz:\d+: gzip data is corrupt or trunc"):
        read(Format.JSONL, path)


def test_truncated_gzip_writes_nothing(tmp_path: Path) -> None:
    lines = "".join(f'{{"user_id": "u{n}", {GOOD}}}\n' for n in range(2000))
    data = gzip.compress(lines.encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError):
        run(tmp_path, Format.JSONL, path)
    assert RecordStore.at(tmp_path / "data").counts()["interactions"] == 0


def test_zip_archive_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "ml-latest-small.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ratings.csv", "userId,movieId,rating,timestamp\n")
    with pytest.raises(FormatError, match="a zip archive; unpack it"):
        read(Format.CSV, path)


def test_cli_reports_a_fake_gz_in_one_line_without_traceback(tmp_path: Path) -> None:
    app = typer.Typer()
    data_cmds.register(app)
    path = jsonl(tmp_path / "reviews.jsonl.gz", '{"user_id": "u1"}')
    result = CliRunner().invoke(
        app, ["ingest", "jsonl", str(path), "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr and result.exception is not None
    message = " ".join(result.stderr.split())
    assert f"{path}: not gzip data" in message and "nothing was written" in message


# -- types in JSON -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"user_id": {"nested": 1}, ' + GOOD + "}", "bad type: 'user_id' is {'nested': 1}"),
        ('{"user_id": true, ' + GOOD + "}", "bad type: 'user_id' is True"),
        ('{"user_id": 1.5, ' + GOOD + "}", "bad type: 'user_id' is 1.5"),
        ('{"user_id": ["u"], ' + GOOD + "}", "bad type: 'user_id' is ['u']"),
        ('{"user_id": "u", ' + GOOD + ', "rating": true}', "bad type: 'rating' is True"),
        ('{"user_id": "u", ' + GOOD + ', "rating": "4_5"}', "bad type: 'rating' is '4_5'"),
        ('{"user_id": "u", ' + GOOD + ', "rating": "\u0664"}', "bad type: 'rating'"),
        ('{"user_id": "u", ' + GOOD + ', "rating": NaN}', "invalid JSON: NaN is not"),
        ('{"user_id": "u", ' + GOOD + ', "rating": 4, "rating": 1}', "duplicate key 'rating'"),
        ('{"user_id": "u", ' + GOOD + ', "review_text": 12}', "bad type: 'review_text' is 12"),
        ('{"user_id": "u", ' + GOOD + ', "review_text": {"a": 1}}', "bad type: 'review_text'"),
        ('{"user_id": "u", ' + GOOD + ', "event_type": 1}', "bad type: 'event_type' is 1"),
        ('{"user_id": "u\\u0007", ' + GOOD + "}", "U+0007 at column 2"),
        ('{"user_id": "u\\ud800", ' + GOOD + "}", "U+D800 at column 2"),
        ('{"user_id": "u", "item_id": "i", "timestamp": true}', "bad timestamp"),
        ('{"user_id": "u", "item_id": "i", "timestamp": "1_000_000_000"}', "bad timestamp"),
        ('{"user_id": "u", ' + GOOD + ', "x": ' + "9" * 5000 + "}", "invalid JSON: Exceeds"),
        ('{"user_id": "u", ' + GOOD + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "deep"),
    ],
)
def test_wrong_json_types_are_rejected_at_their_line(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = jsonl(tmp_path / "e.jsonl", '{"user_id": "ok", ' + GOOD + "}", line)
    found = read(Format.JSONL, path)
    assert len(records(found)) == 1
    assert reason in reasons(found)[2]


def test_json_integer_ids_are_kept_as_their_digits(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "e.jsonl", '{"user_id": 42, "item_id": 7, "timestamp": 978300760}')
    (record,) = records(read(Format.JSONL, path))
    assert isinstance(record, Interaction) and (record.user_id, record.item_id) == ("42", "7")


def test_amazon_review_with_a_nested_asin_is_rejected(tmp_path: Path) -> None:
    ok = '{"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1400000000}'
    bad = '{"reviewerID": "A1", "asin": {"id": "B2"}, "overall": true, "unixReviewTime": 1}'
    found = read(Format.AMAZON_REVIEWS, jsonl(tmp_path / "r.json", ok, bad))
    assert reasons(found) == {2: "bad type: 'asin' is {'id': 'B2'}, expected a string id"}


def test_amazon_category_list_with_a_number_is_rejected(tmp_path: Path) -> None:
    meta = '{"asin": "B1", "title": "T", "category": ["Games", 3]}'
    found = read(Format.AMAZON_REVIEWS, jsonl(tmp_path / "meta.json", meta))
    assert reasons(found) == {1: "bad type: 'category' is 3, expected a string"}


# -- length bounds -----------------------------------------------------------------------


def test_a_two_megabyte_word_is_kept_cut_to_its_bound_and_counted(tmp_path: Path) -> None:
    word = "a" * 2_000_000
    review = {"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1400000000}
    path = jsonl(tmp_path / "r.json", json.dumps({**review, "reviewText": word, "summary": word}))
    store, report = run(tmp_path, Format.AMAZON_REVIEWS, path)
    (event,) = store.history("A1")
    assert event.review_text == "a" * MAX_REVIEW_CHARS
    assert event.review_title == "a" * MAX_TITLE_CHARS
    assert report.fields_cut == {"reviewText": 1, "summary": 1}


def test_a_line_over_the_line_bound_is_a_reject_and_the_next_line_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rows, "MAX_LINE_BYTES", 1000)
    ok = '{"user_id": "u1", ' + GOOD + "}"
    path = jsonl(tmp_path / "e.jsonl", ok, '{"user_id": "' + "x" * 5000 + '"}', ok)
    found = read(Format.JSONL, path)
    assert reasons(found) == {2: "line too long: 5,015 bytes, more than 1,000"}
    assert [r.source.line for r in found if isinstance(r, Parsed)] == [1, 3]


def test_a_csv_field_longer_than_the_csv_module_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text(
        "user_id,item_id,timestamp,review_text\nu1,i1,978300760," + "w" * 200_000 + "\n"
    )
    (record,) = records(read(Format.CSV, path))
    assert isinstance(record, Interaction) and record.review_text == "w" * MAX_REVIEW_CHARS


def test_an_overlong_id_is_rejected_not_cut(tmp_path: Path) -> None:
    ok = '{"user_id": "u1", ' + GOOD + "}"
    path = jsonl(tmp_path / "e.jsonl", ok, '{"user_id": "' + "u" * 600 + '", ' + GOOD + "}")
    found = read(Format.JSONL, path)
    assert reasons(found) == {2: "bad id: 'user_id' is longer than 512 characters"}


# -- invisible characters ----------------------------------------------------------------


def test_bidi_bell_and_zero_width_characters_are_removed_on_ingest(tmp_path: Path) -> None:
    review = {"reviewerID": "A1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1400000000}
    text = f"great{SPOOF} game\u2028second line"
    path = jsonl(tmp_path / "r.json", json.dumps({**review, "reviewText": text, "summary": text}))
    meta = jsonl(tmp_path / "meta.json", json.dumps({"asin": "B1", "title": f"Ti{SPOOF}tle"}))
    store, report = run(tmp_path, Format.AMAZON_REVIEWS, meta, path)
    (event,) = store.history("A1")
    assert event.review_text == "great game\nsecond line"
    assert event.review_title == "great game second line"
    item = store.get_item("B1")
    assert item is not None and item.title == "Title"


# -- untitled movies ---------------------------------------------------------------------


def test_movie_with_empty_title_is_kept_by_its_id_with_its_ratings(tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Animation\n2,"",(no genres listed)\n3,,Drama\n'
    )
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n7,1,4,978300760\n7,2,3,978300761\n8,3,5,978300762\n"
    )
    store, report = run(tmp_path, Format.MOVIELENS, folder)
    assert report.rejected == 0 and report.interactions_added == 3
    untitled = store.get_item("2")
    assert untitled is not None and untitled.title == "2"
    assert record_stats(store)["items_without_title"] == 2


def test_ml100k_untitled_item_and_bad_genre_flag(tmp_path: Path) -> None:
    folder = tmp_path / "ml100k"
    folder.mkdir()
    flags = "|".join(["0"] * 19)
    (folder / "u.item").write_bytes(
        f"1||01-Jan-1995||http://x|{flags}\n2|Two (1995)|||x|{flags[:-1]}2\n".encode("latin-1")
    )
    (folder / "u.data").write_text("5\t1\t4\t978300760\n")
    found = read(Format.MOVIELENS_100K, folder)
    assert reasons(found) == {2: "bad type: genre flag 'Western' is '2', expected 0 or 1"}
    item = records(found)[0]
    assert isinstance(item, Item) and (item.title, item.year) == ("1", 1995)


@pytest.mark.parametrize("movie_id", ["abc", "1.0", "\u0661", "-3"])
def test_movielens_ids_must_be_integers(tmp_path: Path, movie_id: str) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        f"userId,movieId,rating,timestamp\n7,{movie_id},4,978300760\n"
    )
    found = read(Format.MOVIELENS, folder)
    assert "expected an integer id" in reasons(found)[2]


def test_tabular_items_year_must_be_a_year(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text("item_id,title,year\ni1,One,1995\ni2,Two,soon\ni3,Three,\n")
    found = read(Format.CSV, path, options=TabularOptions(kind=Kind.ITEMS))
    assert reasons(found) == {3: "bad year: 'year' is 'soon', expected a year 1000..2999"}
    assert [r.year for r in records(found)] == [1995, None]  # type: ignore[union-attr]
