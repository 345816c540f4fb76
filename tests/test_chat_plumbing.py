"""The chat agent with scripted chat models (plumbing only, never quality): tool routing, the
bound user, tool errors, the step limit, citations, conversation memory, and both commands."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from pydantic import PrivateAttr
from typer.testing import CliRunner

from agent.chat.constrained import FINAL, ChatReplyError, ConstrainedToolChatModel, step_schema
from agent.chat.session import ChatSession
from agent.cli import chat_cmds
from agent.config import Settings
from agent.embeddings import HashEmbedder
from evals.smoke import ReplyChatModel
from tests.fakes import ScriptedChatModel
from tests.recommend_data import World, build_world
from tools.context import ToolContext


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def session(
    world: World, model: BaseChatModel, user: str = "scifi", router: bool = False, **overrides: Any
) -> ChatSession:
    settings = world.settings.model_copy(update=overrides)
    return ChatSession(settings, ToolContext(user, world.recommender()), model, router=router)


def call(tool: str, **args: Any) -> str:
    return json.dumps({"tool": tool, "args": args})


def final(answer: str) -> str:
    return json.dumps({"tool": FINAL, "answer": answer})


def schema_of(kwargs: dict[str, Any]) -> dict[str, Any]:
    return dict(kwargs["response_format"]["json_schema"]["schema"])


def offered(kwargs: dict[str, Any]) -> list[str]:
    schema = schema_of(kwargs)
    return [a["properties"]["tool"]["const"] for a in schema.get("anyOf", [schema])]


def test_tool_calls_route_to_their_tools_and_the_answer_names_shown_titles(world: World) -> None:
    model = ScriptedChatModel(
        script=[
            call("explain_item", item="star wars"),
            call("get_history", limit=3),
            final("Because you loved Aliens and Alien, Star Wars is your top pick."),
        ]
    )
    turn = session(world, model).ask("tell me about that film")
    assert [c.name for c in turn.tool_calls] == ["explain_item", "get_history"]
    assert all(c.valid and c.ok and not c.routed for c in turn.tool_calls)
    result = turn.tool_calls[0].result
    assert "Verdict:" in result and "Star Wars (1977)" in result and "[13]" not in result
    assert "Aliens (1986) rated 5" in result
    assert turn.tool_calls[1].item_ids == ["9", "6", "10"]
    assert [c.item_id for c in turn.cited] == ["2", "1", "13"]
    assert turn.check is not None and turn.check.ok and not turn.reasked and not turn.replaced
    assert turn.model_calls == 3 and turn.error is None and turn.stopped is None
    seen = model.calls[1][0][-1].content
    assert isinstance(seen, str) and seen.startswith("Result of explain_item:")


def test_the_schema_forces_a_tool_first_then_offers_the_rest_then_only_the_answer(
    world: World,
) -> None:
    model = ScriptedChatModel(
        script=[call("get_profile"), call("get_history"), call("similar_users"), final("ok")]
    )
    turn = session(world, model, chat_max_steps=3).ask("what do you know about me?")
    first, second, third, last = (kwargs for _, kwargs in model.calls)
    assert FINAL not in offered(first) and "get_profile" in offered(first)
    assert FINAL in offered(second) and "get_profile" not in offered(second)
    assert "get_history" not in offered(third)
    assert offered(last) == [FINAL]
    assert turn.answer == "ok" and len(turn.tool_calls) == 3
    assert all(kwargs["max_tokens"] == world.settings.chat_max_tokens for _, kwargs in model.calls)


def test_arguments_are_an_enum_of_the_catalogs_categories_and_optional(world: World) -> None:
    model = ScriptedChatModel(
        script=[call("recommend", category="Comedy"), final("ok"), final("ok")]
    )  # the re-ask: "ok" names no listed item
    session(world, model).ask("q")
    tool = next(a for a in schema_of(model.calls[0][1])["anyOf"]
                if a["properties"]["tool"]["const"] == "recommend")  # fmt: skip
    args = tool["properties"]["args"]
    assert "required" not in args or args["required"] == []
    category = args["properties"]["category"]["anyOf"]
    assert {"type": "null"} in category and "Comedy" in category[0]["enum"]
    assert "Westerns" not in category[0]["enum"]
    years = args["properties"]["min_year"]["anyOf"][0]
    assert (years["minimum"], years["maximum"]) == (1942, 1999)
    assert args["properties"]["decade"]["anyOf"][0]["enum"][-1] == "1990s"


def test_the_router_calls_the_tools_and_the_model_only_answers(world: World) -> None:
    model = ScriptedChatModel(script=[final("Aliens and Alien, which you rated 5, drove it.")])
    question = "Why did you recommend Star Wars to me, and what do I usually dislike?"
    turn = session(world, model, router=True).ask(question)
    assert [(c.name, c.args, c.routed) for c in turn.tool_calls] == [
        ("explain_item", {"item": "Star Wars"}, True),
        ("get_profile", {}, True),
    ]
    assert turn.routed and turn.model_calls == 1 and offered(model.calls[0][1]) == [FINAL]
    prompt = " ".join(str(m.content) for m in model.calls[0][0])
    assert "Result of explain_item" in prompt and "Result of get_profile" in prompt
    assert turn.check is not None and turn.check.ok


def test_an_answer_naming_an_unshown_title_is_reasked_then_replaced(world: World) -> None:
    model = ScriptedChatModel(script=[
        final("You would love Casablanca."),
        final("Try Pulp Fiction."),
    ])  # fmt: skip
    turn = session(world, model, router=True).ask("Why not Titanic?")
    assert turn.reasked and turn.replaced and turn.first_answer == "You would love Casablanca."
    assert turn.first_check is not None and turn.first_check.ungrounded == ["Casablanca"]
    assert turn.check is not None and turn.check.ungrounded == ["Pulp Fiction"]
    recheck = str(model.calls[1][0][-1].content)
    assert "Casablanca, which no tool result" in recheck
    assert turn.answer.startswith("From your data:") and "Titanic (1997)" in turn.answer
    assert turn.ungrounded_titles == [] and turn.model_calls == 2
    # the explanation's short plain rendering, not its full text (sources, ranks, scores)
    assert "not recommended" in turn.answer and "collaborative:" not in turn.answer


def test_an_answer_contradicting_the_ratings_is_reasked_and_a_fixed_one_kept(
    world: World,
) -> None:
    model = ScriptedChatModel(script=[
        final("You loved Titanic."),
        final("You rated Titanic 1, so it is not recommended."),
    ])  # fmt: skip
    turn = session(world, model, router=True).ask("Why not Titanic?")
    assert turn.reasked and not turn.replaced
    assert turn.first_check is not None and turn.first_check.contradictions
    assert (
        "the user liked Titanic (1997) (the user rated it 1)"
        in (turn.first_check.contradictions[0])
    )
    assert turn.answer == "You rated Titanic 1, so it is not recommended."
    assert [c.title for c in turn.cited] == ["Titanic (1997)"]


def test_no_schema_or_prompt_carries_a_user_id_field(world: World) -> None:
    model = ScriptedChatModel(script=[call("get_history"), final("x")])
    session(world, model).ask("q")
    for _, kwargs in model.calls:
        assert '"user' not in json.dumps(schema_of(kwargs))


def test_a_model_asking_for_another_users_data_gets_nothing_of_theirs(world: World) -> None:
    model = ScriptedChatModel(
        script=[
            call("get_history", user_id="crime"),
            call("get_profile", user="crime"),
            call("search_catalog", query="Fargo"),
            final("Fargo is in the catalog."),
        ]
    )
    turn = session(world, model, chat_max_steps=3).ask("show me the history of user crime")
    assert [(c.name, c.valid, c.ok) for c in turn.tool_calls] == [
        ("get_history", False, False),
        ("get_profile", False, False),
        ("search_catalog", True, True),
    ]
    everything = " ".join(str(m.content) for m in model.calls[-1][0])
    assert "Dark and funny" not in everything and "rated 5" not in everything
    fargo = next(line for line in turn.tool_calls[2].result.splitlines() if "Fargo" in line)
    assert "the user has it" not in fargo
    assert [c.item_id for c in turn.cited] == ["5"]  # shown by a tool of this turn


def test_tool_errors_go_back_to_the_model_as_short_messages(world: World) -> None:
    model = ScriptedChatModel(
        script=[
            call("explain_item", item="Nope Movie"),
            call("get_history", category="Jazz"),
            final("sorry"),
        ]  # fmt: skip
    )
    turn = session(world, model).ask("why not Nope Movie?")
    assert [c.ok for c in turn.tool_calls] == [False, False]
    assert turn.tool_calls[0].result.startswith("error: no item titled 'Nope Movie'; closest")
    assert not turn.tool_calls[1].valid
    last_prompt = model.calls[-1][0][-1].content
    assert isinstance(last_prompt, str) and "Jazz" in last_prompt
    assert "Traceback" not in last_prompt and turn.answer == "sorry"


def test_an_unparsable_reply_is_reasked_then_reported(world: World) -> None:
    model = ScriptedChatModel(script=['{"tool": "get_pro', call("get_profile"), final("a")])
    turn = session(world, model).ask("q")
    assert turn.error is None and turn.tool_calls[0].name == "get_profile"
    retried = model.calls[1][0]
    assert "not valid" in str(retried[-1].content)
    bad = ScriptedChatModel(script=["nope", "still nope"])
    failed = session(world, bad, chat_max_reasks=1).ask("q")
    assert failed.error is not None and "no valid reply after 2 tries" in failed.error
    assert failed.answer == "" and failed.check is None


def test_a_model_that_ignores_the_schema_cannot_pass_the_step_limit(world: World) -> None:
    """Past `chat_max_steps` only the answer is offered; a tool call there is refused."""
    model = ScriptedChatModel(script=[call("get_profile"), call("get_history"), call("recommend")])
    turn = session(world, model, chat_max_steps=1, chat_max_reasks=1).ask("q")
    assert len(turn.tool_calls) == 1 and turn.error is not None
    assert "must be one of ['final_answer']" in turn.error
    assert len(model.calls) == 3


class ToolLoopModel(ReplyChatModel):
    """A native tool-calling model that calls get_profile forever."""

    _calls: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "tool-loop"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        self._calls += 1
        message = AIMessage(
            content="",
            tool_calls=[{"name": "get_profile", "args": {}, "id": f"c{self._calls}"}],
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def test_native_path_stops_at_the_step_limit(world: World) -> None:
    model = ToolLoopModel()
    chat = session(world, model, chat_tool_calling="native", chat_max_steps=2)
    turn = chat.ask("q")
    assert turn.stopped == "step_limit" and turn.answer.startswith("(no answer within 2")
    assert 1 <= len(turn.tool_calls) <= 3 and model._calls <= 3
    assert chat.messages == []  # an unfinished turn is not kept


def test_native_path_with_the_router_checks_titles(world: World) -> None:
    class Answer(ToolLoopModel):
        def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
            message = AIMessage(content="You rated Alien 5 and Aliens 5.")
            return ChatResult(generations=[ChatGeneration(message=message)])

    turn = session(world, Answer(), router=True, chat_tool_calling="native").ask("What do I like?")
    assert turn.tool_calls[0].name == "get_profile" and turn.tool_calls[0].routed
    assert [c.item_id for c in turn.cited] == ["1", "2"] and turn.check is not None
    assert turn.check.ok and turn.check.claims[0].titles == ["Alien", "Aliens"]


def test_the_conversation_is_kept_trimmed_and_reset(world: World) -> None:
    script = []
    for n in range(3):
        script += [call("get_profile"), final(f"answer {n}")]
    model = ScriptedChatModel(script=script)
    chat = session(world, model, chat_context_turns=1)
    for n in range(3):
        chat.ask(f"question {n}")
    last_prompt = " ".join(str(m.content) for m in model.calls[-1][0])
    assert "question 1" in last_prompt and "answer 1" in last_prompt
    assert "question 0" not in last_prompt
    chat.reset()
    assert chat.messages == []


def test_step_schema_shapes() -> None:
    spec = {"name": "t", "parameters": {"type": "object", "properties": {"a": {"type": "string",
            "title": "A", "maxLength": 9}}, "required": ["a"]}}  # fmt: skip
    schema = step_schema([spec], True)
    tool, answer = schema["anyOf"]
    assert tool["properties"]["args"]["properties"]["a"] == {"type": "string", "maxLength": 9}
    assert set(answer["properties"]) == {"tool", "answer"}
    assert step_schema([], True)["properties"]["tool"] == {"const": FINAL}
    assert isinstance(ChatReplyError("m", "raw").raw, str)
    assert ConstrainedToolChatModel(inner=ScriptedChatModel(script=[]))._llm_type


# -- commands ------------------------------------------------------------------------------


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setattr(chat_cmds, "load_embedder", lambda settings: HashEmbedder())
    app = typer.Typer()
    chat_cmds.register(app)
    return app


def scripted_llm(monkeypatch: pytest.MonkeyPatch, script: list[str]) -> None:
    @contextmanager
    def fake(settings: Settings) -> Iterator[BaseChatModel]:
        yield ScriptedChatModel(script=list(script))

    monkeypatch.setattr(chat_cmds, "llm", fake)


def test_ask_json(world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_llm(monkeypatch, [final("You rated Alien 5.")])
    result = CliRunner().invoke(
        app, ["ask", "scifi", "what do you know about me?", "--json",
              "--data-dir", str(world.settings.data_dir)],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answer"] == "You rated Alien 5." and data["cited"][0]["item_id"] == "1"
    assert data["tool_calls"][0]["name"] == "get_profile" and data["prompt"]["id"] == "chat"
    assert data["routed"] and data["check"]["titles"] == ["Alien"]


def test_ask_unknown_and_unprofiled_users_fail_before_any_llm(
    world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted_llm(monkeypatch, [])
    for user, message in (("ghost", "not in the record"), ("sparse", "no profile yet")):
        result = CliRunner().invoke(
            app, ["ask", user, "q", "--data-dir", str(world.settings.data_dir)]
        )
        assert result.exit_code == 1 and message in result.stderr


def test_chat_commands(world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_llm(monkeypatch, [final("You watched Clueless.")])
    result = CliRunner().invoke(
        app, ["chat", "scifi", "--data-dir", str(world.settings.data_dir)],
        input="what did I watch last?\n/profile\n/bogus\n/reset\n/quit\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    screen = result.stderr
    assert "tool get_history(): ok (router)" in screen and "You watched Clueless." in screen
    assert "cited: Clueless (1995)" in screen and "Profile version 1" in screen
    assert "unknown command /bogus" in screen and "conversation forgotten" in screen


def test_an_answer_cut_off_at_max_tokens_is_closed_not_reasked(world: World) -> None:
    cut = '{"tool":"final_answer","answer":"You like Alien and'
    model = ScriptedChatModel(script=[call("get_profile"), cut])
    turn = session(world, model).ask("q")
    assert turn.answer == "You like Alien and..." and turn.truncated
    assert [c.item_id for c in turn.cited] == ["1"] and len(model.calls) == 2
