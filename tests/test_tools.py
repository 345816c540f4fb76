"""The chat tools on the real record and Chroma store (temp dir, hash embedder): bound to one
user, short actionable errors, item ids remembered for citation checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from langchain_core.messages import ToolMessage
from pydantic import ValidationError

from agent.embeddings import HashEmbedder
from agent.store.chroma import open_client
from agent.store.profile_index import ProfileIndex
from agent.store.profiles import ProfileStore
from tests.recommend_data import World, build_world, history_ids
from tools import user_tools
from tools.context import ToolContext, ToolInputError
from tools.registry import TOOLS, ToolSpec, argument_models, build_tools


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def context(world: World, user: str = "scifi") -> ToolContext:
    index = ProfileIndex(open_client(world.settings), HashEmbedder())
    index.upsert(list(ProfileStore(world.record).iter_latest()))
    return ToolContext(user, world.recommender(), index)


def call(ctx: ToolContext, name: str, **args: object) -> ToolMessage:
    tool = {t.name: t for t in build_tools(ctx)}[name]
    message = tool.invoke({"type": "tool_call", "name": name, "args": args, "id": "c1"})
    assert isinstance(message, ToolMessage)
    return message


def test_no_tool_takes_a_user_id(world: World) -> None:
    for name, schema in argument_models(context(world).catalog).items():
        assert not any("user" in field for field in schema.model_fields), name
        assert schema.model_config.get("extra") == "forbid", name


def test_history_is_the_bound_users_only_and_paginates(world: World) -> None:
    ctx = context(world)
    first = call(ctx, "get_history", limit=2)
    assert first.status == "success"
    assert first.artifact["item_ids"] == ["9", "6"]  # newest first
    second = call(ctx, "get_history", offset=2, limit=10)
    assert set(second.artifact["item_ids"]) == history_ids(world.record, "scifi") - {"9", "6"}
    rated = call(ctx, "get_history", min_rating=5)
    assert set(rated.artifact["item_ids"]) == {"1", "2", "10"}
    scifi = call(ctx, "get_history", category="Sci-Fi")
    assert set(scifi.artifact["item_ids"]) == {"1", "2", "7", "10"}
    assert "Alien (1979) | Horror, Sci-Fi | rated 5" in scifi.text and "[1]" not in scifi.text
    assert set(ctx.surfaced) <= history_ids(world.record, "scifi")


def test_a_user_id_in_the_arguments_is_refused(world: World) -> None:
    tool = {t.name: t for t in build_tools(context(world))}["get_history"]
    with pytest.raises(ValueError, match="user_id"):
        tool.invoke({"user_id": "crime"})


def test_profile_search_recommend_explain_similar(world: World) -> None:
    ctx = context(world)
    profile = call(ctx, "get_profile")
    assert profile.status == "success" and "Profile version 1 of [1]" in profile.text
    assert "Items rated 1-2 (disliked, 2 in all): Titanic (1997) rated 1" in profile.text
    assert set(profile.artifact["item_ids"]) <= history_ids(world.record, "scifi")
    found = call(ctx, "search_catalog", query="jaws")
    assert found.artifact["item_ids"][0] == "11" and "Jaws (1975)" in found.text
    picks = call(ctx, "recommend", k=3, exclude_category="Horror")
    assert picks.status == "success" and "Jaws" not in picks.text
    nineties = call(ctx, "recommend", k=5, category="Drama", decade="1990s")
    assert nineties.status == "success" and "Casablanca" not in nineties.text
    like = call(ctx, "recommend", k=2, like="alien")
    assert like.text.startswith("Unseen items that people who have Alien (1979)")
    explained = call(ctx, "explain_item", item="STAR WARS (1977)")
    assert "Verdict:" in explained.text and explained.artifact["item_ids"][0] == "13"
    assert "Aliens (1986) rated 5" in explained.text
    similar = call(ctx, "similar_users", n=2)
    assert "similar user 1" in similar.text
    assert not any(u in similar.text for u in ("crime", "injector", "pair"))


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("recommend", {"min_year": 1990, "max_year": 1980}, "no year is both"),
        ("explain_item", {"item": "No Such Film"}, "no item titled 'No Such Film'; closest"),
        ("explain_item", {"item": "Alienz"}, "closest titles: Alien (1979); Aliens (1986)"),
        ("get_profile", {"version": 7}, "no profile version 7; versions are [1]"),
        ("search_catalog", {"query": "  "}, "query is empty"),
    ],
)
def test_tool_errors_are_short_messages_for_the_model(
    world: World, name: str, args: dict[str, object], expected: str
) -> None:
    message = call(context(world), name, **args)
    assert message.status == "error" and message.text.startswith("error: ")
    assert expected in message.text and "Traceback" not in message.text
    assert len(message.text) < 300


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("get_history", {"category": "Westerns"}, "Input should be 'Action'"),
        ("recommend", {"category": "Opera"}, "Input should be 'Action'"),
        ("recommend", {"min_year": 1800}, "greater than or equal to 1942"),
        ("recommend", {"decade": "1970"}, "'1940s', '1950s'"),
        ("recommend", {"k": 50}, "less than or equal to 10"),
    ],
)
def test_arguments_outside_the_catalog_fail_the_schema(
    world: World, name: str, args: dict[str, object], expected: str
) -> None:
    """What the constrained decoder cannot produce; the native path gets the schema error."""
    with pytest.raises(ValidationError, match=re.escape(expected)):
        call(context(world), name, **args)


def test_an_unprofiled_user_gets_an_actionable_message(world: World) -> None:
    message = call(context(world, "sparse"), "get_profile")
    assert message.status == "error" and "personae profile --users sparse" in message.text


def test_an_unexpected_failure_is_not_swallowed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ctx: ToolContext, **kwargs: object) -> user_tools.ToolResult:
        raise RuntimeError("disk on fire")

    spec = TOOLS["get_profile"]
    monkeypatch.setitem(TOOLS, "get_profile", ToolSpec(broken, spec.description, spec.args))
    with pytest.raises(RuntimeError, match="disk on fire"):
        call(context(world), "get_profile")


def test_tool_input_error_is_a_value_error() -> None:
    assert issubclass(ToolInputError, ValueError)
