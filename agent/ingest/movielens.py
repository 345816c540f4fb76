"""MovieLens in the ml-latest / ml-20m / ml-25m layout: ratings.csv, movies.csv and, if
present, tags.csv (tags become `feedback` events whose text is the tag). links.csv and the
genome files hold no interactions; they are ignored, and any other file name is an error."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from agent.ingest.fields import (
    MAX_CATEGORY_CHARS,
    MAX_REVIEW_CHARS,
    MAX_TITLE_CHARS,
    RowError,
    parse_id,
    parse_text,
    parse_timestamp,
    require,
)
from agent.ingest.movielens100k import rating_event, split_title_year
from agent.ingest.rows import FormatError, ReadContext, Row
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
    """A movie without a title (real snapshots have some) is kept under its id, so its
    ratings are kept too; `personae stats` counts such items."""
    item_id = parse_id(row["movieId"], "movieId", digits=True)
    title, year = split_title_year(
        parse_text(row["title"], "title", MAX_TITLE_CHARS, one_line=True)
    )
    genres = parse_text(row["genres"], "genres", MAX_CATEGORY_CHARS * 10, one_line=True)
    return Item(
        item_id=item_id,
        title=title or item_id,
        year=year,
        categories=[] if genres == NO_GENRES else genres.split("|"),
    )


def _rating(row: dict[str, str]) -> Interaction:
    return rating_event(row, "userId", "movieId", RATING_RANGE)


def _tag(row: dict[str, str]) -> Interaction:
    tag = parse_text(row["tag"], "tag", MAX_REVIEW_CHARS)
    if not tag:
        raise RowError("missing field: 'tag' is empty or absent")
    return Interaction(
        user_id=parse_id(row["userId"], "userId", digits=True),
        item_id=parse_id(row["movieId"], "movieId", digits=True),
        timestamp=parse_timestamp(require(row, "timestamp"), unit="s"),
        event_type=EventType.FEEDBACK,
        review_text=tag,
    )
