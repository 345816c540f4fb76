"""`personae ingest`, `index items`, `store check|rebuild` and `stats`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from agent.cli import fit_cmds
from agent.cli.choices import EventName, FormatName, RowKind
from agent.cli.common import DataDirOpt, JsonOpt, console, fail, make_settings, print_json
from agent.cli.deferred import load_embedder, open_client, record_at

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.ingest import Format
    from agent.ingest.pipeline import IngestReport
    from agent.ingest.tabular import Kind, TabularOptions
    from agent.schemas import EventType
    from agent.store.item_index import ItemIndex

index_app = typer.Typer(help="Build the Chroma indexes from the record.", no_args_is_help=True)
store_app = typer.Typer(help="Verify or rebuild the Chroma indexes.", no_args_is_help=True)

EmbeddingModelOpt = Annotated[
    str | None,
    typer.Option(
        "--embedding-model",
        help="'default' (packaged all-MiniLM-L6-v2) or a sentence-transformers id or folder.",
    ),
]
ChromaUrlOpt = Annotated[
    str | None, typer.Option("--chroma-url", help="Chroma server URL (default: embedded store).")
]
DELIMITERS = {"tab": "\t", "\\t": "\t", "comma": ",", "pipe": "|", "semicolon": ";"}


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest_cmd)
    app.command("stats")(stats_cmd)
    fit_cmds.register(index_app)
    app.add_typer(index_app, name="index")
    app.add_typer(store_app, name="store")


# -- ingest ------------------------------------------------------------------------------


def ingest_cmd(
    format_choice: Annotated[FormatName, typer.Argument(metavar="FORMAT", help="Input format.")],
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to read.", show_default=False)
    ] = None,
    sample: Annotated[
        bool, typer.Option("--sample", help="movielens-100k: use the copy inside recbole.")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Stop at the first bad row; write nothing.")
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help="Rejects file (JSONL); default under DATA_DIR/rejects."),
    ] = None,
    create_items: Annotated[
        bool,
        typer.Option("--create-items", help="Accept unknown item ids as items without metadata."),
    ] = False,
    kind_choice: Annotated[
        RowKind, typer.Option("--kind", help="csv/jsonl: what the rows are.")
    ] = RowKind.INTERACTIONS,
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="FIELD=COLUMN",
            help="csv/jsonl: read FIELD from COLUMN (repeatable). Fields: user_id, item_id, "
            "timestamp, rating, review_title, review_text, event_type; for items: title, "
            "categories, description, year.",
        ),
    ] = None,
    delimiter: Annotated[
        str, typer.Option("--delimiter", help="csv: separator (',', 'tab', ';', '|').")
    ] = ",",
    event_choice: Annotated[
        EventName, typer.Option("--event-type", help="csv/jsonl: type of rows without one.")
    ] = EventName.RATING,
    rating_min: Annotated[float, typer.Option("--rating-min", help="csv/jsonl.")] = 0.0,
    rating_max: Annotated[float, typer.Option("--rating-max", help="csv/jsonl.")] = 5.0,
    category_sep: Annotated[
        str, typer.Option("--category-sep", help="csv: separator inside the categories column.")
    ] = "|",
    time_unit: Annotated[
        str, typer.Option("--time-unit", help="csv/jsonl: auto, s, ms or iso.")
    ] = "auto",
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Read interaction data into the record. Bad rows are rejected with file:line and a
    reason (see --rejects); duplicates are counted; a failed ingest changes nothing."""
    from agent.ingest import Format, read_rows
    from agent.ingest.pipeline import IngestOptions, StrictStop, ingest
    from agent.ingest.rows import FormatError, ReadContext
    from agent.ingest.tabular import Kind
    from agent.schemas import EventType

    format_name = Format(format_choice.value)
    kind, event_type = Kind(kind_choice.value), EventType(event_choice.value)
    settings = make_settings(data_dir=data_dir)
    files = _input_paths(format_name, paths or [], sample)
    tabular = _tabular_options(
        kind,
        mapping or [],
        delimiter,
        event_type,
        (rating_min, rating_max),
        category_sep,
        time_unit,
    )
    options = IngestOptions(
        strict=strict,
        rejects_path=rejects or _default_rejects(settings, format_name),
        create_items=create_items,
    )
    with record_at(settings.data_dir) as store, _progress() as progress:
        ctx = ReadContext(_file_progress(progress))
        try:
            report = ingest(
                store,
                read_rows(format_name, files, ctx, tabular),
                format_name.value,
                [str(f) for f in files],
                options,
            )
        except StrictStop as stop:
            fail(f"--strict: {stop}; nothing was written (reject in {options.rejects_path})")
        except (FormatError, FileNotFoundError, IsADirectoryError) as err:
            fail(f"{err}; nothing was written")
    _print_ingest(report)
    if as_json:
        print_json(report.to_dict())


def _input_paths(format_name: Format, paths: list[Path], sample: bool) -> list[Path]:
    from agent.ingest import Format
    from agent.ingest.movielens100k import sample_dir

    if sample:
        if format_name is not Format.MOVIELENS_100K or paths:
            fail("--sample takes no paths and only works with movielens-100k")
        try:
            return [sample_dir()]
        except FileNotFoundError as err:
            fail(str(err))
    if not paths:
        fail("give at least one PATH (or --sample for movielens-100k)")
    for path in paths:
        if not path.exists():
            fail(f"{path}: no such file or directory")
    return paths


def _tabular_options(
    kind: Kind,
    mapping: list[str],
    delimiter: str,
    event_type: EventType,
    rating_range: tuple[float, float],
    category_sep: str,
    time_unit: str,
) -> TabularOptions:
    from agent.ingest.rows import FormatError
    from agent.ingest.tabular import TabularOptions

    pairs: dict[str, str] = {}
    for entry in mapping:
        field, sep, column = entry.partition("=")
        if not sep or not field.strip() or not column.strip():
            fail(f"--map {entry!r}: expected FIELD=COLUMN, e.g. user_id=userId")
        pairs[field.strip()] = column.strip()
    if time_unit not in ("auto", "s", "ms", "iso"):
        fail(f"--time-unit {time_unit!r}: expected auto, s, ms or iso")
    if rating_range[0] > rating_range[1]:
        fail(f"--rating-min {rating_range[0]} is above --rating-max {rating_range[1]}")
    options = TabularOptions(
        kind=kind,
        mapping=pairs,
        delimiter=DELIMITERS.get(delimiter, delimiter),
        event_type=event_type,
        rating_range=rating_range,
        category_separator=category_sep,
        time_unit=time_unit,
    )
    try:
        options.check()
    except FormatError as err:
        fail(f"--map: {err}")
    return options


def _default_rejects(settings: Settings, format_name: Format) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.data_dir / "rejects" / f"{format_name.value}-{stamp}.jsonl"


@contextmanager
def _progress() -> Iterator[Progress]:
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        yield progress


def _file_progress(progress: Progress) -> Callable[[Path], Callable[[int], None]]:
    def start(path: Path) -> Callable[[int], None]:
        size = path.stat().st_size if path.is_file() else None
        task = progress.add_task(path.name, total=size or None)
        return lambda done: progress.update(task, completed=done)

    return start


def _print_ingest(report: IngestReport) -> None:
    table = Table(title=f"ingest {report.format}", show_header=False)
    rows: list[tuple[str, Any]] = [
        ("rows read", report.rows_read),
        (
            "items added / updated / unchanged",
            _triple(report.items_added, report.items_updated, report.items_unchanged),
        ),
        ("items created without metadata", report.items_created_bare),
        ("users added / updated", f"{report.users_added:,} / {report.users_updated:,}"),
        ("interactions added", report.interactions_added),
        ("duplicates skipped", report.duplicates),
        ("rejected", report.rejected),
    ]
    rows += [(f"  {reason}", n) for reason, n in report.rejects_by_reason.items()]
    if report.rejects_path:
        rows.append(("rejects file", report.rejects_path))
    if report.fields_cut:  # kept rows whose field was cut to its bound (or left out)
        rows.append(("fields cut or left out", sum(report.fields_cut.values())))
        rows += [(f"  {name}", n) for name, n in report.fields_cut.items()]
    rows.append(("rows/s", f"{report.rows_per_second:,.0f}"))
    for name, value in rows:
        table.add_row(name, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)


def _triple(a: int, b: int, c: int) -> str:
    return f"{a:,} / {b:,} / {c:,}"


# -- index / store -----------------------------------------------------------------------


def _index_settings(
    data_dir: Path | None, embedding_model: str | None, chroma_url: str | None
) -> Settings:
    return make_settings(data_dir=data_dir, embedding_model=embedding_model, chroma_url=chroma_url)


def _item_index(settings: Settings) -> ItemIndex:
    from agent.store.item_index import ItemIndex

    return ItemIndex(open_client(settings), load_embedder(settings))


@index_app.command("items")
def index_items(
    data_dir: DataDirOpt = None,
    embedding_model: EmbeddingModelOpt = None,
    chroma_url: ChromaUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Embed items into the Chroma item collection; only new or changed items are embedded."""
    settings = _index_settings(data_dir, embedding_model, chroma_url)
    with record_at(settings.data_dir) as store:
        total = store.item_count()
        if total == 0:
            fail("the record has no items: run `personae ingest` first")
        index = _item_index(settings)
        with _count_progress("index items", total) as advance:
            report = index.refresh(store.iter_items(), advance)
    console.print(
        f"indexed {report.total:,} items: {report.embedded:,} embedded, "
        f"{report.unchanged:,} unchanged, {report.deleted:,} deleted"
        f"{' (collection recreated for a new model)' if report.recreated else ''} "
        f"in {report.seconds:.1f} s"
    )
    if as_json:
        print_json(report.to_dict())


@contextmanager
def _count_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)


@store_app.command("check")
def store_check(
    data_dir: DataDirOpt = None,
    embedding_model: EmbeddingModelOpt = None,
    chroma_url: ChromaUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify the record (SQLite integrity) and the item index against it: counts, missing
    or stale ids, zero vectors, the wedged-store error, and a sample of stored vectors queried
    back (each must find itself). Exits 1 if anything is wrong."""
    from agent.store import consistency

    settings = _index_settings(data_dir, embedding_model, chroma_url)
    with record_at(settings.data_dir) as store:
        report = consistency.check(store, _item_index(settings))
    if as_json:
        print_json(report.to_dict())
    record = report.record
    console.print(
        f"record: {record.get('users', 0):,} users, {record.get('items', 0):,} items, "
        f"{record.get('interactions', 0):,} interactions; index: {report.indexed:,} items"
    )
    for problem in report.problems:
        console.print(f"[red]problem:[/] {problem}")
    if not report.ok:
        fail("store check failed: run `personae store rebuild` to rebuild the index")
    console.print("[green]ok[/]")


@store_app.command("rebuild")
def store_rebuild(
    data_dir: DataDirOpt = None,
    embedding_model: EmbeddingModelOpt = None,
    chroma_url: ChromaUrlOpt = None,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Embedded store only: delete the whole Chroma folder first (for a store so "
            "damaged that dropping the collection fails). Other collections must be rebuilt too.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop the item index and rebuild it from the record."""
    from agent.store import consistency

    settings = _index_settings(data_dir, embedding_model, chroma_url)
    if reset:
        if settings.chroma_url:
            fail("--reset only applies to the embedded store, not --chroma-url")
        consistency.reset_embedded_store(settings.data_dir)
    with record_at(settings.data_dir) as store:
        index = _item_index(settings)
        with _count_progress("rebuild items", store.item_count()) as advance:
            report = consistency.rebuild(store, index, advance)
    console.print(f"rebuilt the item index: {report.embedded:,} items in {report.seconds:.1f} s")
    if as_json:
        print_json(report.to_dict())


# -- stats -------------------------------------------------------------------------------


def stats_cmd(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Counts, rating distribution, history-length percentiles and top categories."""
    from agent.store.stats import record_stats

    settings = make_settings(data_dir=data_dir)
    with record_at(settings.data_dir) as store:
        stats = record_stats(store)
    if as_json:
        print_json(stats)
    _print_stats(stats)


def _print_stats(stats: dict[str, Any]) -> None:
    table = Table(title="record", show_header=False)
    for key in ("users", "items", "interactions", "ratings", "reviews_with_text"):
        table.add_row(key, f"{stats[key]:,}")
    if stats.get("items_without_title"):
        table.add_row("items without title", f"{stats['items_without_title']:,} (shown by id)")
    table.add_row("events", ", ".join(f"{k}: {v:,}" for k, v in stats["events"].items()))
    table.add_row(
        "ratings by value",
        ", ".join(f"{k}: {v:,}" for k, v in stats["rating_distribution"].items()),
    )
    table.add_row(
        "history length",
        ", ".join(f"{k} {v}" for k, v in stats["history_length_percentiles"].items()),
    )
    table.add_row(
        "top categories",
        ", ".join(f"{c['category']} ({c['interactions']:,})" for c in stats["top_categories"]),
    )
    console.print(table)
