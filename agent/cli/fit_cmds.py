"""`personae index models`: fit the record's models ahead of time, so `recommend` loads them.

Collaborative (EASE) and popularity are fitted from the interactions and kept under the data
dir with the record state they were fitted on (`agent.store.fitted`); commands load them while
the record is unchanged and refit (saying so on stderr) after it changed. This command also
embeds every profile's query text into the query-vector cache (`agent.store.query_vectors`),
so `recommend` does not load the embedding model for a known profile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.common import DataDirOpt, JsonOpt, console, make_settings, print_json
from agent.cli.deferred import load_embedder, record_at

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.embeddings import Embedder
    from agent.store.record import RecordStore


@dataclass
class FitLine:
    model: str
    refitted: bool
    seconds: float


def fit_collaborative(settings: Settings, record: RecordStore) -> tuple[str, bool]:
    from agent.recommend.collaborative import ARTIFACT, load_or_fit

    s = settings
    _, refitted = load_or_fit(record, s.data_dir, s.collaborative_lambda, s.collaborative_max_items)
    return str(ARTIFACT), refitted


def fit_popularity(settings: Settings, record: RecordStore) -> tuple[str, bool]:
    from agent.recommend.popularity import ARTIFACT, load_or_fit

    _, refitted = load_or_fit(record, settings.data_dir, settings.popularity_half_life_days)
    return str(ARTIFACT), refitted


Fitter = Callable[["Settings", "RecordStore"], tuple[str, bool]]
FITTERS: list[tuple[str, Fitter]] = [
    ("collaborative", fit_collaborative),
    ("popularity", fit_popularity),
]
"""What `index models` fits, in order: (short name, fit-or-load function)."""


def warm_query_vectors(
    settings: Settings, record: RecordStore, embedder: Embedder, user_ids: Sequence[str] | None
) -> tuple[int, int]:
    """Embed the recommend query text of these users' latest profiles (all profiled users when
    None) into the query-vector cache. Returns (already cached, embedded now)."""
    from agent.recommend.dense import profile_query_text
    from agent.store.profiles import ProfileStore
    from agent.store.query_vectors import CachedEmbedder, cache_folder

    store = ProfileStore(record)
    ids = list(store.latest_stamps()) if user_ids is None else list(user_ids)
    texts = [profile_query_text(p) for uid in ids if (p := store.get(uid)) is not None]
    cached = CachedEmbedder(embedder, cache_folder(settings.data_dir))
    if texts:
        cached.embed(texts)
    return cached.hits, cached.misses


@contextmanager
def _steps(total: int, enabled: bool) -> Iterator[Callable[[str], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True, disable=not enabled) as progress:
        task = progress.add_task("fitting", total=total)

        def step(label: str) -> None:
            progress.update(task, description=label)
            progress.advance(task)

        yield step


def index_models(
    no_queries: Annotated[
        bool, typer.Option("--no-queries", help="Skip embedding the profiles' query texts.")
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit (or confirm current) the collaborative and popularity models on the record, and
    cache the embedded query text of every profile, so `recommend` starts fast. Models that
    are current are loaded, not refitted; `recommend` refits by itself after new events."""
    settings = make_settings(data_dir=data_dir)
    lines: list[FitLine] = []
    queries: dict[str, float] | None = None
    with record_at(settings.data_dir) as record, _steps(len(FITTERS) + 1, True) as step:
        for name, fitter in FITTERS:
            started = time.perf_counter()
            label, refitted = fitter(settings, record)
            lines.append(FitLine(label, refitted, round(time.perf_counter() - started, 3)))
            step(f"{name} done")
        if not no_queries:
            started = time.perf_counter()
            hits, misses = warm_query_vectors(settings, record, load_embedder(settings), None)
            seconds = round(time.perf_counter() - started, 3)
            queries = {"cached": hits, "embedded": misses, "seconds": seconds}
        step("query vectors done")
    if as_json:
        print_json({"models": [asdict(line) for line in lines], "query_vectors": queries})
        return
    for line in lines:
        what = "fitted" if line.refitted else "current (loaded)"
        console.print(f"{line.model}: {what} in {line.seconds:.2f} s")
    if queries is not None:
        console.print(
            f"query vectors: {queries['embedded']:.0f} embedded, {queries['cached']:.0f} already "
            f"cached in {queries['seconds']:.2f} s"
        )


def register(index_app: typer.Typer) -> None:
    index_app.command("models")(index_models)
