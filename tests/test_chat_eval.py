"""The chat eval's plumbing with scripted models (never quality): cases filled from each
user's data, every score able to fail, the cache resuming a run, a refused mode skipped."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from agent.chat.constrained import FINAL
from agent.chat.session import ChatSession
from evals.chat_cases import Case, cases_for
from evals.chat_eval import ResultCache, TurnScore, report, run
from tests.fakes import ScriptedChatModel
from tests.recommend_data import World, build_world
from tools.context import ToolContext


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def final(answer: str) -> str:
    return json.dumps({"tool": FINAL, "answer": answer})


def call(tool: str, **args: object) -> str:
    return json.dumps({"tool": tool, "args": args})


def evaluate(
    world: World, cases: list[Case], scripts: list[list[str]], router: bool = True,
    cache: ResultCache | None = None,
) -> list[TurnScore]:  # fmt: skip
    rec = world.recommender()
    catalog = ToolContext("scifi", rec).catalog
    queue = list(scripts)

    def make(user: str, mode: str, routed: bool) -> ChatSession:
        model = ScriptedChatModel(script=queue.pop(0))
        return ChatSession(world.settings, ToolContext(user, rec), model, router=routed)

    results, skipped = run(cases, ["constrained"], [router], make, catalog,
                           cache or ResultCache(None))  # fmt: skip
    assert skipped == {}
    return results


def test_cases_come_from_the_users_own_data(world: World) -> None:
    rec = world.recommender()
    cases = {c.template: c for c in cases_for(rec, ToolContext("scifi", rec).catalog, "scifi")}
    assert cases["why_recommended"].question == "Why did you recommend Star Wars?"
    assert cases["why_not"].expect == {"item": "6"}  # Titanic, rated 1
    assert cases["dislikes"].tool == "get_profile"
    assert cases["like_item"].question == "Recommend me something like The Matrix."
    assert cases["filtered"].expect == {"category": "Sci-Fi", "decade": "1970s"}


def test_a_right_grounded_answer_scores_on_every_count(world: World) -> None:
    case = Case(user_id="scifi", template="why_not", tool="explain_item",
                question="Why didn't you recommend Titanic?", expect={"item": "6"})  # fmt: skip
    [score] = evaluate(world, [case], [[final("You rated Titanic 1.")]])
    assert score.right_tool and score.args_valid and not score.tool_error
    assert score.grounded and score.first_grounded and not score.contradicts
    assert score.routed and not score.reasked and not score.replaced and score.tokens_in > 0


def test_each_check_can_fail(world: World) -> None:
    why = Case(user_id="scifi", template="why_recommended", tool="explain_item",
               question="tell me why star wars", expect={"item": "13"})  # fmt: skip
    scripts = [
        # the model picks the wrong tool, then names a title no tool showed, twice
        [call("get_profile"), final("Watch Casablanca."), final("Watch Casablanca.")],
        # invalid arguments, then a tool error, then an answer contradicting the ratings
        [call("recommend", category="Opera"), call("explain_item", item="Nope"),
         final("You loved Titanic."), final("You loved Titanic.")],
    ]  # fmt: skip
    first = evaluate(world, [why], scripts[:1], router=False)[0]
    assert not first.right_tool and first.args_valid and not first.tool_error
    assert not first.grounded and not first.first_grounded and first.ungrounded == ["Casablanca"]
    assert first.reasked and first.replaced
    second = evaluate(world, [why], scripts[1:], router=False)[0]
    assert not second.right_tool and not second.args_valid and second.tool_error
    assert not second.grounded and second.contradicts and second.replaced  # no tool showed it
    assert "the user liked Titanic" in second.contradictions[0]


def test_filters_must_match_and_the_report_groups_templates(world: World) -> None:
    case = Case(user_id="scifi", template="filtered", tool="recommend",
                question="a sci-fi film of the 90s please",
                expect={"category": "Sci-Fi", "decade": "1990s"})  # fmt: skip
    scripts = [
        [
            call("recommend", category="Sci-Fi", min_year=1990, max_year=1999),
            final("ok"),
            final("ok"),
        ],  # "ok" names no listed item: re-asked, then replaced
        [call("recommend", category="Sci-Fi", min_year=1980), final("ok"), final("ok")],
    ]
    good = evaluate(world, [case], scripts[:1], router=False)[0]
    off = evaluate(world, [case], scripts[1:], router=False)[0]
    assert good.right_tool and not off.right_tool
    found = report([good, off], {})
    group = found["groups"]["constrained/model picks"]  # type: ignore[index]
    assert group["right_tool"] == 0.5 and group["by_template"]["filtered"]["turns"] == 2
    assert group["meets_targets"]["right_tool"] is False


def test_the_cache_resumes_and_a_refused_mode_is_skipped(world: World, tmp_path: Path) -> None:
    case = Case(user_id="scifi", template="dislikes", tool="get_profile",
                question="What kinds of movies do I dislike?")  # fmt: skip
    cache = ResultCache(tmp_path / "runs.jsonl")
    evaluate(world, [case], [[final("You rated Titanic 1.")]], cache=cache)
    again = evaluate(world, [case], [], cache=ResultCache(tmp_path / "runs.jsonl"))
    assert len(again) == 1 and again[0].right_tool  # read back, no model called

    def refuse(user: str, mode: str, routed: bool) -> ChatSession:
        response = httpx.Response(400, request=httpx.Request("POST", "http://x/v1"))
        raise openai.BadRequestError("needs --tool-call-parser", response=response, body=None)

    rec = world.recommender()
    results, skipped = run([case], ["native"], [True], refuse, ToolContext("scifi", rec).catalog,
                           ResultCache(None))  # fmt: skip
    assert results == [] and "--tool-call-parser" in skipped["native"]
