"""`personae profile`, `personae profile show` and `personae update`."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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
    from agent.config import Settings
    from agent.profiles.batch import BatchReport
    from agent.profiles.profiler import Profiler, ProfileRequest
    from agent.schemas.profile import UserProfile
    from agent.store.record import RecordStore


profile_app = typer.Typer(
    help="Write LLM profiles of users (see also: profile show).",
    invoke_without_command=True,
    no_args_is_help=False,
)


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
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Profile users with the LLM: one validated, grounded profile per user, stored with its
    provenance in the record and embedded in Chroma. Users whose history is unchanged since
    their last profile are skipped, so an interrupted run is finished by running it again.

    Examples: personae profile --sample 200 | personae profile --users 1,2,3 |
    personae profile --user new1 --text "I love slow sci-fi and hate horror"."""
    if ctx.invoked_subcommand is not None:
        return
    from agent.profiles.profiler import Profiler

    settings = make_settings(
        model=model, base_url=base_url, concurrency=concurrency, data_dir=data_dir
    )
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
        report = run_batch(settings, profiler, ids, prepare, force)
    show_report(report, as_json)


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
        "grounding_scores", "seconds", "failures_path",
    ):  # fmt: skip
        value = data[key]
        if key == "failures_path" and not report.failed:
            continue
        table.add_row(key.replace("_", " "), _fmt(value))
    console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
    return str(value)


@profile_app.command("show")
def show(
    user_id: Annotated[str, typer.Argument(help="The user.")],
    version: Annotated[int | None, typer.Option(help="An older version.")] = None,
    diff: Annotated[
        bool, typer.Option("--diff", help="What changed from the version before.")
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a user's profile (latest, or --version N), or with --diff what changed."""
    from agent.store.profiles import ProfileStore

    settings = make_settings(data_dir=data_dir)
    with record_at(settings.data_dir) as record:
        profiles = ProfileStore(record)
        current = profiles.get(user_id, version)
        if current is None:
            fail(f"no profile for user {user_id}" + (f" version {version}" if version else ""))
        versions = profiles.versions(user_id)
        before = None
        if diff:
            number = current.provenance.version - 1
            before = profiles.get(user_id, number) if number else None
            if before is None:
                fail(f"user {user_id} has no version before {current.provenance.version}")
    if diff:
        from agent.profiles.diff import profile_diff

        assert before is not None
        changes = profile_diff(before, current)
        if as_json:
            print_json(changes)
        else:
            print_diff(changes, before, current)
        return
    if as_json:
        print_json(current.model_dump(mode="json"))
        return
    console.print(profile_table(current))
    console.print("versions: " + ", ".join(f"v{v.version} {v.kind}" for v in versions))


def profile_table(profile: UserProfile) -> Table:
    p = profile.provenance
    table = Table(title=f"user {profile.user_id} - profile v{p.version} ({p.kind})")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")

    def topics(entries: list[Any]) -> str:
        return (
            "\n".join(
                f"{i.topic} ({i.weight:.2f}, {i.sentiment}) <- {', '.join(i.evidence)}"
                for i in entries
            )
            or "-"
        )

    table.add_row("interests", topics(profile.interests))
    table.add_row("dislikes", topics(profile.dislikes))
    table.add_row("sentiment", f"{profile.sentiment.label} ({profile.sentiment.score:+.2f})")
    table.add_row("intent", profile.intent)
    table.add_row("summary", profile.summary)
    table.add_row("confidence", profile.confidence)
    f = profile.facts
    mean = f"{f.rating_mean:.2f}" if f.rating_mean is not None else "-"
    cats = ", ".join(f"{c.category} {c.share:.0%}" for c in f.top_categories) or "-"
    table.add_row("facts", f"{f.event_count} events, mean rating {mean}; {cats}")
    g = profile.grounding
    table.add_row(
        "grounding",
        f"score {g.score:.2f}; dropped {g.dropped_interests}, invalid ids {g.invalid_evidence}, "
        f"repeated ids {g.duplicate_evidence}",
    )
    table.add_row(
        "provenance",
        f"{p.model}; prompt {p.prompt.id} v{p.prompt.version} ({p.prompt.hash[:12]}); "
        f"{p.created_at:%Y-%m-%d %H:%M} UTC; {p.tokens_in}+{p.tokens_out} tokens",
    )
    return table


def print_diff(changes: dict[str, Any], before: UserProfile, after: UserProfile) -> None:
    console.print(
        f"user {after.user_id}: v{before.provenance.version} -> v{after.provenance.version}"
    )
    if not any(changes.values()):
        console.print("no changes")
    for key, value in changes.items():
        if value:
            console.print(f"[bold]{key}[/]: {value}")


def update(
    since: Annotated[
        datetime | None,
        typer.Option("--since", help="Only users with events after this time (ISO date)."),
    ] = None,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    concurrency: ConcurrencyOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Update stale profiles with their new events (previous profile + new events, not the
    whole history); each update is a new profile version. Add new events first with
    `personae ingest FORMAT FILE`; then every profiled user whose history changed is updated
    (with --since, only those with events after that time)."""
    from agent.profiles.batch import BatchReport
    from agent.profiles.profiler import Profiler

    settings = make_settings(
        model=model, base_url=base_url, concurrency=concurrency, data_dir=data_dir
    )
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
        report = run_batch(settings, profiler, ids, prepare, force=False)
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
