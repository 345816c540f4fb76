"""The chat's profile edit: "no more horror, please" becomes a *proposed* edit, stored only
once the user confirms it.

`propose_profile_edit` (a tool: the router's or the model's call) checks the edit against the
user's edit state and catalog the way `personae profile edit` would (`agent.profiles.edits`),
without storing anything, and keeps it on the `ToolContext` as the session's pending edit.
The user's next message decides: a yes (`is_confirmation`) stores it through `apply_edit`,
the same function the CLI calls, so recommendations follow at once; anything else drops it.
The confirmation never goes through the model: a small model cannot store an edit the user
did not agree to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from shlex import quote
from typing import Literal

from agent.profiles.edits import (
    EditError,
    EditOutcome,
    EditRequest,
    apply_edit,
    catalog_categories,
    category_named,
    edited,
    load_edits,
    resolve_topic,
)
from agent.store.profiles import ProfileStore
from tools.context import ToolContext, ToolInputError
from tools.user_tools import ToolResult

EditAction = Literal["add_dislike", "add_interest", "remove", "never", "allow_again"]

_YES = re.compile(
    r"^\s*(?:yes|yeah|yep|y|sure|ok(?:ay)?|confirm(?:ed)?|do\s+it|please\s+do|go\s+ahead|save"
    r"(?:\s+it)?)\b[\s,.!]*(?:please|thanks?|thank\s+you)?[\s.!]*$",
    re.I,
)
_NO = re.compile(
    r"^\s*(?:no|nope|n|cancel|don'?t|never\s*mind|forget\s+it|leave\s+it)\b[\s,.!]*"
    r"(?:thanks?|thank\s+you)?[\s.!]*$",
    re.I,
)


@dataclass(frozen=True)
class EditKind:
    field: str
    """The `EditRequest` list it adds to."""
    option: str
    """`personae profile edit`'s option for it."""
    phrase: str
    """It in words, `{}` the topic."""


KINDS: dict[EditAction, EditKind] = {
    "add_interest": EditKind("add_interests", "--add-interest", "add {} to your interests"),
    "add_dislike": EditKind("add_dislikes", "--add-dislike", "add {} to your dislikes"),
    "remove": EditKind("remove", "--remove", "remove {} from your profile"),
    "never": EditKind("never", "--never", "stop recommending {} entirely"),
    "allow_again": EditKind("allow_again", "--allow-again", "allow {} again"),
}
"""Each edit the chat can propose, in the order `describe` and `cli_command` list them."""


def request_of(action: EditAction, topic: str) -> EditRequest:
    return EditRequest.model_validate({KINDS[action].field: [topic]})


def _topics(request: EditRequest) -> list[tuple[EditKind, str]]:
    return [(kind, t) for kind in KINDS.values() for t in getattr(request, kind.field)]


def describe(request: EditRequest) -> str:
    """The edit in words ("add Horror to your dislikes")."""
    return "; ".join(kind.phrase.format(t) for kind, t in _topics(request))


def cli_command(user_id: str, request: EditRequest) -> str:
    """The same edit as a `personae profile edit` command (for one-shot `ask`)."""
    options = [f"{kind.option} {quote(t)}" for kind, t in _topics(request)]
    return f"personae profile edit {user_id} " + " ".join(options)


def undo_command(user_id: str, request: EditRequest) -> str | None:
    """The command that undoes `request` (None: removing a model topic, which only adding it
    back as the user's own undoes)."""
    undo = EditRequest(
        remove=[*request.add_interests, *request.add_dislikes],
        allow_again=request.never,
        never=request.allow_again,
    )
    return cli_command(user_id, undo) if undo else None


def resolved(ctx: ToolContext, action: EditAction, topic: str) -> EditRequest:
    """The edit, its topic spelled as the catalog spells it, checked as `apply_edit` would
    check it; a `ToolInputError` says what cannot be done."""
    record = ctx.recommender.record
    store = ProfileStore(record)
    categories = catalog_categories(record)
    current = load_edits(store, ctx.user_id)
    try:
        if action in ("never", "allow_again"):
            spelled = category_named(topic, categories) or topic
        else:
            spelled = resolve_topic(topic, categories)
        request = request_of(action, spelled)
        state, _ = edited(current, request, categories, store.get(ctx.user_id))
    except EditError as err:
        raise ToolInputError(str(err)) from err
    if state == current:
        raise ToolInputError(
            f"nothing to change: the profile already does that ({describe(request)})"
        )
    return request


def propose_profile_edit(ctx: ToolContext, action: EditAction, topic: str) -> ToolResult:
    """Check the edit and keep it pending; nothing is stored until the user says yes."""
    request = resolved(ctx, action, topic)
    ctx.pending_edit = request
    what = describe(request)
    text = (
        f"Proposed edit, not saved yet: {what}. It is saved only if the user replies yes; "
        f"recommendations then follow it at once. Ask the user to confirm."
    )
    plain = (
        f"Shall I {what}? Reply yes to save it (or run: {cli_command(ctx.user_id, request)}); "
        f"anything else leaves your profile as it is."
    )
    return ToolResult(text=text, plain=plain)


def is_confirmation(message: str) -> bool:
    return bool(_YES.match(message))


def is_refusal(message: str) -> bool:
    return bool(_NO.match(message))


def save_pending(ctx: ToolContext) -> EditOutcome:
    """Store the pending edit (the user said yes) and clear it."""
    request = ctx.pending_edit
    if request is None:
        raise ToolInputError("no edit is waiting for confirmation")
    ctx.pending_edit = None
    try:
        return apply_edit(ctx.recommender.record, ctx.user_id, request, ctx.profile_index)
    except EditError as err:
        raise ToolInputError(str(err)) from err
