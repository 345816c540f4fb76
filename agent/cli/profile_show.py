"""`personae profile show`: a stored profile, an older version, or what changed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from agent.cli.common import DataDirOpt, JsonOpt, console, fail, make_settings, print_json
from agent.cli.deferred import record_at

if TYPE_CHECKING:
    from agent.schemas.profile import ClaimCheck, Interest, UserProfile
    from agent.store.record import RecordStore


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
        cited = evidence_of(record, user_id, current)
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
    console.print(profile_table(current, cited))
    console.print("versions: " + ", ".join(f"v{v.version} {v.kind}" for v in versions))


def evidence_of(record: RecordStore, user_id: str, profile: UserProfile) -> dict[str, str]:
    """Each cited item as the user sees it: its title and their rating ("Fargo (1996) 5")."""
    ratings = {e.item_id: e.rating for e in record.history(user_id)}
    found = {}
    for entry in (*profile.interests, *profile.dislikes):
        for item_id in entry.evidence:
            item = record.get_item(item_id)
            title = item.title if item is not None else item_id
            year = f" ({item.year})" if item and item.year and str(item.year) not in title else ""
            rating = ratings.get(item_id)
            found[item_id] = f"{title}{year} " + (f"rated {rating:g}" if rating else "unrated")
    return found


def profile_table(profile: UserProfile, cited: dict[str, str] | None = None) -> Table:
    p = profile.provenance
    table = Table(title=f"user {profile.user_id} - profile v{p.version} ({p.kind})")
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    named = cited or {}

    def backing(entry: Interest) -> str:
        """What an entry rests on: its evidence, or the user's own word."""
        if entry.evidence:
            return "; ".join(named.get(e, e) for e in entry.evidence)
        return "your own edit" if entry.source == "user" else "-"

    def topics(entries: list[Interest]) -> str:
        lines = [f"{i.topic} ({i.weight:.2f})\n  <- {backing(i)}" for i in entries]
        return "\n".join(lines) or "-"

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
        f"repeated ids {g.duplicate_evidence}, wrong-side ids {g.wrong_side_evidence}",
    )
    if g.claims is not None:
        table.add_row(
            "model's draft vs ratings",
            f"{claims_text(g.claims)}; personae removed {g.contradicted_claims} contradicted "
            f"claim(s) and renamed {g.renamed_topics} topic(s) from their items",
        )
    table.add_row(
        "provenance",
        f"{p.model}; prompt {p.prompt.id} v{p.prompt.version} ({p.prompt.hash[:12]}); "
        f"{p.created_at:%Y-%m-%d %H:%M} UTC; {p.tokens_in}+{p.tokens_out} tokens",
    )
    return table


def claims_text(c: ClaimCheck) -> str:
    return (
        f"evidence agrees {c.evidence_agreeing}/{c.evidence_checked}; whole history "
        f"contradicts {c.history_contradicted}/{c.history_checked} "
        f"({c.claims - c.history_checked} unchecked); bare genres {c.bare_topics}/{c.claims}"
    )


def print_diff(changes: dict[str, Any], before: UserProfile, after: UserProfile) -> None:
    console.print(
        f"user {after.user_id}: v{before.provenance.version} -> v{after.provenance.version}"
    )
    if not any(changes.values()):
        console.print("no changes")
    for key, value in changes.items():
        if value:
            console.print(f"[bold]{key}[/]: {value}")


def register(profile_app: typer.Typer) -> None:
    profile_app.command("show")(show)
