"""`personae recommend`, `explain` and `feedback` through typer's CliRunner, on the real record
and Chroma store (temp dir, hash embedder) with fake models: plumbing, errors, feedback loop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import recommend_cmds
from agent.cli.profile_cmds import stale_users
from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.profiles.profiler import Profiler
from agent.recommend.explain import Explainer
from agent.runtime.structured import StructuredGenerator
from agent.store.item_snapshot import discard_snapshot
from tests.fakes import SchemaFiller
from tests.recommend_data import World, build_world, fake_generator, history_ids


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setattr(recommend_cmds, "load_embedder", lambda settings: HashEmbedder())
    return build_world(tmp_path)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    recommend_cmds.register(app)
    return app


def invoke(app: typer.Typer, world: World, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(world.settings.data_dir)])
    return result.exit_code, result.stdout, result.stderr


def no_llm(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(settings: Settings) -> Any:
        raise AssertionError("this command must not open an LLM endpoint")

    monkeypatch.setattr(recommend_cmds, "open_generator", refuse)


def fake_llm(monkeypatch: pytest.MonkeyPatch, model: Any) -> None:
    @contextmanager
    def fake(settings: Settings) -> Iterator[StructuredGenerator]:
        yield fake_generator(settings, model)

    monkeypatch.setattr(recommend_cmds, "open_generator", fake)


def test_recommend_no_rerank_prints_unseen_items_without_the_llm(
    world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_llm(monkeypatch)
    code, out, err = invoke(app, world, "recommend", "scifi", "--k", "4", "--no-rerank", "--json")
    assert code == 0, err
    data = json.loads(out)
    ids = [r["item_id"] for r in data["items"]]
    assert len(ids) == 4 and not set(ids) & history_ids(world.record, "scifi")
    assert data["reranked"] is False and all(r["reason"] for r in data["items"])
    code, _, table = invoke(app, world, "recommend", "scifi", "--k", "4", "--no-rerank")
    assert code == 0 and "order: fusion" in table and "reasons: retrieval" in table
    assert "source(s)" in table


def test_recommend_uses_the_llm_for_reasons_and_blends_only_at_a_weight(
    world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ranker and no tuned weight: fusion's order, the LLM writes the reasons only. A set
    rerank_blend blends the scored re-rank in, and the result says so."""
    fake_llm(monkeypatch, SchemaFiller())
    code, out, err = invoke(app, world, "recommend", "crime", "--k", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["reranked"] is False and data["ordering"] == "fusion"
    assert data["rerank"]["mode"] == "reasons" and data["rerank"]["blend"] == 0
    assert data["rerank"]["reasons_unusable"] == 1  # the filler's words name no driver
    assert data["items"][0]["item_id"] not in history_ids(world.record, "crime")
    monkeypatch.setenv("PERSONAE_RERANK_BLEND", "0.3")
    code, out, err = invoke(app, world, "recommend", "crime", "--k", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["reranked"] is True and data["rerank"]["prompt"]["id"] == "rerank_score"
    assert data["rerank"]["mode"] == "scored" and data["rerank"]["reasons_unusable"] == 1
    assert (
        data["ordering"] == "fusion+LLM blend w=0.3" and data["rerank"]["blend_from"] == "setting"
    )
    code, _, table = invoke(app, world, "recommend", "crime", "--k", "1")
    assert code == 0 and "order: fusion+LLM blend w=0.3" in table


def test_the_table_names_cited_history_by_title(
    world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_llm(monkeypatch, SchemaFiller())
    code, out, err = invoke(app, world, "recommend", "crime", "--k", "1", "--json")
    assert code == 0, err
    cited = json.loads(out)["items"][0]["cited"]
    assert cited and "cites" not in out
    code, _, table = invoke(app, world, "recommend", "crime", "--k", "1")
    assert code == 0, table
    titles = recommend_cmds.cited_titles(world.recommender(), cited)
    flat = " ".join(table.split())  # the table wraps its cells
    named = [t for t in titles.values() if t.split()[0] in flat]
    assert "(cites:" in table or named  # retrieval reasons name them
    assert set(titles) == set(cited)
    shown = recommend_cmds.cites("Fits.", cited, titles)
    assert shown == "Fits. (cites: " + ", ".join(f"{titles[i]} [{i}]" for i in cited) + ")"
    assert recommend_cmds.cites("Fits.", [], titles) == "Fits."
    named = f"Like {titles[cited[0]]}."
    assert recommend_cmds.cites(named, cited[:1], titles) == named


def test_rerank_mode_generate_writes_the_list(
    world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_llm(monkeypatch, SchemaFiller())
    monkeypatch.setenv("PERSONAE_RERANK_BLEND", "0.5")  # at weight 0 no re-rank runs
    args = ["recommend", "crime", "--k", "1", "--json", "--rerank-mode", "generate"]
    code, out, err = invoke(app, world, *args)
    assert code == 0, err
    data = json.loads(out)
    assert data["rerank"]["mode"] == "generate" and data["rerank"]["prompt"]["id"] == "rerank"


def test_filters_are_respected_and_bad_ones_refused(
    world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_llm(monkeypatch)
    args = ["recommend", "crime", "--no-rerank", "--json", "--k", "20"]
    code, out, err = invoke(
        app, world, *args, "--filter", "category=drama", "--filter", "year>=1990"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["filters"] == ["category=Drama", "year>=1990"]
    for r in data["items"]:
        assert "Drama" in r["categories"] and r["year"] >= 1990
    assert data["items"]
    code, _, err = invoke(app, world, *args, "--filter", "category=Westerns")
    assert code == 1 and "unknown category 'Westerns'" in err


def test_a_disliked_item_never_comes_back(
    world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_llm(monkeypatch)
    args = ["recommend", "scifi", "--no-rerank", "--json", "--k", "3"]
    first = json.loads(invoke(app, world, *args)[1])["items"][0]["item_id"]
    code, _, err = invoke(app, world, "feedback", "scifi", first, "disliked")
    assert code == 0 and "personae update" in err
    again = json.loads(invoke(app, world, *[*args[:-1], "50"])[1])
    assert first not in {r["item_id"] for r in again["items"]}
    explained = json.loads(invoke(app, world, "explain", "scifi", first, "--no-llm", "--json")[1])
    assert explained["recommended"] is False and "rejected" in explained["verdict"]


def test_feedback_makes_the_profile_stale(
    world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiler = Profiler(world.settings, world.record)
    assert "pair" not in stale_users(profiler, None)
    code, out, _ = invoke(app, world, "feedback", "pair", "13", "liked", "--json")
    assert code == 0 and json.loads(out)["attributes"] == {"label": "liked"}
    assert "pair" in stale_users(profiler, None)
    request = profiler.prepare_update("pair", profiler.profiles.get("pair"))  # type: ignore[arg-type]
    assert "feedback liked" in request.prompt.messages[-1].content


def test_clear_errors(world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    no_llm(monkeypatch)
    code, _, err = invoke(app, world, "recommend", "sparse", "--no-rerank")
    assert code == 1 and "personae profile --users sparse" in err
    code, _, err = invoke(app, world, "recommend", "nobody", "--no-rerank")
    assert code == 1 and "user 'nobody' is not in the record" in err
    code, _, err = invoke(app, world, "explain", "scifi", "no-such-item", "--no-llm")
    assert code == 1 and "no item 'no-such-item'" in err
    code, _, err = invoke(app, world, "feedback", "scifi", "no-such-item", "liked")
    assert code == 1 and "no item" in err
    code, _, err = invoke(app, world, "feedback", "scifi", "1", "loved")
    assert code == 2
    world.index.client.delete_collection("items")  # no index at all: no snapshot either
    folder = world.index.snapshot_folder()
    assert folder is not None
    discard_snapshot(folder)
    code, _, err = invoke(app, world, "recommend", "scifi", "--no-rerank")
    assert code == 1 and "personae index items" in err


def test_explain_an_item_outside_the_list(
    world: World, app: typer.Typer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_llm(monkeypatch, SchemaFiller(enum_pick=-1))
    code, out, err = invoke(app, world, "explain", "scifi", "12", "--k", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["item_id"] == "12" and not data["recommended"]
    assert {s["source"] for s in data["sources"]} == {"dense", "collaborative", "popularity"}
    assert data["llm_explanation"] and data["prompt"]["id"] == "explain"
    assert set(data["llm_cited"]) <= history_ids(world.record, "scifi")


def test_explain_facts_for_seen_and_filtered_items(world: World) -> None:
    explainer = Explainer(world.recommender())
    seen = explainer.explain("scifi", "1")
    assert "already rated it 5" in " ".join(seen.facts) and "already has it" in seen.verdict
    rec = world.recommender()
    filtered = Explainer(rec).explain("scifi", "13", filters=rec.parse_filters(["year>=1990"]))
    assert "excluded by the filter year>=1990" in filtered.facts
    assert filtered.verdict == "not recommended: the filters exclude it"
    top = world.recommender().recommend("scifi", k=1, rerank_with_llm=False).items[0]
    assert Explainer(world.recommender()).explain("scifi", top.item_id, k=1).recommended
