"""`personae segments`, `personae similar` and `personae forget`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from agent.cli.common import (
    BaseUrlOpt,
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
    from agent.profiles.segments import NamingReport
    from agent.schemas.profile import UserProfile
    from agent.store.forget import ForgetReport
    from agent.store.profile_index import ProfileIndex
    from agent.store.profiles import ProfileStore
    from agent.store.record import RecordStore
    from agent.store.segments import SegmentRun, SegmentStore

SHOWN_INTERESTS = 4


def profile_index(settings: Settings) -> ProfileIndex:
    from agent.store.profile_index import ProfileIndex

    return ProfileIndex(open_client(settings), load_embedder(settings))


# -- segments ------------------------------------------------------------------------------


def segments_cmd(
    k: Annotated[
        int | None,
        typer.Option("--k", help="Number of segments. Without it: show the latest stored run."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for k-means (same seed, same segments).")] = 0,
    names: Annotated[
        bool, typer.Option("--names/--no-names", help="Name segments with the LLM.")
    ] = True,
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cluster users by profile vector (k-means) into K segments, name each from its members'
    top interests with the LLM, and store the assignment in the record.

    Examples: personae segments --k 8 | personae segments --k 8 --seed 1 --no-names |
    personae segments (show the latest run)."""
    from agent.store.segments import SegmentStore

    settings = make_settings(model=model, base_url=base_url, data_dir=data_dir)
    with record_at(settings.data_dir) as record:
        store = SegmentStore(record)
        if k is None:
            run, timing = _latest_run(store), None
        else:
            run, timing = _new_run(settings, record, k, seed, names)
            store.add(run)
    show_run(run, timing, as_json)


def _latest_run(store: SegmentStore) -> SegmentRun:
    run_id = store.latest_id()
    run = store.get(run_id) if run_id is not None else None
    if run is None:
        fail("no segments yet: run `personae segments --k K`")
    return run


def _new_run(
    settings: Settings, record: RecordStore, k: int, seed: int, names: bool
) -> tuple[SegmentRun, dict[str, Any]]:
    from agent.profiles import segments as seg
    from agent.store.profiles import ProfileStore

    started = time.perf_counter()
    try:
        points = seg.load_points(ProfileStore(record), profile_index(settings))
        loaded = time.perf_counter()
        run = seg.segment(points, k, seed)
    except seg.SegmentationError as err:
        fail(str(err))
    clustered = time.perf_counter()
    profiles = {p.user_id: p for p in points.profiles}
    naming = _name(settings, run, profiles) if names else None
    if naming is None:
        seg.name_all_from_interests(run, profiles)
    timing: dict[str, Any] = {
        "load_s": round(loaded - started, 3),
        "cluster_s": round(clustered - loaded, 3),
        "name_s": round(time.perf_counter() - clustered, 3),
    }
    if naming is not None:
        timing["naming"] = vars(naming)
    return run, timing


def _name(settings: Settings, run: SegmentRun, profiles: dict[str, UserProfile]) -> NamingReport:
    from agent.profiles import segments as seg

    try:
        with open_generator(settings) as generator:
            return seg.name_segments(generator, run, profiles)
    except llm_errors() as err:
        fail(f"{err}\n(nothing stored; use --no-names to segment without the LLM)")


def show_run(run: SegmentRun, timing: dict[str, Any] | None, as_json: bool) -> None:
    if as_json:
        print_json(run_dict(run) | ({"timing": timing} if timing else {}))
        return
    named = f"named by {run.model}" if run.model else "named from interests"
    prompt = f" (prompt {run.prompt.id} v{run.prompt.version})" if run.prompt else ""
    table = Table(
        title=f"segments run {run.id}: k={run.k} seed={run.seed}, {run.users} users, "
        f"{named}{prompt}"
    )
    for column in ("segment", "name", "size", "top interests (members)"):
        table.add_column(column, overflow="fold")
    for s in run.segments:
        interests = ", ".join(f"{t.topic} ({t.members})" for t in s.top_interests[:SHOWN_INTERESTS])
        name = s.name if s.named_by == "llm" else f"{s.name} [dim](from interests)[/]"
        table.add_row(str(s.number), f"{name}\n[dim]{s.description}[/]", str(s.size), interests)
    console.print(table)
    if timing:
        console.print(
            f"load {timing['load_s']:.2f} s, k-means {timing['cluster_s']:.2f} s, "
            f"naming {timing['name_s']:.2f} s"
        )


def run_dict(run: SegmentRun) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "k": run.k,
        "seed": run.seed,
        "algorithm": run.algorithm,
        "embedding_model": run.embedding_model,
        "model": run.model,
        "prompt": run.prompt.model_dump() if run.prompt else None,
        "users": run.users,
        "inertia": round(run.inertia, 6),
        "created_at": run.created_at.isoformat(),
        "segments": [
            {
                "segment": s.number,
                "name": s.name,
                "description": s.description,
                "named_by": s.named_by,
                "size": s.size,
                "top_interests": [vars(t) for t in s.top_interests],
                "members": [m.user_id for m in s.members],
            }
            for s in run.segments
        ],
    }


# -- similar -------------------------------------------------------------------------------


def similar_cmd(
    user_id: Annotated[str, typer.Argument(help="The user.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many users to list.")] = 10,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The users whose profiles are nearest to USER's (cosine over profile vectors), with the
    interests and history categories they share."""
    from agent.store.profiles import ProfileStore

    settings = make_settings(data_dir=data_dir)
    with record_at(settings.data_dir) as record:
        store = ProfileStore(record)
        profile = _profile_or_fail(record, store, user_id)
        rows = nearest(store, profile_index(settings), profile, n)
    if as_json:
        print_json({"user_id": user_id, "similar": rows})
        return
    table = Table(title=f"users most like {user_id}")
    for column in ("#", "user", "similarity", "shared interests", "shared categories"):
        table.add_column(column, overflow="fold")
    for rank, row in enumerate(rows, start=1):
        table.add_row(
            str(rank), row["user_id"], f"{row['similarity']:.3f}",
            ", ".join(row["shared_interests"]) or "-",
            ", ".join(row["shared_categories"]) or "-",
        )  # fmt: skip
    console.print(table)


def _profile_or_fail(record: RecordStore, store: ProfileStore, user_id: str) -> UserProfile:
    profile = store.get(user_id)
    if profile is not None:
        return profile
    if record.get_user(user_id) is None:
        fail(f"unknown user {user_id!r}: not in the record (see `personae stats`)")
    fail(f"user {user_id} has no profile yet: run `personae profile --users {user_id}`")


def nearest(
    store: ProfileStore, index: ProfileIndex, profile: UserProfile, n: int
) -> list[dict[str, Any]]:
    """The n nearest users that have a profile in the record (orphan vectors are skipped)."""
    from agent.profiles.similar import shared_categories, shared_interests

    if indexed_version(index, profile.user_id) != profile.provenance.version:
        index.upsert([profile])  # never reached Chroma, or an older version did
    found = []
    for hit in index.similar(profile.user_id, n * 2 + 10):
        other = store.get(hit.user_id)
        if other is None:
            continue
        found.append(
            {
                "user_id": hit.user_id,
                "similarity": round(1.0 - hit.distance, 4),
                "shared_interests": shared_interests(profile, other),
                "shared_categories": shared_categories(profile, other),
            }
        )
        if len(found) == n:
            break
    return found


def indexed_version(index: ProfileIndex, user_id: str) -> int | None:
    """The profile version Chroma holds for one user (None: no vector)."""
    collection = index.get_collection()
    if collection is None:
        return None
    got = collection.get(ids=[user_id], include=["metadatas"])
    metas = got["metadatas"] or []
    return int(str((metas[0] or {}).get("version", 0))) if metas else None


# -- forget --------------------------------------------------------------------------------


def forget_cmd(
    user_id: Annotated[str | None, typer.Argument(help="The user to forget.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    orphans: Annotated[
        bool,
        typer.Option(
            "--orphans",
            help="Instead of a user: remove profile vectors whose user has no profile in "
            "the record (left if a forget failed halfway).",
        ),
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove everything stored about USER: events, user row, all profile versions, segment
    memberships, vectors in Chroma and lines in failure logs. Items are catalog data and
    stay. Safe to run again: a run interrupted after the record was cleared finishes the rest.

    Examples: personae forget 42 | personae forget 42 --yes --json | personae forget --orphans"""
    from chromadb.errors import ChromaError

    from agent.store import forget as forgetting

    if orphans == (user_id is not None):
        fail("give a USER, or --orphans (not both)")
    settings = make_settings(data_dir=data_dir)
    with record_at(settings.data_dir) as record:
        client = open_client(settings)
        if user_id is None:
            _forget_orphans(record, client, yes, as_json)
            return
        plan = forgetting.survey(record, client, settings.data_dir, user_id)
        if not plan.found:
            console.print(f"nothing stored about user {user_id!r} (already forgotten, or a typo?)")
            if as_json:
                print_json(plan.to_dict())
            return
        if not yes:
            console.print(forget_table(plan, f"to remove for user {user_id}"))
            typer.confirm(f"Forget user {user_id}? This cannot be undone", abort=True, err=True)
        try:
            report = forgetting.forget_user(record, client, settings.data_dir, user_id)
        except ChromaError as err:
            fail(
                f"user {user_id}: the record is cleared but Chroma failed ({err}); "
                f"run `personae forget {user_id}` again to finish"
            )
    if as_json:
        print_json(report.to_dict())
        return
    console.print(forget_table(report, f"forgot user {user_id}"))


def _forget_orphans(record: RecordStore, client: Any, yes: bool, as_json: bool) -> None:
    from agent.store import forget as forgetting

    found = forgetting.orphan_profile_vectors(record, client)
    if found and not yes:
        console.print(f"{len(found)} orphan profile vector(s): {', '.join(found[:20])}")
        typer.confirm("Delete them?", abort=True, err=True)
    removed = forgetting.remove_orphan_profile_vectors(record, client) if found else []
    if as_json:
        print_json({"orphan_profile_vectors_removed": removed})
    else:
        console.print(f"removed {len(removed)} orphan profile vector(s)")


def forget_table(report: ForgetReport, title: str) -> Table:
    table = Table(title=title, show_header=False)
    for key in ("interactions", "user_rows", "profile_versions", "profile_edits",
                "segment_memberships", "empty_segments", "failure_log_lines"):  # fmt: skip
        table.add_row(key.replace("_", " "), str(getattr(report, key)))
    vectors = ", ".join(f"{name} {count}" for name, count in report.vectors.items()) or "0"
    table.add_row("chroma vectors", vectors)
    return table


def register(app: typer.Typer) -> None:
    app.command("segments")(segments_cmd)
    app.command("similar")(similar_cmd)
    app.command("forget")(forget_cmd)
