"""`personae ingest` and `personae stats` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import data_cmds

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    data_cmds.register(app)
    return app


def invoke(app: typer.Typer, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_ingest_reports_rejects_and_writes_the_rejects_file(
    app: typer.Typer, tmp_path: Path
) -> None:
    rejects = tmp_path / "bad.jsonl"
    code, out, err = invoke(
        app, "ingest", "movielens", str(FIXTURES / "movielens_broken"),
        "--data-dir", str(tmp_path), "--rejects", str(rejects), "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["rejected"] == 5 and report["interactions_added"] == 1
    assert report["rejects_path"] == str(rejects)
    lines = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert {r["line"] for r in lines} == {3, 4, 5, 6, 7}
    assert set(lines[0]) == {"file", "line", "reason", "raw"}
    assert "rejected" in err and "rejects file" in err


def test_default_rejects_file_lives_under_data_dir(app: typer.Typer, tmp_path: Path) -> None:
    code, out, _ = invoke(
        app, "ingest", "movielens-100k", str(FIXTURES / "ml100k_broken"),
        "--data-dir", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0
    path = Path(json.loads(out)["rejects_path"])
    assert path.parent == tmp_path / "rejects" and path.exists()


def test_strict_exits_nonzero_naming_file_and_line(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = invoke(
        app, "ingest", "movielens", str(FIXTURES / "movielens_broken"),
        "--data-dir", str(tmp_path), "--strict",
    )  # fmt: skip
    assert code == 1
    assert "ratings.csv:3: rating out of range" in " ".join(err.split())
    code, out, _ = invoke(app, "stats", "--data-dir", str(tmp_path), "--json")
    assert json.loads(out)["interactions"] == 0


def test_wrong_format_fails_fast(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = invoke(
        app, "ingest", "amazon-reviews", str(FIXTURES / "amazon_not_jsonl" / "reviews.csv"),
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 1
    assert "expected Amazon Reviews JSONL" in " ".join(err.split())


def test_csv_column_mapping_options(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = invoke(
        app, "ingest", "csv", str(FIXTURES / "tabular" / "products.csv"), "--kind", "items",
        "--map", "item_id=sku", "--map", "title=name", "--map", "categories=tags",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    code, out, err = invoke(
        app, "ingest", "csv", str(FIXTURES / "tabular" / "clicks.tsv"), "--delimiter", "tab",
        "--map", "user_id=who", "--map", "item_id=what", "--map", "timestamp=when",
        "--map", "rating=stars", "--rating-max", "10", "--data-dir", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["interactions_added"] == 2  # stars=11 is above 10, s3 is unknown
    assert report["rejects_by_reason"] == {"rating out of range": 1, "unknown item id": 1}


def test_bad_mapping_is_a_usage_error(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = invoke(
        app, "ingest", "csv", str(FIXTURES / "tabular" / "users.csv"), "--map", "nonsense",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 1 and "expected FIELD=COLUMN" in err


def test_sample_needs_no_paths(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = invoke(app, "ingest", "movielens", "--sample", "--data-dir", str(tmp_path))
    assert code == 1 and "only works with movielens-100k" in err


def test_stats_json(app: typer.Typer, tmp_path: Path) -> None:
    invoke(app, "ingest", "movielens", str(FIXTURES / "movielens"), "--data-dir", str(tmp_path))
    code, out, err = invoke(app, "stats", "--data-dir", str(tmp_path), "--json")
    assert code == 0
    stats = json.loads(out)
    assert (stats["users"], stats["items"], stats["ratings"]) == (2, 4, 4)
    assert stats["events"] == {"feedback": 2, "rating": 4}
    assert stats["rating_distribution"] == {"0.5": 1, "3.5": 1, "4": 1, "5": 1}
    assert stats["history_length_percentiles"]["p100"] == 4
    assert stats["top_categories"][0] == {"category": "Adventure", "items": 2, "interactions": 5}
    assert "top categories" in err


@pytest.mark.slow
def test_sample_movielens_100k_end_to_end(app: typer.Typer, tmp_path: Path) -> None:
    code, _, err = invoke(app, "ingest", "movielens-100k", "--sample", "--data-dir", str(tmp_path))
    assert code == 0, err
    code, out, _ = invoke(app, "stats", "--data-dir", str(tmp_path), "--json")
    stats = json.loads(out)
    assert (stats["users"], stats["items"], stats["ratings"]) == (943, 1682, 100_000)


def test_tables_show_untitled_items_and_cut_fields(app: typer.Typer, tmp_path: Path) -> None:
    """What `--json` counts is on the human tables too: fields cut on ingest, untitled items."""
    folder = tmp_path / "ml"
    folder.mkdir()
    long_tag = "t" * 30_000  # over the tag bound: kept, cut, counted
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Animation\n2,,Drama\n"
    )
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n7,1,4,978300760\n7,2,3,978300761\n"
    )
    (folder / "tags.csv").write_text(f"userId,movieId,tag,timestamp\n7,1,{long_tag},978300762\n")
    data = tmp_path / "data"
    code, out, err = invoke(
        app, "ingest", "movielens", str(folder), "--data-dir", str(data), "--json"
    )
    assert code == 0, err
    cut = json.loads(out)["fields_cut"]
    assert cut, "the fixture must cut a field"
    table = " ".join(err.split())
    assert "fields cut or left out" in table
    assert all(name in table for name in cut)
    code, _, err = invoke(app, "stats", "--data-dir", str(data))
    assert code == 0
    assert "items without title │ 1 (shown by id)" in " ".join(err.split())
