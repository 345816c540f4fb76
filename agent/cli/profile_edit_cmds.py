"""`personae profile edit`: the user corrects their own profile (`agent.profiles.edits`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from agent.cli.common import DataDirOpt, JsonOpt, console, fail, make_settings, print_json
from agent.cli.deferred import load_embedder, open_client, record_at

if TYPE_CHECKING:
    from agent.profiles.edits import ProfileEdits
    from agent.schemas.profile import Interest, UserProfile


def edit(
    user_id: Annotated[str, typer.Argument(help="The user.")],
    add_interest: Annotated[
        list[str] | None,
        typer.Option("--add-interest", help="A topic they like (a catalog category or any text)."),
    ] = None,
    add_dislike: Annotated[
        list[str] | None,
        typer.Option("--add-dislike", help="A topic they dislike: its category is demoted."),
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", help="An interest or dislike to remove (yours or the model's)."),
    ] = None,
    never: Annotated[
        list[str] | None,
        typer.Option("--never", help="A catalog category never to recommend (a hard filter)."),
    ] = None,
    allow_again: Annotated[
        list[str] | None,
        typer.Option("--allow-again", help="Lift a --never category."),
    ] = None,
    show: Annotated[
        bool, typer.Option("--show", help="Print the profile and the edits in force.")
    ] = False,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Edit a user's profile: the result is a new profile version of kind `edit` (by the
    user, no LLM), and later LLM versions (`profile`, `update`) keep the edits. Recommendations
    follow at once. Options repeat.

    Examples: personae profile edit 42 --add-dislike horror |
    personae profile edit 42 --never Horror | personae profile edit 42 --remove horror |
    personae profile edit 42 --allow-again Horror | personae profile edit 42 --show"""
    from agent.profiles.edits import EditError, EditRequest, apply_edit, load_edits
    from agent.store.profiles import ProfileStore

    settings = make_settings(data_dir=data_dir)
    request = EditRequest(
        add_interests=add_interest or [],
        add_dislikes=add_dislike or [],
        remove=remove or [],
        never=never or [],
        allow_again=allow_again or [],
    )
    if not request and not show:
        fail("say what to change (--add-interest, --add-dislike, --remove, --never, "
             "--allow-again) or --show")  # fmt: skip
    with record_at(settings.data_dir) as record:
        store = ProfileStore(record)
        notes: list[str] = []
        changed = False
        if request:
            from agent.store.profile_index import ProfileIndex

            index = ProfileIndex(open_client(settings), load_embedder(settings))
            try:
                outcome = apply_edit(record, user_id, request, index=index)
            except EditError as err:
                fail(str(err))
            notes, changed = outcome.notes, outcome.changed
        profile, edits = store.get(user_id), load_edits(store, user_id)
    if profile is None:
        fail(f"no profile for user {user_id}")
    if as_json:
        print_json(edit_json(profile, edits, changed, notes))
        return
    for note in notes:
        console.print(note)
    if request and not changed:
        console.print("nothing changed: the profile already says so")
    elif request:
        console.print(f"stored profile v{profile.provenance.version} ({profile.provenance.kind})")
    if show or request:
        console.print(edit_table(profile, edits))


def edit_json(
    profile: UserProfile, edits: ProfileEdits, changed: bool, notes: list[str]
) -> dict[str, Any]:
    return {
        "user_id": profile.user_id,
        "changed": changed,
        "version": profile.provenance.version,
        "kind": profile.provenance.kind.value,
        "edits": edits.model_dump(),
        "notes": notes,
        "profile": profile.model_dump(mode="json"),
    }


def edit_table(profile: UserProfile, edits: ProfileEdits) -> Table:
    p = profile.provenance
    table = Table(title=f"user {profile.user_id} - profile v{p.version} ({p.kind})")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")

    def entries(found: list[Interest]) -> str:
        return "\n".join(
            escape(f"{e.topic} ({e.weight:.2f}" + (", yours)" if e.source == "user" else ")"))
            for e in found
        ) or "-"  # fmt: skip

    table.add_row("interests", entries(profile.interests))
    table.add_row("dislikes", entries(profile.dislikes))
    table.add_row("removed", escape(", ".join(edits.removed)) or "-")
    table.add_row("never", escape(", ".join(edits.never)) or "-")
    return table


def register(profile_app: typer.Typer) -> None:
    profile_app.command("edit")(edit)
