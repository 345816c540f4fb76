"""`personae eval run | compare | tune-blend`: the eval harness in `evals/` from the CLI."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.cli.choices import ProtocolName, RerankModeName
from agent.cli.common import (
    BaseUrlOpt,
    ConcurrencyOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    console,
    fail,
    llm_errors,
    make_settings,
    print_json,
)
from agent.cli.deferred import load_embedder, open_client, open_generator, record_at

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.runtime.structured import StructuredGenerator
    from evals.compare import Comparison
    from evals.execute import RunResult
    from evals.prepare import RunOptions
    from evals.splits import Stage
    from evals.summary import RunSummary
    from evals.tune import BlendSweep


eval_app = typer.Typer(
    help="Evaluate rankings, profiles and reasons side by side with baselines "
    "(LLMRank and LlamaRec-style protocols).",
    no_args_is_help=True,
)

SHOWN = ("ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "hr@10", "mrr", "recall@10", "recall@20")

ProtocolOpt = Annotated[
    list[ProtocolName] | None,
    typer.Option(
        "--protocol",
        help="llmrank, llmrank-ref (LLMRank's own candidate lists, ML-100K), full or two-stage "
        "(repeatable). Default llmrank.",
    ),
]
UsersOpt = Annotated[int, typer.Option("--users", min=1, help="Users sampled with the seed.")]
UserIdsOpt = Annotated[
    list[str] | None, typer.Option("--user-ids", help="Exactly these users (comma-separated).")
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of users, candidates and bootstrap.")]
ShufflesOpt = Annotated[
    int | None,
    typer.Option(
        "--shuffles",
        min=1,
        help="LLM re-rank orders per user, averaged (LLMRank: 3). Default: the setting of "
        "the mode (rerank_score_shuffles=3 scored, rerank_shuffles=1 generate).",
    ),
]
RerankModeOpt = Annotated[
    RerankModeName | None,
    typer.Option(
        "--rerank-mode",
        help="scored: label log-probs, one prefill per order; generate: the model writes a "
        "ranked list with reasons. Default: the rerank_mode setting (scored).",
    ),
]
NoLlmOpt = Annotated[
    bool, typer.Option("--no-llm", help="Non-LLM systems only (no profiles, no re-rank).")
]
SmokeOpt = Annotated[
    bool,
    typer.Option(
        "--smoke",
        help="Allow fake backends (without --base-url: a schema-filling fake LLM, no server). "
        "Plumbing only; the report says so.",
    ),
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Runs folder (default DATA_DIR/evals).")]
CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="LLM result cache (default DATA_DIR/evals/cache)."),
]


@contextmanager
def llm(settings: Settings, use_llm: bool, smoke: bool) -> Iterator[StructuredGenerator | None]:
    from evals.smoke import smoke_generator

    if not use_llm:
        yield None
    elif smoke and not settings.base_url:
        yield smoke_generator(settings)
    else:
        with open_generator(settings) as generator:
            yield generator


@contextmanager
def bar_progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[], None]]]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console, disable=not enabled) as progress:

        def task(label: str, total: int) -> Callable[[], None]:
            task_id = progress.add_task(label, total=total)
            return lambda: progress.advance(task_id)

        yield task


def reproduce_command(argv: list[str], environ: Mapping[str, str]) -> str:
    """The command line as run, with the `PERSONAE_` settings it read from the environment
    (the API key left out): without them the report's command would not reproduce the run."""
    from agent.config import ENV_PREFIX

    env = [
        f"{name}={shlex.quote(value)}"
        for name, value in sorted(environ.items())
        if name.startswith(ENV_PREFIX) and name != f"{ENV_PREFIX}API_KEY"
    ]
    return " ".join([*env, "personae", *(shlex.quote(a) for a in argv)])


def run_eval(settings: Settings, options: RunOptions, show: bool) -> RunResult:
    from agent.store.item_index import ItemIndex
    from evals.backends import FakeBackendError, check_backends
    from evals.execute import execute
    from evals.prepare import EvalContext, EvalError

    command = reproduce_command(sys.argv[1:], os.environ)
    embedder = load_embedder(settings)
    try:
        check_backends(None, embedder, options.smoke)  # before any server is started
        with (
            llm(settings, options.use_llm, options.smoke) as generator,
            record_at(settings.data_dir) as record,
            bar_progress(show) as progress,
        ):
            index = ItemIndex(open_client(settings), embedder)
            ctx = EvalContext(settings, record, index, embedder, generator)
            return execute(ctx, options, progress, command)
    except (FakeBackendError, EvalError) as err:
        fail(str(err))
    except llm_errors() as err:
        fail(f"{err}\n(--no-llm evaluates the non-LLM systems only)")


def ids(values: list[str] | None) -> list[str] | None:
    found = [v.strip() for group in values or [] for v in group.split(",") if v.strip()]
    return found or None


def options_for(settings: Settings, stage: Stage, **given: object) -> RunOptions:
    from evals.prepare import RunOptions

    out = given.pop("out") or settings.data_dir / "evals"
    cache = given.pop("cache_dir") or settings.data_dir / "evals" / "cache"
    chosen = given.pop("rerank_mode", None)
    mode = settings.rerank_mode if chosen is None else str(chosen)
    default_shuffles = (
        settings.rerank_score_shuffles if mode == "scored" else settings.rerank_shuffles
    )
    shuffles = given.pop("shuffles", None) or default_shuffles
    if given.get("blend") is None:  # rerank_blend unset: the `blended` system's own default
        given.pop("blend", None)
    return RunOptions(stage=stage, out_dir=out, cache_dir=cache, rerank_mode=mode,
                      shuffles=shuffles, **given)  # fmt: skip


@eval_app.command("run")
def run_cmd(
    protocol: ProtocolOpt = None,
    users: UsersOpt = 200,
    user_ids: UserIdsOpt = None,
    seed: SeedOpt = 0,
    shuffles: ShufflesOpt = None,
    rerank_mode: RerankModeOpt = None,
    blend: Annotated[
        float | None, typer.Option("--blend", min=0, max=1, help="LLM weight (default setting).")
    ] = None,
    no_llm: NoLlmOpt = False,
    no_rank: Annotated[
        bool,
        typer.Option(
            "--no-rank",
            help="Skip the sequential model and the learned rankers (their fits take minutes).",
        ),
    ] = False,
    no_rerank: Annotated[
        bool,
        typer.Option(
            "--no-rerank",
            help="LLM profiles only, no LLM re-rank: profile quality and dense-profile at "
            "about half the LLM time.",
        ),
    ] = False,
    reasons: Annotated[
        int,
        typer.Option(
            "--reasons",
            min=0,
            help="Also write reasons for each user's top K (EASE on the training prefix) "
            "through recommend's code and judge them: faithfulness, deletion test, false "
            "claims, variety; no-LLM and LLM side by side (the LLM: one more request per "
            "user). Default 0: off.",
        ),
    ] = 0,
    smoke: SmokeOpt = False,
    out: OutOpt = None,
    cache_dir: CacheOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate every system side by side on the test split (last event per user) and write
    a run folder: per_user.jsonl, summary.json, manifest.json, report.md and plots. LLM
    results are cached, so an interrupted run resumes when run again.

    Example: personae eval run --protocol llmrank --users 200 --seed 0 --base-url URL"""
    from evals.protocols import Protocol
    from evals.splits import Stage

    settings = make_settings(model=model, base_url=base_url, data_dir=data_dir,
                             concurrency=concurrency)  # fmt: skip
    protocols = [Protocol(p.value) for p in protocol or [ProtocolName.LLMRANK]]
    options = options_for(
        settings, Stage.TEST, protocols=protocols, users=users,
        user_ids=ids(user_ids), seed=seed, shuffles=shuffles, rerank_mode=rerank_mode,
        blend=settings.rerank_blend if blend is None else blend, use_llm=not no_llm,
        rank=not no_rank, rerank=not no_rerank, smoke=smoke, out=out, cache_dir=cache_dir,
        reasons=reasons,
    )  # fmt: skip
    result = run_eval(settings, options, show=not as_json)
    if as_json:
        print_json({"run_dir": str(result.run_dir), "summary": result.summary.model_dump()})
        return
    show_summary(result.summary)
    console.print(f"run folder: {result.run_dir} (report.md)")


def show_summary(summary: RunSummary) -> None:
    if summary.smoke:
        console.print("[bold yellow]SMOKE RUN: fake backends, numbers mean nothing[/]")
    for name, protocol in summary.protocols.items():
        metrics = [m for m in SHOWN if m in protocol.metrics]
        table = Table(title=f"{name}: {protocol.users} users, {summary.stage} split (x100)")
        table.add_column("system")
        for metric in metrics:
            table.add_column(metric, justify="right")
        for system, result in protocol.systems.items():
            cells = []
            for metric in metrics:
                m = result.metrics[metric]
                cells.append(
                    f"{m.mean:.2f} [{m.low:.1f}, {m.high:.1f}]" if metric == "ndcg@10"
                    else f"{m.mean:.2f}"
                )  # fmt: skip
            table.add_row(system, *cells)
        console.print(table)
    for key, value in summary.checks.items():
        console.print(f"check: {key}: {value}")


@eval_app.command("compare")
def compare_cmd(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="Run folder (baseline).")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="Run folder (new).")],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Only these metrics (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print B minus A for every protocol, system and metric both runs have; with a paired
    bootstrap interval when both scored the same users on the same candidates."""
    from evals.compare import compare_runs

    for run in (run_a, run_b):
        if not (run / "summary.json").exists():
            fail(f"{run} is not a run folder (no summary.json)")
    result = compare_runs(run_a, run_b)
    if metric:
        result.rows = [r for r in result.rows if r.metric in metric]
    if as_json:
        print_json(result.model_dump())
        return
    show_comparison(result)


def show_comparison(result: Comparison) -> None:
    table = Table(title=f"B - A: {result.run_b} vs {result.run_a}")
    for column in ("protocol", "system", "metric", "A", "B", "B - A", "95% CI (paired)"):
        table.add_column(column)
    for r in result.rows:
        ci = f"[{r.low:.2f}, {r.high:.2f}]" if r.low is not None and r.high is not None else "-"
        table.add_row(r.protocol, r.system, r.metric, f"{r.a:.2f}", f"{r.b:.2f}",
                      f"{r.diff:+.2f}", ci)  # fmt: skip
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")


@eval_app.command("tune-blend")
def tune_blend_cmd(
    protocol_name: Annotated[
        ProtocolName, typer.Option("--protocol", help="llmrank or two-stage.")
    ] = ProtocolName.LLMRANK,
    users: UsersOpt = 200,
    seed: SeedOpt = 0,
    shuffles: ShufflesOpt = None,
    rerank_mode: RerankModeOpt = None,
    smoke: SmokeOpt = False,
    out: OutOpt = None,
    cache_dir: CacheOpt = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Pick the LLM weight of the blended ranking on the validation split (second-to-last
    event; profiles from the events before it), scoring weights 0, 0.1, ..., 1 on the same
    LLM ranks, and store the best for the served model and re-rank mode in
    DATA_DIR/models/rerank_blend.json: `recommend` blends at it when no ranker is fitted
    (PERSONAE_RERANK_BLEND overrides it). A smoke run stores nothing."""
    from agent.store.fitted import save_tuned_blend
    from evals.execute import load_records
    from evals.protocols import Protocol
    from evals.splits import Stage
    from evals.tune import sweep, tuned

    protocol = Protocol(protocol_name.value)
    if protocol is Protocol.FULL:
        fail("tune-blend needs a protocol with a re-rank: llmrank or two-stage")
    settings = make_settings(model=model, base_url=base_url, data_dir=data_dir,
                             concurrency=concurrency)  # fmt: skip
    options = options_for(
        settings, Stage.VALIDATION, protocols=[protocol], users=users, seed=seed,
        shuffles=shuffles, rerank_mode=rerank_mode, blend=settings.rerank_blend, use_llm=True,
        smoke=smoke, out=out,
        cache_dir=cache_dir,
    )  # fmt: skip
    result = run_eval(settings, options, show=not as_json)
    if result.manifest.options.get("stage") != Stage.VALIDATION.value:
        fail("tune-blend ran on another split than validation: nothing stored")
    fusion = "fusion"
    found = sweep(load_records(result.run_dir), protocol, fusion, seed=seed,
                  samples=settings.eval_bootstrap)  # fmt: skip
    (result.run_dir / "blend_sweep.json").write_text(found.model_dump_json(indent=2))
    stored = None
    model_name = result.summary.llm_model
    if not result.summary.smoke and model_name is not None:
        choice = tuned(found, model_name, options.rerank_mode, options.shuffles,
                       result.manifest.data_hash, str(result.run_dir))  # fmt: skip
        stored = save_tuned_blend(settings.data_dir, choice)
    if as_json:
        print_json({"run_dir": str(result.run_dir), "sweep": found.model_dump(),
                    "stored": str(stored) if stored is not None else None,
                    "model": model_name, "mode": options.rerank_mode})  # fmt: skip
        return
    show_sweep(found, result, stored, model_name, options.rerank_mode)


def show_sweep(found: BlendSweep, result: RunResult, stored: Path | None, model: str | None,
               mode: str) -> None:  # fmt: skip
    table = Table(title=f"blend weight on the validation split ({found.protocol}, "
                        f"{found.users} users, {found.reranked_users} re-ranked)")  # fmt: skip
    for column in ("weight", found.metric, "95% CI"):
        table.add_column(column)
    for p in found.points:
        mark = " <- best" if p.weight == found.best else ""
        table.add_row(f"{p.weight:.1f}", f"{p.mean:.2f}{mark}", f"[{p.low:.2f}, {p.high:.2f}]")
    console.print(table)
    if result.summary.smoke:
        console.print("[bold yellow]SMOKE RUN: fake backends, the weight means nothing[/]")
    console.print(f"best: {found.best}  (run folder: {result.run_dir})")
    if stored is None:
        console.print("not stored (smoke run): `recommend` keeps its weight")
        return
    console.print(
        f"stored: weight {found.best} for model {model!r} ({mode} re-rank) in {stored}; "
        "`recommend` blends at it when no ranker is fitted (PERSONAE_RERANK_BLEND overrides)"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(eval_app, name="eval")
