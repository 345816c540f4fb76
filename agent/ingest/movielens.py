"""MovieLens in the ml-latest / ml-20m / ml-25m layout: ratings.csv, movies.csv and, if
present, tags.csv (tags become `feedback` events whose text is the tag). links.csv and the
genome files hold no interactions; they are ignored, and any other file name is an error."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from agent.ingest.movielens100k import split_title_year
from agent.ingest.rows import FormatError, ReadContext, Row, parse_rating, parse_timestamp, require
from agent.ingest.table import Table, convert_rows, read_table
from agent.schemas import EventType, Interaction, Item

RATING_RANGE = (0.5, 5.0)
NO_GENRES = "(no genres listed)"
FILES = ("movies.csv", "ratings.csv", "tags.csv")
IGNORED = ("links.csv", "genome-scores.csv", "genome-tags.csv", "README.txt")

MOVIES = Table("MovieLens movies.csv", ",", ["movieId", "title", "genres"])
RATINGS = Table("MovieLens ratings.csv", ",", ["userId", "movieId", "rating", "timestamp"])
TAGS = Table("MovieLens tags.csv", ",", ["userId", "movieId", "tag", "timestamp"])


def classify(paths: Sequence[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        for candidate in sorted(path.iterdir()) if path.is_dir() else [path]:
            if candidate.name in FILES:
                found[candidate.name] = candidate
            elif not path.is_dir() and candidate.name not in IGNORED:
                raise FormatError(f"{candidate}: not a MovieLens file; expected {', '.join(FILES)}")
    if "ratings.csv" not in found and "tags.csv" not in found and "movies.csv" not in found:
        raise FormatError(f"no {', '.join(FILES)} among {[str(p) for p in paths]}")
    return found


def read(paths: Sequence[Path], ctx: ReadContext) -> Iterator[Row]:
    """movies.csv first so that ratings of unknown movies are caught."""
    files = classify(paths)
    if "movies.csv" in files:
        yield from convert_rows(read_table(files["movies.csv"], MOVIES, ctx), _movie)
    if "ratings.csv" in files:
        yield from convert_rows(read_table(files["ratings.csv"], RATINGS, ctx), _rating)
    if "tags.csv" in files:
        yield from convert_rows(read_table(files["tags.csv"], TAGS, ctx), _tag)


def _movie(row: dict[str, str]) -> Item:
    title, year = split_title_year(require(row, "title"))
    genres = row["genres"].strip()
    return Item(
        item_id=require(row, "movieId"),
        title=title,
        year=year,
        categories=[] if genres == NO_GENRES else genres.split("|"),
    )


def _rating(row: dict[str, str]) -> Interaction:
    return Interaction(
        user_id=require(row, "userId"),
        item_id=require(row, "movieId"),
        timestamp=parse_timestamp(require(row, "timestamp"), unit="s"),
        event_type=EventType.RATING,
        rating=parse_rating(require(row, "rating"), *RATING_RANGE),
    )


def _tag(row: dict[str, str]) -> Interaction:
    return Interaction(
        user_id=require(row, "userId"),
        item_id=require(row, "movieId"),
        timestamp=parse_timestamp(require(row, "timestamp"), unit="s"),
        event_type=EventType.FEEDBACK,
        review_text=require(row, "tag"),
    )
