"""The chat's turns about a profile edit, answered without the model: the proposal in the
edit tool's own words, and the user's yes or no to it (`tools.edit_tools`).

Why not the model: asked to relay "proposed, not saved yet", a small model may write "I've
added horror to your dislikes", which is false until the user confirms; and a yes must store
exactly the edit that was proposed, which no model output should decide."""

from __future__ import annotations

import re

from langchain_core.messages import BaseMessage, ToolMessage

from agent.chat.turn import ToolCallRecord
from tools.context import ToolContext, ToolInputError
from tools.edit_tools import describe, is_confirmation, is_refusal, save_pending, undo_command

EDIT_TOOL = "propose_profile_edit"
SAVE_RECORD = "save_profile_edit"
"""The name a stored (or refused) edit is recorded under in the turn's tool calls."""

_DONE = re.compile(
    r"\b(?:i(?:'ve|\s+have)|has\s+been|have\s+been|is\s+now|are\s+now)\s+"
    r"(?:added|removed|saved|updated|excluded|blocked)\b|\bdone\b",
    re.I,
)
"""An answer saying an edit is made: none is, before the user's yes."""


def proposals(messages: list[BaseMessage]) -> list[str]:
    """The edit tool's proposals among these messages, in its words to the user."""
    return [
        (m.artifact or {}).get("plain") or m.text
        for m in messages
        if isinstance(m, ToolMessage) and m.name == EDIT_TOOL and m.status != "error"
    ]


def proposal_answer(routed: list[BaseMessage]) -> str:
    """The answer to a turn that only asked for edits: each proposal, or why it cannot be."""
    results = [m for m in routed if isinstance(m, ToolMessage)]
    return " ".join(
        proposals([m])[0] if m.status != "error"
        else f"I can't make that edit: {m.text.removeprefix('error: ')}"
        for m in results
    )  # fmt: skip


def with_proposal(answer: str, new: list[BaseMessage]) -> tuple[str, bool]:
    """A model-written answer of a turn that proposed an edit, ending with the proposal in the
    tool's words (how to confirm it); replaced by it when it says the edit is made already.
    Returns the answer and whether it was replaced."""
    proposed = proposals(new)
    if not proposed:
        return answer, False
    if _DONE.search(answer):
        return " ".join(proposed), True
    missing = [p for p in proposed if p not in answer]
    return "\n".join([answer, *missing]), False


def reply_to_proposal(ctx: ToolContext, question: str) -> tuple[str, list[ToolCallRecord]] | None:
    """The answer to the user's reply to a pending edit and its record; None when the reply
    is neither a yes nor a no (the proposal is dropped: nothing is stored)."""
    request = ctx.pending_edit
    if request is None or not (is_confirmation(question) or is_refusal(question)):
        ctx.pending_edit = None
        return None
    if is_refusal(question):
        ctx.pending_edit = None
        answer, ok = f"Not saved: your profile stays as it was (not: {describe(request)}).", True
    else:
        answer, ok = saved_answer(ctx)
    record = ToolCallRecord(name=SAVE_RECORD, args=request.model_dump(exclude_defaults=True),
                            valid=True, ok=ok, result=answer)  # fmt: skip
    return answer, [record]


def saved_answer(ctx: ToolContext) -> tuple[str, bool]:
    """Store the pending edit; the answer says what was stored, or why it could not be."""
    undo = undo_command(ctx.user_id, ctx.pending_edit) if ctx.pending_edit else None
    try:
        outcome = save_pending(ctx)
    except ToolInputError as err:
        return f"Not saved: {err}", False
    if not outcome.changed or outcome.profile is None:
        return "Nothing to save: your profile already says that.", True
    notes = "".join(f" {n[0].upper()}{n[1:]}." for n in outcome.notes)
    version = outcome.profile.provenance.version
    undone = f" To undo it: {undo}." if undo else ""
    return f"Saved as profile version {version}.{notes} Recommendations follow it.{undone}", True
