"""The chat's profile edits: proposed by the router's (or the model's) tool call, stored only
on the user's yes, through the same `apply_edit` as `personae profile edit`. Fakes stand in
for the model (plumbing only): none of these turns needs one, and the scripted model fails
the test if it is called when it should not be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.chat.constrained import FINAL
from agent.chat.router import edit_in
from agent.chat.session import ChatSession
from agent.profiles.edits import load_edits
from agent.schemas.profile import ProfileKind
from agent.store.profiles import ProfileStore
from tests.fakes import ScriptedChatModel
from tests.recommend_data import World, build_world
from tools.context import ToolContext
from tools.edit_tools import is_confirmation, is_refusal


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def chat(world: World, script: list[str] | None = None, router: bool = True) -> ChatSession:
    model = ScriptedChatModel(script=script or [])
    ctx = ToolContext("scifi", world.recommender())
    return ChatSession(world.settings, ctx, model, router=router)


def versions(world: World) -> list[int]:
    return [v.version for v in ProfileStore(world.record).versions("scifi")]


@pytest.mark.parametrize(
    ("clause", "expected"),
    [
        ("no more horror, please", ("add_dislike", "horror")),
        ("I don't like westerns anymore", ("add_dislike", "westerns")),
        ("I'm tired of musicals", ("add_dislike", "musicals")),
        ("stop recommending horror films", ("add_dislike", "horror films")),
        ("never show me horror", ("never", "horror")),
        ("remove sci-fi from my profile", ("remove", "sci-fi")),
        ("more comedies please", ("add_interest", "comedies")),
        ("I love film-noir", ("add_interest", "film-noir")),
        ("what do I like", None),
        ("why not Titanic", None),
        ("recommend something like Alien", None),
        ("more like Alien", None),
        ("I like it", None),
    ],
)
def test_the_router_reads_edit_requests_and_nothing_else(
    clause: str, expected: tuple[str, str] | None
) -> None:
    found = edit_in(clause)
    assert (None if found is None else (found["action"], found["topic"])) == expected


def test_yes_and_no_are_read_whole_not_as_prefixes() -> None:
    assert is_confirmation("yes") and is_confirmation("Yes please!") and is_confirmation("ok")
    assert not is_confirmation("yes, and recommend me a comedy")
    assert is_refusal("no") and is_refusal("No thanks.") and is_refusal("cancel")
    assert not is_refusal("no more horror") and not is_refusal("not now, what do I like?")


def test_an_edit_is_proposed_without_the_model_and_stored_only_on_yes(world: World) -> None:
    session, before = chat(world), versions(world)
    proposal = session.ask("No more horror, please.")
    assert proposal.model_calls == 0 and proposal.routed
    assert [(c.name, c.args, c.ok) for c in proposal.tool_calls] == [
        ("propose_profile_edit", {"action": "add_dislike", "topic": "horror"}, True)
    ]
    assert "add Horror to your dislikes" in proposal.answer and "Reply yes" in proposal.answer
    assert versions(world) == before and not load_edits(ProfileStore(world.record), "scifi")

    saved = session.ask("yes")
    assert saved.model_calls == 0 and saved.tool_calls[0].name == "save_profile_edit"
    assert "Saved as profile version" in saved.answer and "--remove Horror" in saved.answer
    store = ProfileStore(world.record)
    assert load_edits(store, "scifi").dislikes == ["Horror"]
    latest = store.get("scifi")
    assert latest is not None and latest.provenance.kind == ProfileKind.EDIT
    assert [d.topic for d in latest.dislikes if d.source == "user"] == ["Horror"]
    assert session.ctx.pending_edit is None


def test_no_or_any_other_message_drops_the_proposal(world: World) -> None:
    session, before = (
        chat(world, [json.dumps({"tool": FINAL, "answer": "ok"})] * 2),
        versions(world),
    )
    session.ask("never show me horror")
    refused = session.ask("no thanks")
    assert "Not saved" in refused.answer and refused.model_calls == 0
    session.ask("never show me horror")
    assert session.ctx.pending_edit is not None
    session.ask("what do I like?")
    assert session.ctx.pending_edit is None and versions(world) == before
    assert not load_edits(ProfileStore(world.record), "scifi")


def test_an_edit_that_cannot_be_made_says_why(world: World) -> None:
    turn = chat(world).ask("never show me westerns")
    assert turn.model_calls == 0 and not turn.tool_calls[0].ok
    assert (
        turn.answer.startswith("I can't make that edit:")
        and "not a catalog category" in turn.answer
    )


def call(tool: str, **args: Any) -> str:
    return json.dumps({"tool": tool, "args": args})


def test_a_model_saying_its_proposal_is_saved_is_replaced_by_the_proposal(world: World) -> None:
    done = "Done, I've added horror to your dislikes."
    script = [call("propose_profile_edit", action="add_dislike", topic="Horror"),
              json.dumps({"tool": FINAL, "answer": done})]  # fmt: skip
    turn = chat(world, script, router=False).ask("ugh, scary stuff is not for me")
    assert turn.replaced and turn.answer.startswith("Shall I add Horror to your dislikes?")
    assert not load_edits(ProfileStore(world.record), "scifi")
