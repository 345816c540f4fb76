"""MovieLens 100K: the GroupLens files (u.data, u.item, u.user) or RecBole's atomic files
(ml-100k.inter/.item/.user, as shipped inside the `recbole` package).

GroupLens terms forbid redistribution, so `sample_dir()` finds the copy in the installed
recbole package instead of the repository carrying one.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from agent.ingest.fields import (
    MAX_ATTRIBUTE_CHARS,
    MAX_CATEGORY_CHARS,
    MAX_TITLE_CHARS,
    RowError,
    parse_id,
    parse_rating,
    parse_text,
    parse_timestamp,
    parse_year,
    require,
)
from agent.ingest.rows import FormatError, ReadContext, Row
from agent.ingest.table import Table, convert_rows, read_table
from agent.schemas import EventType, Interaction, Item, User

GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]
"""u.item's 19 genre flag columns, in file order (from u.genre)."""

RATING_RANGE = (1.0, 5.0)

U_DATA = Table(
    "MovieLens 100K u.data",
    "\t",
    ["user_id", "item_id", "rating", "timestamp"],
    columns=["user_id", "item_id", "rating", "timestamp"],
    quoted=False,
)
U_ITEM = Table(
    "MovieLens 100K u.item",
    "|",
    ["item_id", "title"],
    columns=["item_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES],
    encoding="latin-1",
    quoted=False,
)
U_USER = Table(
    "MovieLens 100K u.user",
    "|",
    ["user_id"],
    columns=["user_id", "age", "gender", "occupation", "zip_code"],
    quoted=False,
)


def _atomic(description: str, required: list[str]) -> Table:
    """RecBole atomic file: tab-separated, header names carry ':token'/':float' suffixes."""
    return Table(
        description,
        "\t",
        required,
        quoted=False,
        header_name=lambda name: name.strip().split(":", 1)[0],
    )


ATOMIC_INTER = _atomic("RecBole ml-100k.inter", ["user_id", "item_id", "rating", "timestamp"])
ATOMIC_ITEM = _atomic("RecBole ml-100k.item", ["item_id", "movie_title"])
ATOMIC_USER = _atomic("RecBole ml-100k.user", ["user_id"])

EXPECTED = "u.data/u.item/u.user or RecBole ml-100k.inter/.item/.user"


def sample_dir() -> Path:
    """The ML-100K copy inside the installed recbole package."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "--sample needs the recbole package: pip install --no-deps recbole==1.2.1"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not (folder / "ml-100k.inter").is_file():
        raise FileNotFoundError(f"recbole is installed but {folder}/ml-100k.inter is missing")
    return folder


def _classify(paths: Sequence[Path]) -> dict[str, Path]:
    """Map 'item'/'user'/'inter' to files, expanding directories."""
    found: dict[str, Path] = {}
    for path in paths:
        candidates = sorted(path.iterdir()) if path.is_dir() else [path]
        for candidate in candidates:
            kind = _kind(candidate)
            if kind is None and not path.is_dir():
                raise FormatError(f"{candidate}: not a MovieLens 100K file; expected {EXPECTED}")
            if kind is not None:
                found[kind] = candidate
    if "inter" not in found:
        raise FormatError(f"no ratings file among {[str(p) for p in paths]}; expected {EXPECTED}")
    return found


GROUPLENS_NAMES = {"u.data": "inter", "u.item": "item", "u.user": "user"}


def _kind(path: Path) -> str | None:
    if path.name in GROUPLENS_NAMES:
        return GROUPLENS_NAMES[path.name]
    if path.suffix in (".inter", ".item", ".user"):
        return path.suffix[1:]
    return None


def read(paths: Sequence[Path], ctx: ReadContext) -> Iterator[Row]:
    """Items first, then users, then ratings (so unknown item ids can be detected)."""
    files = _classify(paths)
    if "item" in files:
        yield from _items(files["item"], ctx)
    if "user" in files:
        yield from _users(files["user"], ctx)
    yield from _ratings(files["inter"], ctx)


def _items(path: Path, ctx: ReadContext) -> Iterator[Row]:
    if path.name not in GROUPLENS_NAMES:
        return convert_rows(read_table(path, ATOMIC_ITEM, ctx), _atomic_item)
    return convert_rows(read_table(path, U_ITEM, ctx), _u_item)


def _u_item(row: dict[str, str]) -> Item:
    item_id = parse_id(row["item_id"], "item_id", digits=True)
    title, year = split_title_year(
        parse_text(row["title"], "title", MAX_TITLE_CHARS, one_line=True)
    )
    flags = [genre for genre in GENRES if _flag(row, genre) and genre != "unknown"]
    url = parse_text(row["imdb_url"], "imdb_url", MAX_ATTRIBUTE_CHARS, one_line=True)
    return Item(
        item_id=item_id,
        title=title or item_id,
        categories=flags,
        year=year or parse_year(row["release_date"], "release_date", lenient=True),
        attributes={"imdb_url": url} if url else {},
    )


def _flag(row: dict[str, str], genre: str) -> bool:
    value = row[genre].strip()
    if value not in ("0", "1"):
        raise RowError(f"bad type: genre flag {genre!r} is {value[:20]!r}, expected 0 or 1")
    return value == "1"


def _atomic_item(row: dict[str, str]) -> Item:
    item_id = parse_id(row["item_id"], "item_id")
    title = parse_text(row["movie_title"], "movie_title", MAX_TITLE_CHARS, one_line=True)
    classes = parse_text(row.get("class"), "class", MAX_CATEGORY_CHARS * 10, one_line=True)
    return Item(
        item_id=item_id,
        title=title or item_id,
        categories=classes.split(),
        year=parse_year(row.get("release_year"), "release_year", lenient=True),
    )


_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)$")


def split_title_year(title: str) -> tuple[str, int | None]:
    """'Toy Story (1995)' -> ('Toy Story', 1995); titles without a year stay as they are."""
    stripped = title.strip()
    match = _TITLE_YEAR.match(stripped)
    if match is None or not match["title"]:
        return stripped, None
    return match["title"], int(match["year"])


def _users(path: Path, ctx: ReadContext) -> Iterator[Row]:
    table = U_USER if path.name in GROUPLENS_NAMES else ATOMIC_USER
    return convert_rows(read_table(path, table, ctx), _user)


def _user(row: dict[str, str]) -> User:
    attributes: dict[str, str | int | float | bool | None] = {}
    for key, value in row.items():
        text = parse_text(value, key, MAX_ATTRIBUTE_CHARS, one_line=True)
        if key != "user_id" and text:
            attributes[key] = (
                int(text) if key == "age" and text.isascii() and text.isdigit() else text
            )
    return User(user_id=parse_id(row["user_id"], "user_id"), attributes=attributes)


def _ratings(path: Path, ctx: ReadContext) -> Iterator[Row]:
    if path.name in GROUPLENS_NAMES:
        return convert_rows(read_table(path, U_DATA, ctx), _rating)
    return convert_rows(read_table(path, ATOMIC_INTER, ctx), _atomic_rating)


def rating_event(
    row: dict[str, str],
    user: str,
    item: str,
    rating_range: tuple[float, float],
    digits: bool = True,
) -> Interaction:
    """A MovieLens rating row (user, item, rating, Unix seconds) under its columns' names:
    GroupLens ids are numbers; RecBole's atomic files hold tokens of any dataset."""
    return Interaction(
        user_id=parse_id(row[user], user, digits=digits),
        item_id=parse_id(row[item], item, digits=digits),
        timestamp=parse_timestamp(require(row, "timestamp"), unit="s"),
        event_type=EventType.RATING,
        rating=parse_rating(require(row, "rating"), *rating_range),
    )


def _rating(row: dict[str, str]) -> Interaction:
    return rating_event(row, "user_id", "item_id", RATING_RANGE)


def _atomic_rating(row: dict[str, str]) -> Interaction:
    return rating_event(row, "user_id", "item_id", RATING_RANGE, digits=False)
