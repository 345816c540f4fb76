"""`personae rank fit`: train the learned ranker that `personae recommend` uses when present.

lightgbm, torch, the record and the numpy-heavy rank modules are imported inside the command,
so `personae --help` never loads them."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from agent.cli.common import DataDirOpt, JsonOpt, console, fail, make_settings, print_json

rank_app = typer.Typer(
    help="The learned ranker (LightGBM LambdaRank over every retriever's score and rank, "
    "popularity, item age, category affinity and distance from recent items).",
    no_args_is_help=True,
)


@rank_app.command("fit")
def fit_cmd(
    depth: Annotated[
        int, typer.Option("--depth", min=1, help="Top items each retriever adds to the candidates.")
    ] = 50,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            min=1,
            help="At most this many epochs of the sequential model "
            "(early stopping on validation usually ends it sooner). Default: 200.",
        ),
    ] = None,
    no_sequential: Annotated[
        bool, typer.Option("--no-sequential", help="Leave the sequential (SASRec) source out.")
    ] = False,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="CPU threads for LightGBM and torch.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the user splits and models.")] = 0,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the production ranker on each user's latest event (sources fitted on the events
    before it), report metrics on a held-out slice of users against EASE alone, refit the
    sources on every event and save everything with a manifest under DATA_DIR/models/ranker.

    Example: personae rank fit --depth 50"""
    from dataclasses import replace

    from agent.cli.deferred import open_client
    from agent.embeddings import load_embedder
    from agent.rank.fit import FitOptions, fit_production, stored_vectors
    from agent.rank.model import RankerParams
    from agent.rank.sources import SourceParams
    from agent.recommend.sequential import SasRecParams
    from agent.store.item_index import ItemIndex
    from agent.store.record import RecordStore

    started = time.perf_counter()
    s = make_settings(data_dir=data_dir)
    defaults = SasRecParams()
    sequential = (
        None
        if no_sequential
        else replace(defaults, epochs=epochs or defaults.epochs, threads=threads)
    )
    options = FitOptions(
        sources=SourceParams(s.collaborative_lambda, s.collaborative_max_items,
                             s.popularity_half_life_days),
        sequential=sequential,
        ranker=replace(RankerParams(), threads=threads, seed=seed),
        depth=depth, min_history=s.eval_min_history, seed=seed,
    )  # fmt: skip
    with RecordStore.at(s.data_dir) as record:
        if not record.user_ids():
            fail(f"no users in {s.data_dir}: run `personae ingest` first")
        embedder = load_embedder(s)
        vectors = stored_vectors(ItemIndex(open_client(s), embedder))
        if vectors is None and not as_json:
            console.print("[yellow]warning:[/] no item index: dense features left out "
                          "(run `personae index items`)")  # fmt: skip
        step = (lambda label: None) if as_json else (lambda label: console.print(f"- {label}"))
        report = fit_production(record, s.data_dir, options, vectors, step, embedder.embed)
    seconds = round(time.perf_counter() - started, 2)
    if as_json:
        print_json({"path": str(report.path), "seconds": seconds,
                    "manifest": report.manifest.model_dump(mode="json")})  # fmt: skip
        return
    m = report.manifest.metrics
    console.print(
        f"ranker saved: {report.path} ({report.manifest.users:,} users, "
        f"{m['groups']:,} groups, {m['trees']} trees) in {seconds:.1f} s"
    )

    def num(key: str) -> str:
        return "-" if m.get(key) is None else f"{m[key]:.2f}"

    console.print(
        f"held-out users ({m['users']}), latest event, NDCG@10: ranker "
        f"{num('ranker_ndcg@10')} vs EASE {num('collaborative_ndcg@10')}; recall@10 "
        f"{num('ranker_recall@10')} vs {num('collaborative_recall@10')}"
    )
    top = list(report.manifest.importance)[:5]
    console.print(f"top features (gain): {', '.join(top)}")
    console.print(f"timings (s): {report.timings}")


def register(app: typer.Typer) -> None:
    app.add_typer(rank_app, name="rank")
