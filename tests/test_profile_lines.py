"""Line-citing profile prompts (profile v4+): one reply schema for every user, line numbers
mapped back to the ids of the lines shown, and a number past the user's lines counted as
invalid evidence, never stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.config import Settings
from agent.profiles.context import history_context
from agent.profiles.facts import compute_facts
from agent.profiles.profiler import Profiler
from agent.runtime.structured import Generated, GenerationMeta, decoding_schema
from agent.schemas import Interaction, Item
from agent.schemas.profile import MAX_LINES, LinedDraft, cited_ids
from tests.profile_data import HISTORIES, build_record

USERS = sorted(HISTORIES)


def profiler(tmp_path: Path, version: int | None = None) -> Profiler:
    settings = Settings(data_dir=tmp_path, profile_prompt_version=version)
    return Profiler(settings, build_record(tmp_path))


def test_every_user_gets_the_same_schema_with_lines_but_not_with_ids(tmp_path: Path) -> None:
    lined = profiler(tmp_path, version=4)
    sent = {json.dumps(decoding_schema(lined.prepare_full(u).schema)) for u in USERS}
    assert len(sent) == 1
    assert lined.prepare_full(USERS[0]).prompt.ref.version >= 4
    by_ids = profiler(tmp_path / "v3", version=3)
    assert len({json.dumps(decoding_schema(by_ids.prepare_full(u).schema)) for u in USERS}) > 1


def test_lines_are_numbered_in_order_and_line_ids_are_the_items_shown(tmp_path: Path) -> None:
    p = profiler(tmp_path, version=4)
    request = p.prepare_full("scifi")
    history = p.record.history("scifi")
    user_turn = request.prompt.messages[-1].content
    assert request.line_ids == [e.item_id for e in history]  # all 6 fit the budget
    for number, event in enumerate(history, 1):
        item = p.record.get_item(event.item_id)
        assert item is not None
        assert f"- [{number}] {item.title}" in user_turn
    assert "[10]" not in user_turn  # item 10 (The Matrix) is shown as its line number, 4


def draft(evidence: list[int]) -> LinedDraft:
    return LinedDraft.model_validate(
        {
            "interests": [
                {"topic": "space horror", "weight": 0.9, "sentiment": "positive",
                 "evidence": evidence},
            ],
            "sentiment": {"label": "positive", "score": 0.4},
            "intent": "more films set in space",
            "summary": "Likes science fiction.",
        }
    )  # fmt: skip


def test_a_line_past_the_users_lines_is_invalid_evidence_and_is_not_stored(
    tmp_path: Path,
) -> None:
    p = profiler(tmp_path, version=4)
    request = p.prepare_full("scifi")
    meta = GenerationMeta(model="fake", prompt=request.prompt.ref)
    profile = p.finish(request, Generated(value=draft([1, 2, 7, 59]), meta=meta))
    (interest,) = profile.interests
    assert interest.evidence == ["1", "2"]  # lines 1 and 2: Alien, Aliens
    assert profile.grounding.invalid_evidence == 2 and profile.grounding.cited == 4


def test_no_line_at_all_drops_the_interest(tmp_path: Path) -> None:
    p = profiler(tmp_path, version=4)
    request = p.prepare_full("pair")  # two lines
    meta = GenerationMeta(model="fake", prompt=request.prompt.ref)
    profile = p.finish(request, Generated(value=draft([3]), meta=meta))
    assert profile.interests == [] and profile.grounding.dropped_interests == 1


def test_cited_ids_keeps_everything_but_the_evidence() -> None:
    mapped = cited_ids(draft([2, 1]), ["a", "b"])
    assert mapped.interests[0].evidence == ["b", "a"]
    assert mapped.interests[0].topic == "space horror" and mapped.intent.startswith("more")


def test_numbered_context_shows_at_most_the_schema_range() -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    items = {str(i): Item(item_id=str(i), title=f"T{i}") for i in range(150)}
    history = [
        Interaction(user_id="u", item_id=str(i), rating=4.0, timestamp=start + timedelta(days=i))
        for i in range(150)
    ]
    facts = compute_facts(history, items, history[-1].timestamp)
    numbered = history_context(history, items, facts, budget=100_000, numbered=True)
    assert numbered.shown == MAX_LINES and numbered.lines[-1].startswith(f"- [{MAX_LINES}] ")
    by_id = history_context(history, items, facts, budget=100_000)
    assert by_id.shown == 150  # the cap is for line numbers only
