"""The LLM's reasons for the items shown, from each item's own evidence (issue 29): one schema
per K, cited numbers that can only be the item's own drivers, dropped numbers, false claims
replaced by the retrieval reason, a prompt naming no other item, one source of evidence for
recommend and explain, and the bench's plumbing. Deterministic fakes: plumbing only, nothing
about how well a model writes."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from agent.config import Settings
from agent.reasons.evidence import item_evidence
from agent.recommend.explain import Explainer
from agent.recommend.service import Recommender
from agent.recommend.shown_reasons import (
    ShownReasonsOutcome,
    areasons,
    keep_true,
    prepare_evidence_reasons,
    reasons_schema,
)
from agent.runtime.structured import decoding_schema
from agent.schemas import Item
from tests.fakes import SchemaFiller, ScriptedChatModel
from tests.recommend_data import CATALOG, World, build_world, fake_generator
from tests.test_reasons_evidence import CATALOG as CATEGORIES
from tests.test_reasons_evidence import ET, HISTORY, OTHER, TITLES, hand_ease

LONE = Item(item_id="j3", title="Lone Star", categories=["Drama"], year=1996)


def reply(*entries: tuple[str, list[int]]) -> str:
    return json.dumps({"reasons": [{"reason": r, "cited": c} for r, c in entries]})


def hand_request():  # type: ignore[no-untyped-def]
    """E.T. (drivers h1, h2, h4), Copycat (driver h3) and Lone Star (no driver)."""
    ease = hand_ease()
    evidence = {i.item_id: item_evidence(ease, HISTORY, i, TITLES) for i in (ET, OTHER, LONE)}
    return evidence, prepare_evidence_reasons("u", list(evidence.values()))


def decoded(tmp_path: Path, script: str) -> ShownReasonsOutcome:
    evidence, request = hand_request()
    generator = fake_generator(Settings(data_dir=tmp_path), ScriptedChatModel(script=[script]))
    made = asyncio.run(areasons(generator, request))
    keep_true(made, evidence, CATEGORIES)
    return made


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path, rerank_top_n=5)


def shown_request(rec: Recommender, user: str, k: int):  # type: ignore[no-untyped-def]
    retrieval = rec.retrieve(user)
    shown = [f.item_id for f in retrieval.fused[:k]]
    return prepare_evidence_reasons(user, list(rec.evidence(retrieval, shown).values()))


def test_the_schema_is_the_same_for_two_users_with_the_same_k(world: World) -> None:
    rec = world.recommender()
    scifi, crime = shown_request(rec, "scifi", 3), shown_request(rec, "crime", 3)
    assert scifi.shown != crime.shown and scifi.slot_ids != crime.slot_ids
    assert scifi.schema is crime.schema is reasons_schema(3)
    schema = decoding_schema(scifi.schema)
    assert schema == decoding_schema(crime.schema)
    assert (
        schema["properties"]["reasons"]["minItems"]
        == 3
        == schema["properties"]["reasons"]["maxItems"]
    )
    entry = schema["$defs"]["ShownReason"]["properties"]["cited"]
    assert entry["items"]["enum"] == [1, 2, 3] and entry["maxItems"] == 3
    assert decoding_schema(shown_request(rec, "scifi", 2).schema) != schema


def test_a_cited_number_is_that_items_own_driver(tmp_path: Path) -> None:
    made = decoded(tmp_path, reply(("Like Star Wars and Aladdin.", [2, 1]),
                                   ("Heat fans chose it.", [1]), ("Fine.", [1])))  # fmt: skip
    assert made.picks["j1"].cited == ["h2", "h1"]  # E.T.'s drivers 2 and 1
    assert made.picks["j2"].cited == ["h3"]  # Copycat's driver 1, not E.T.'s
    assert made.error is None and made.false_claims == 0


def test_a_number_the_item_has_no_driver_for_is_dropped_and_counted(tmp_path: Path) -> None:
    made = decoded(tmp_path, reply(("Like Aladdin.", [1, 3, 3]), ("Heat fans chose it.", [1, 2]),
                                   ("A drama for you.", [1])))  # fmt: skip
    assert made.picks["j1"].cited == ["h1", "h4"]  # E.T. has a third driver
    assert made.picks["j2"].cited == ["h3"]  # Copycat has one: its number 2 is dropped
    assert "j3" not in made.picks  # Lone Star has none: left citing nothing
    assert made.missing_slots == 2 and made.uncited == 1
    assert made.drafts["j3"].cited == [] and "cites no driver" in made.rejected["j3"]


@pytest.mark.parametrize(
    "text",
    [
        "You rated E.T. the Extra-Terrestrial as fun, like Aladdin.",
        "A gripping thriller, like Aladdin.",  # E.T. is Children's only
        "You've already seen this, like Aladdin.",
    ],
)
def test_a_false_claim_is_left_out_and_counted(tmp_path: Path, text: str) -> None:
    made = decoded(tmp_path, reply((text, [1]), ("Heat fans chose it.", [1]), ("Fine.", [1])))
    assert "j1" not in made.picks and made.false_claims == 1
    assert made.rejected["j1"].startswith("false claim")
    assert "j2" in made.picks  # the checks judge each reason alone
    assert "Star Wars" not in made.rejected["j1"]  # a driver's title names, it claims nothing


def test_recommend_shows_the_retrieval_reason_for_a_false_claim(world: World) -> None:
    rec = world.recommender()
    shown = rec.recommend("scifi", k=2, rerank_with_llm=False)
    first, second = shown.items
    driver = rec.evidence(rec.retrieve("scifi"), [second.item_id])[second.item_id].drivers[0]
    kept = f"Close to {driver.title}, which you rated."
    model = ScriptedChatModel(script=[reply((f"You rated {first.title} highly.", [1]),
                                            (kept, [1]))])  # fmt: skip
    result = world.recommender(fake_generator(world.settings, model)).recommend("scifi", k=2)
    assert [r.item_id for r in result.items] == [first.item_id, second.item_id]
    assert result.items[0].reason_by == "retrieval" and result.items[0].reason == first.reason
    assert result.items[0].cited == first.cited
    assert result.items[1].reason_by == "llm" and result.items[1].reason == kept
    assert result.rerank is not None and result.rerank.reasons_false == 1
    assert result.rerank.reasons_prompt is not None and result.rerank.reasons_prompt.version == 2


def test_the_prompt_names_only_the_users_items_and_the_shown(world: World) -> None:
    model = ScriptedChatModel(script=[reply(*[("Close to what you have.", [1])] * 3)])
    rec = world.recommender(fake_generator(world.settings, model))
    result = rec.recommend("scifi", k=3)
    ((messages, _),) = model.calls
    system, user = (str(m.content) for m in messages)
    allowed = {e.item_id for e in world.record.history("scifi")} | {r.item_id for r in result.items}
    for item in CATALOG:
        named = re.search(rf"(?<!\w){re.escape(item.title)}(?!\w)", system + user)
        assert (named is not None) <= (item.item_id in allowed), item.title
    for r in result.items:
        assert r.title in user
    assert "example" not in system.lower() and "e.g." not in system
    assert '"' not in system  # no quoted phrase a small model could copy into every reason
    for claim in ("rated", "watched", "categories listed"):
        assert claim in system


def test_recommend_and_explain_read_the_same_evidence(world: World) -> None:
    rec = world.recommender()
    top = rec.recommend("scifi", k=1, rerank_with_llm=False).items[0]
    evidence = rec.evidence(rec.retrieve("scifi"), [top.item_id])[top.item_id]
    assert top.cited == evidence.top_ids(2)  # the retrieval reason names the top drivers
    explained = Explainer(rec).explain("scifi", top.item_id)
    assert explained.evidence == evidence and explained.cited == top.cited
    assert any(f.startswith("the history items that raised") for f in explained.facts)


def test_the_bench_writes_llm_reasons_beside_the_retrieval_ones(world: World) -> None:
    from bench.reasons import run, table

    world.record.close()
    settings = world.settings
    found = run(settings, users=3, k=2, seed=0, generator=fake_generator(settings, SchemaFiller()))
    assert list(found["columns"]) == ["retrieval", "llm", "llm_drafts"]
    assert found["columns"]["retrieval"]["reasons"] == found["columns"]["llm"]["reasons"] == 6
    llm = found["llm"]
    assert llm["users"] == 3 and llm["failed_users"] == 0 and llm["prompt"] == "reasons v2"
    assert llm["tokens_in_per_user"] > 0 and llm["seconds_per_user"] >= 0
    assert llm["kept"] + llm["uncited"] + llm["false_claims"] + llm["unusable"] == 6
    shown = table(found)
    assert "llm_drafts" in shown and "tokens in" in shown
    alone = run(settings, users=3, k=2, seed=0)
    assert list(alone["columns"]) == ["retrieval"] and "llm" not in alone
    assert alone["columns"]["retrieval"] == found["columns"]["retrieval"]


def test_a_drivers_title_inside_a_seen_claim_is_no_claim_about_the_item() -> None:
    from agent.reasons.checks import seen_claims

    batman = ["Batman Returns"]
    assert (
        seen_claims("You rated Batman Returns low, yet Batman is darker.", "Batman", batman) == []
    )
    assert seen_claims("You rated Batman highly.", "Batman", batman) == ["you rated batman"]
    assert seen_claims("You rated Batman Returns.", "Batman Returns", ["Batman"]) == [
        "you rated batman returns"
    ]


def test_a_reason_cut_off_or_naming_none_of_its_drivers_is_unusable() -> None:
    from agent.reasons.checks import cut_off, names_any

    assert cut_off("George of the Jungle (a children's comedy) is recommended because it has")
    assert not cut_off("Close to Aliens, which you rated 5.")
    assert names_any("Like The Return of the Jedi you loved.", ["Return of the Jedi (1983)"])
    assert not names_any("Rear Window is a mystery thriller.", ["Vertigo (1958)"])
