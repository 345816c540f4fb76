"""Every loader on small hand-written fixtures, good and broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.ingest import Format, read_rows
from agent.ingest.pipeline import IngestOptions, IngestReport, StrictStop, ingest
from agent.ingest.rows import FormatError, Rejected
from agent.ingest.tabular import Kind, TabularOptions
from agent.store.record import RecordStore

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"


def run(
    tmp_path: Path,
    fmt: Format,
    *names: str,
    options: TabularOptions | None = None,
    **ingest_options: object,
) -> tuple[RecordStore, IngestReport]:
    store = RecordStore.at(tmp_path / "data")
    paths = [FIXTURES / name for name in names]
    report = ingest(
        store,
        read_rows(fmt, paths, options=options),
        fmt.value,
        [str(p) for p in paths],
        IngestOptions(rejects_path=tmp_path / "rejects.jsonl", **ingest_options),  # type: ignore[arg-type]
    )
    return store, report


def rejects(tmp_path: Path) -> list[dict[str, object]]:
    import json

    path = tmp_path / "rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def reasons_by_line(tmp_path: Path) -> dict[int, str]:
    return {int(str(r["line"])): str(r["reason"]) for r in rejects(tmp_path)}


# -- MovieLens 100K ----------------------------------------------------------------------


def test_ml100k_grouplens_files(tmp_path: Path) -> None:
    store, report = run(tmp_path, Format.MOVIELENS_100K, "ml100k")
    assert store.counts() == {"users": 3, "items": 3, "interactions": 5, "ratings": 5}
    assert report.rejected == 0
    toy = store.get_item("1")
    assert toy is not None
    assert (toy.title, toy.year) == ("Toy Story", 1995)
    assert toy.categories == ["Animation", "Children's", "Comedy"]
    nenette = store.get_item("3")
    assert nenette is not None and nenette.title == "Nénette et Boni"  # latin-1 decoded
    user = store.get_user("2")
    assert user is not None and user.attributes == {
        "age": 53,
        "gender": "F",
        "occupation": "other",
        "zip_code": "94043",
    }
    history = store.history("1")
    assert [e.item_id for e in history] == ["3", "1", "2"]  # ordered by time, not file order
    assert [e.item_id for e in store.history("1", limit=2)] == ["1", "2"]


def test_ml100k_recbole_atomic_files(tmp_path: Path) -> None:
    store, report = run(tmp_path, Format.MOVIELENS_100K, "recbole")
    assert store.counts() == {"users": 1, "items": 2, "interactions": 2, "ratings": 2}
    item = store.get_item("2")
    assert item is not None
    assert item.categories == ["Action", "Adventure", "Thriller"] and item.year == 1995


def test_ml100k_broken_rows_are_rejected_with_reasons(tmp_path: Path) -> None:
    store, report = run(tmp_path, Format.MOVIELENS_100K, "ml100k_broken")
    assert report.interactions_added == 2
    assert report.duplicates == 1
    assert report.rejected == 5
    reasons = reasons_by_line(tmp_path)
    assert set(reasons) == {2, 3, 4, 5, 6}
    assert reasons[2].startswith("rating out of range: 'rating' is '9', expected 1..5")
    assert reasons[3].startswith("bad type: 'rating' is 'five'")
    assert reasons[4].startswith("bad timestamp:")
    assert reasons[5].startswith("unknown item id: '42'")
    assert reasons[6].startswith("wrong field count: expected 4 tab-separated fields, got 3")
    first = rejects(tmp_path)[0]
    assert first["file"] == str(FIXTURES / "ml100k_broken" / "u.data")
    assert first["raw"] == "1\t1\t9\t874965759"
    assert report.rejects_by_reason["unknown item id"] == 1


def test_ml100k_wrong_delimiter_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"u.data:1: expected MovieLens 100K u.data: 4 tab-"):
        run(tmp_path, Format.MOVIELENS_100K, "ml100k_commas/u.data")
    assert RecordStore.at(tmp_path / "data").counts()["interactions"] == 0


def test_ml100k_unknown_file_name(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="not a MovieLens 100K file"):
        run(tmp_path, Format.MOVIELENS_100K, "movielens/ratings.csv")


# -- MovieLens ml-latest -----------------------------------------------------------------


def test_movielens_latest(tmp_path: Path) -> None:
    store, report = run(tmp_path, Format.MOVIELENS, "movielens")
    assert store.counts() == {"users": 2, "items": 4, "interactions": 6, "ratings": 4}
    president = store.get_item("11")
    assert president is not None and president.title == "American President, The"
    untitled = store.get_item("99")
    assert untitled is not None and untitled.categories == [] and untitled.year is None
    tags = [str(e.review_text) for e in store.history("2") if e.event_type == "feedback"]
    assert sorted(tags) == ["fun", "pixar"]  # same user, item and second: both kept


def test_movielens_wrong_delimiter(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="semicolon-separated"):
        run(tmp_path, Format.MOVIELENS, "movielens_semicolon/ratings.csv")


def test_movielens_missing_column(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="missing timestamp"):
        run(tmp_path, Format.MOVIELENS, "movielens_missing_column/ratings.csv")


def test_movielens_broken_rows(tmp_path: Path) -> None:
    _, report = run(tmp_path, Format.MOVIELENS, "movielens_broken")
    assert report.interactions_added == 1
    reasons = reasons_by_line(tmp_path)
    assert reasons[3].startswith("rating out of range: 'rating' is '6.0', expected 0.5..5")
    assert reasons[4].startswith("wrong field count")
    assert reasons[5] == "bad encoding: byte 0xE9 at column 4 is not valid utf-8"
    assert reasons[6].startswith("unknown item id: '7'")
    assert reasons[7].startswith("missing field: 'rating'")
    bad_bytes = next(r for r in rejects(tmp_path) if r["line"] == 5)
    assert bad_bytes["raw"] == "caf\\xe9,1,4.0,964982705"


# -- Amazon Reviews ----------------------------------------------------------------------


def test_amazon_2018(tmp_path: Path) -> None:
    store, report = run(tmp_path, Format.AMAZON_REVIEWS, "amazon2018")
    assert report.rejected == 0
    assert store.counts() == {"users": 2, "items": 2, "interactions": 3, "ratings": 3}
    mario = store.get_item("B000035Y4P")
    assert mario is not None
    assert mario.categories == ["Video Games", "Nintendo 64"]
    assert mario.description == "A 3D platformer. Classic"
    assert mario.attributes["brand"] == "Nintendo"
    a2 = store.history("A2")[0]
    assert a2.review_title == "Good" and a2.event_type == "review"
    assert a2.timestamp.year == 2014  # from reviewTime when unixReviewTime is absent
    rating_only = [e for e in store.history("A1") if e.review_text is None]
    assert rating_only[0].event_type == "rating"


def test_amazon_2023(tmp_path: Path) -> None:
    store, report = run(tmp_path, Format.AMAZON_REVIEWS, "amazon2023")
    assert report.rejected == 0
    assert store.counts() == {"users": 2, "items": 2, "interactions": 3, "ratings": 3}
    first = store.history("U1")[0]
    assert first.item_id == "P1" and first.review_text == "One more run."
    assert first.timestamp.year == 2020  # milliseconds
    assert first.attributes == {"asin": "A1X", "helpful_vote": 2, "verified_purchase": True}
    celeste = store.get_item("P2")
    assert celeste is not None and celeste.categories == ["Video Games"]  # main_category


def test_amazon_broken_rows(tmp_path: Path) -> None:
    _, report = run(tmp_path, Format.AMAZON_REVIEWS, "amazon_broken")
    assert report.interactions_added == 1
    reasons = reasons_by_line(tmp_path)
    assert set(reasons) == {2, 3, 4, 5, 6, 7}
    assert reasons[2].startswith("rating out of range: 'rating' is 7")
    assert reasons[3].startswith("unknown item id: 'NOPE'")
    assert reasons[4].startswith("bad encoding: byte 0xE9")
    assert reasons[5].startswith("missing field: 'user_id'")
    assert reasons[6].startswith("bad timestamp: 'timestamp' is 'soon'")
    assert reasons[7].startswith("invalid JSON:") and reasons[7].endswith("(truncated line?)")


def test_amazon_unknown_items_accepted_with_create_items(tmp_path: Path) -> None:
    store, report = run(
        tmp_path, Format.AMAZON_REVIEWS, "amazon_broken/reviews.jsonl", create_items=True
    )
    assert report.items_created_bare == 2  # P1 and NOPE: no metadata file given
    bare = store.get_item("NOPE")
    assert bare is not None and bare.title == "NOPE"


def test_amazon_not_jsonl_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="expected Amazon Reviews JSONL"):
        run(tmp_path, Format.AMAZON_REVIEWS, "amazon_not_jsonl/reviews.csv")


def test_amazon_unknown_layout_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="found keys customer, product, stars"):
        run(tmp_path, Format.AMAZON_REVIEWS, "amazon_wrong_keys")


# -- generic csv / jsonl -----------------------------------------------------------------


ITEM_MAP = TabularOptions(
    kind=Kind.ITEMS,
    mapping={
        "item_id": "sku",
        "title": "name",
        "categories": "tags",
        "description": "blurb",
        "year": "launched",
    },
)


def test_tabular_items_then_interactions(tmp_path: Path) -> None:
    store, _ = run(tmp_path, Format.CSV, "tabular/products.csv", options=ITEM_MAP)
    shoe = store.get_item("s1")
    assert shoe is not None
    assert shoe.categories == ["outdoor", "running"] and shoe.year == 2019
    assert shoe.attributes == {"color": "red"}  # unmapped item columns are kept
    clicks = TabularOptions(
        mapping={"user_id": "who", "item_id": "what", "timestamp": "when", "rating": "stars"},
        delimiter="\t",
    )
    store, report = run(tmp_path, Format.CSV, "tabular/clicks.tsv", options=clicks)
    assert report.interactions_added == 2
    reasons = reasons_by_line(tmp_path)
    assert reasons[4].startswith("rating out of range: 'stars' is '11', expected 0..5")
    assert reasons[5].startswith("unknown item id: 's3'")
    history = store.history("u1")
    assert history[1].timestamp.hour == 8  # +02:00 converted to UTC
    assert history[1].rating is None


def test_tabular_jsonl_events(tmp_path: Path) -> None:
    run(tmp_path, Format.CSV, "tabular/products.csv", options=ITEM_MAP)
    events = TabularOptions(
        mapping={"user_id": "uid", "item_id": "iid", "timestamp": "ts", "event_type": "kind"}
    )
    store, report = run(tmp_path, Format.JSONL, "tabular/events.jsonl", options=events)
    assert report.interactions_added == 2
    assert [e.event_type for e in store.history("u2")] == ["click"]
    assert reasons_by_line(tmp_path)[3].startswith("bad type: event type 'teleport'")


def test_tabular_users(tmp_path: Path) -> None:
    store, _ = run(
        tmp_path, Format.CSV, "tabular/users.csv", options=TabularOptions(kind=Kind.USERS)
    )
    u1, u2 = store.get_user("u1"), store.get_user("u2")
    assert u1 is not None and u1.attributes == {"age": "31", "country": "NL"}
    assert u2 is not None and u2.attributes == {"age": "45"}


def test_tabular_missing_mapped_column_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="missing user_id, item_id, timestamp"):
        run(tmp_path, Format.CSV, "tabular/clicks.tsv", options=TabularOptions(delimiter="\t"))


def test_tabular_jsonl_given_a_csv_fails_fast(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="expected a JSON Lines interactions file"):
        run(tmp_path, Format.JSONL, "tabular/users.csv")


def test_tabular_unknown_mapping_field() -> None:
    with pytest.raises(FormatError, match="cannot map colour"):
        TabularOptions(mapping={"colour": "c"}).check()


# -- strict mode and reruns --------------------------------------------------------------


def test_strict_stops_at_first_bad_row_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(StrictStop, match=r"u.data:2: rating out of range"):
        run(tmp_path, Format.MOVIELENS_100K, "ml100k_broken", strict=True)
    store = RecordStore.at(tmp_path / "data")
    assert store.counts() == {"users": 0, "items": 0, "interactions": 0, "ratings": 0}
    assert len(rejects(tmp_path)) == 1


def test_rerun_adds_nothing_and_counts_duplicates(tmp_path: Path) -> None:
    run(tmp_path, Format.MOVIELENS, "movielens")
    store, report = run(tmp_path, Format.MOVIELENS, "movielens")
    assert report.interactions_added == 0 and report.duplicates == 6
    assert report.items_unchanged == 4 and report.items_added == 0
    assert store.counts()["interactions"] == 6


def test_rejected_rows_are_all_accounted_for(tmp_path: Path) -> None:
    rows = list(read_rows(Format.AMAZON_REVIEWS, [FIXTURES / "amazon_broken"]))
    _, report = run(tmp_path, Format.AMAZON_REVIEWS, "amazon_broken")
    written = report.items_added + report.interactions_added + report.duplicates
    assert report.rows_read == len(rows) == written + report.rejected
    assert sum(isinstance(r, Rejected) for r in rows) == report.rejected - 1  # + unknown item


def test_gzipped_jsonl_is_read_transparently(tmp_path: Path) -> None:
    import gzip

    folder = tmp_path / "amazon"
    folder.mkdir()
    for source in (FIXTURES / "amazon2023").iterdir():
        (folder / f"{source.name}.gz").write_bytes(gzip.compress(source.read_bytes()))
    store = RecordStore.at(tmp_path / "data")
    report = ingest(store, read_rows(Format.AMAZON_REVIEWS, [folder]), "a", [], IngestOptions())
    assert (report.items_added, report.interactions_added, report.rejected) == (2, 3, 0)
