"""`personae profile` and `personae update` (`profile show` is in `profile_show`, `profile edit`
in `profile_edit_cmds`)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.cli import profile_edit_cmds, profile_show
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
from agent.cli.fit_cmds import warm_query_vectors

if TYPE_CHECKING:
    from pathlib import Path

    from agent.config import Settings
    from agent.profiles.batch import BatchReport
    from agent.profiles.profiler import Profiler, ProfileRequest
    from agent.scale.rows import Mode
    from agent.store.record import RecordStore


RayOpt = Annotated[
    bool,
    typer.Option(
        "--ray",
        help="Run on Ray Data: workers render prompts, engine actors hold vLLM (no server).",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster to join, e.g. head:6379 (implies --ray); default: a local one.",
    ),
]

profile_app = typer.Typer(
    help="Write LLM profiles of users (see also: profile show).",
    invoke_without_command=True,
    no_args_is_help=False,
)
profile_show.register(profile_app)
profile_edit_cmds.register(profile_app)


@profile_app.callback()
def profile(
    ctx: typer.Context,
    users: Annotated[
        list[str] | None, typer.Option("--users", help="User ids (repeat or comma-separate).")
    ] = None,
    all_users: Annotated[bool, typer.Option("--all", help="Every user in the record.")] = False,
    sample: Annotated[int | None, typer.Option("--sample", help="N random users.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for --sample.")] = 0,
    user: Annotated[str | None, typer.Option("--user", help="One user (with --text).")] = None,
    text: Annotated[
        str | None, typer.Option("--text", help="Cold start: the user's words about themselves.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the prompt for the first user; no LLM.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Profile again even if the history is unchanged.")
    ] = False,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = None,
    use_ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Profile users with the LLM: one validated, grounded profile per user, stored with its
    provenance in the record and embedded in Chroma. Users whose history is unchanged since
    their last profile are skipped, so an interrupted run is finished by running it again.

    Examples: personae profile --sample 200 | personae profile --users 1,2,3 |
    personae profile --user new1 --text "I love slow sci-fi and hate horror" |
    personae profile --all --ray --ray-address head:6379."""
    if ctx.invoked_subcommand is not None:
        return
    from agent.profiles.pii import PiiEngineMissingError
    from agent.profiles.profiler import Profiler

    settings, use_ray = batch_settings(model, base_url, concurrency, data_dir, use_ray, ray_address)
    if use_ray and (text is not None or base_url):
        one_line_fail(
            "--ray profiles users of the record on its own engines: not with --text or "
            "--base-url (leave out --ray to use a server)"
        )
    try:
        with record_at(settings.data_dir) as record:
            profiler = Profiler(settings, record)
            if text is not None:
                ids = [user or fail("--text needs --user ID")]
                prepare = lambda uid: profiler.prepare_cold_start(uid, text)  # noqa: E731
            else:
                ids = select_users(record, users, all_users, sample, seed, user)
                prepare = profiler.prepare_full
            if dry_run:
                print_prompt(prepare, ids[0])
                return
            if use_ray:
                report = run_ray_batch(settings, profiler, ids, "full", force)
            else:
                report = run_batch(settings, profiler, ids, prepare, force)
    except PiiEngineMissingError as err:
        pii_missing(err)
    show_report(report, as_json)


def batch_settings(
    model: str | None,
    base_url: str | None,
    concurrency: int | None,
    data_dir: Path | None,
    use_ray: bool,
    ray_address: str | None,
) -> tuple[Settings, bool]:
    """Settings of a profiling batch, and whether it runs on Ray (`--ray-address` implies
    `--ray`)."""
    settings = make_settings(
        model=model,
        base_url=base_url,
        concurrency=concurrency,
        data_dir=data_dir,
        ray_address=ray_address,
    )
    return settings, use_ray or ray_address is not None


def one_line_fail(message: str) -> NoReturn:
    """`fail` without wrapping at the terminal's width: one line, whatever its length."""
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


def pii_missing(err: Exception) -> NoReturn:
    """The scrub's engine is not installed: one line that says what to do."""
    fail(" ".join(str(err).split()) + "; scripts/setup.sh installs what is missing")


def select_users(
    record: RecordStore,
    users: list[str] | None,
    all_users: bool,
    sample: int | None,
    seed: int,
    user: str | None,
) -> list[str]:
    chosen = [u.strip() for group in users or [] for u in group.split(",") if u.strip()]
    if user:
        chosen.append(user)
    if sum(bool(x) for x in (chosen, all_users, sample)) != 1:
        fail("say which users: --users IDS, --user ID, --all or --sample N (exactly one)")
    if chosen:
        return list(dict.fromkeys(chosen))
    every = record.user_ids()
    if not every:
        fail(f"no users in {record.path}: run `personae ingest` first")
    if all_users:
        return every
    assert sample is not None
    return sorted(random.Random(seed).sample(every, min(sample, len(every))), key=_natural)


def _natural(user_id: str) -> tuple[int, str]:
    return (int(user_id), "") if user_id.isdigit() else (1 << 62, user_id)


def print_prompt(prepare: Any, user_id: str) -> None:
    from agent.cleantext import clean_text
    from agent.profiles.profiler import UnknownUserError

    try:
        request: ProfileRequest = prepare(user_id)
    except (UnknownUserError, ValueError) as err:
        fail(str(err))
    ref = request.prompt.ref
    console.print(f"[bold]prompt {ref.id} v{ref.version}[/] ({ref.hash[:12]}) for {user_id}")
    for message in request.prompt.messages:
        typer.echo(clean_text(f"--- {message.role} ---\n{message.content}"))  # terminal-safe


def run_batch(
    settings: Settings, profiler: Profiler, ids: list[str], prepare: Any, force: bool
) -> BatchReport:
    from agent.profiles.batch import BatchProfiler, FailureLog, failures_path
    from agent.profiles.grounding import SemanticJudge
    from agent.store.profile_index import ProfileIndex

    failures = FailureLog(failures_path(settings.data_dir, "profile"))
    embedder = load_embedder(settings)
    profiler.judge = profiler.judge or SemanticJudge(embedder)  # topics judged semantically
    index = ProfileIndex(open_client(settings), embedder)
    try:
        with open_generator(settings) as generator, batch_progress(len(ids)) as advance:
            batch = BatchProfiler(profiler, generator, index, failures)
            report = batch.run(ids, prepare, force=force, progress=advance)
    except llm_errors() as err:
        fail(f"{err}\n(profiles finished before the error are stored; rerun to continue)")
    if report.profiled:
        # `recommend` embeds these texts; the embedder is loaded here anyway.
        warm_query_vectors(settings, profiler.record, embedder, ids)
    return report


def run_ray_batch(
    settings: Settings, profiler: Profiler, ids: list[str], mode: Mode, force: bool
) -> BatchReport:
    """`run_batch` on Ray Data (`agent.scale`): same skips, record writes, vectors and
    failure log; the engines live in Ray actors instead of a server."""
    from agent.model_prep import ModelNotAvailableError, resolve_model
    from agent.profiles.batch import FailureLog, failures_path
    from agent.profiles.grounding import SemanticJudge
    from agent.scale.job import RayBatchProfiler, RayProfileError, check_reachable
    from agent.store.profile_index import ProfileIndex

    try:
        check_reachable(settings.ray_address)  # in seconds, before the embedder loads
    except RayProfileError as err:
        one_line_fail(str(err))
    failures = FailureLog(failures_path(settings.data_dir, "profile"))
    embedder = load_embedder(settings)
    profiler.judge = profiler.judge or SemanticJudge(embedder)
    index = ProfileIndex(open_client(settings), embedder)
    try:
        job = RayBatchProfiler(profiler, resolve_model(settings), index, failures)
        with batch_progress(len(ids)) as advance:
            report = job.run(ids, mode, force=force, progress=advance)
    except (ModelNotAvailableError, RayProfileError) as err:
        one_line_fail(f"{err} (profiles finished before the error are stored; rerun to continue)")
    if report.profiled:
        warm_query_vectors(settings, profiler.record, embedder, ids)
    return report


@contextmanager
def batch_progress(total: int) -> Iterator[Any]:
    columns = (
        TextColumn("profiling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("profiling", total=total, rate="")

        def advance(report: BatchReport) -> None:
            done = report.profiled + report.failed + report.skipped_unchanged
            rate = (
                f"{report.users_per_s:.2f} users/s {report.tokens_per_s:.0f} tok/s "
                f"failed {report.failed}"
            )
            progress.update(task, completed=done, rate=rate)

        yield advance


def show_report(report: BatchReport, as_json: bool) -> None:
    data = report.to_dict()
    if as_json:
        print_json(data)
        return
    table = Table(title="profiling", show_header=False)
    for key in (
        "requested", "profiled", "skipped_unchanged", "failed", "users_per_s", "tokens_per_s",
        "tokens_per_user", "schema_valid_rate", "reask_rate", "dropped_interest_rate",
        "wrong_side_evidence", "claims_drafted", "contradicted_claims", "renamed_topics",
        "grounding_scores", "seconds", "failures_path",
    ):  # fmt: skip
        value = data[key]
        if key == "failures_path" and not report.failed:
            continue
        table.add_row(key.replace("_", " "), _fmt(value))
    console.print(table)
    if report.skipped_older_prompt:
        console.print(
            f"note: {report.skipped_older_prompt} skipped profile(s) were written with an older "
            "profile prompt; --force rewrites them with the current one"
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


def update(
    since: Annotated[
        datetime | None,
        typer.Option("--since", help="Only users with events after this time (ISO date)."),
    ] = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = None,
    use_ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Update stale profiles with their new events (previous profile + new events, not the
    whole history); each update is a new profile version. Add new events first with
    `personae ingest FORMAT FILE`; then every profiled user whose history changed is updated
    (with --since, only those with events after that time)."""
    from agent.profiles.batch import BatchReport
    from agent.profiles.pii import PiiEngineMissingError
    from agent.profiles.profiler import Profiler

    settings, use_ray = batch_settings(model, base_url, concurrency, data_dir, use_ray, ray_address)
    if use_ray and base_url:
        one_line_fail(
            "--ray updates profiles on its own engines: not with --base-url "
            "(leave out --ray to use a server)"
        )
    try:
        with record_at(settings.data_dir) as record:
            profiler = Profiler(settings, record)
            ids = stale_users(profiler, since)
            if not ids:
                console.print("all profiles are up to date")
                if as_json:
                    print_json(BatchReport().to_dict())
                return

            def prepare(user_id: str) -> ProfileRequest:
                previous = profiler.profiles.get(user_id)
                assert previous is not None
                return profiler.prepare_update(user_id, previous)

            console.print(f"{len(ids)} profile(s) to update")
            if use_ray:
                report = run_ray_batch(settings, profiler, ids, "update", force=False)
            else:
                report = run_batch(settings, profiler, ids, prepare, force=False)
    except PiiEngineMissingError as err:
        pii_missing(err)
    show_report(report, as_json)


def stale_users(profiler: Profiler, since: datetime | None) -> list[str]:
    """Profiled users whose history hash differs from their latest profile's."""
    from agent.profiles.facts import history_hash

    stamps = profiler.profiles.latest_stamps()
    candidates = list(stamps)
    if since is not None:
        active = profiler.record.users_active_after(since)
        candidates = [uid for uid in candidates if uid in active]
    return [
        uid
        for uid in sorted(candidates, key=_natural)
        if stamps[uid].history_hash != history_hash(profiler.history(uid))
    ]


def register(app: typer.Typer) -> None:
    app.add_typer(profile_app, name="profile")
    app.command("update")(update)
