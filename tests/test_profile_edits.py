"""A user's own profile edits (`agent.profiles.edits`, `personae profile edit`): stored as
`edit` versions beside the LLM's, kept by later LLM versions (fake LLM), passed through the
grounding and claim checks unchecked, forgotten with the user. Plumbing only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.cli import profile_edit_cmds
from agent.cli.profile_cmds import stale_users
from agent.embeddings import HashEmbedder
from agent.profiles.claims import check_claims, drop_contradicted
from agent.profiles.edits import (
    EditError,
    EditRequest,
    apply_edit,
    category_named,
    load_edits,
    user_entry,
)
from agent.profiles.grounding import ground
from agent.profiles.profiler import previous_text
from agent.schemas.profile import Interest, ProfileDraft, ProfileKind, Sentiment
from agent.store.forget import forget_user, survey
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore
from tests.profile_data import ITEMS, add_events
from tests.test_profiles_batch import USERS, setup

CATEGORIES = {c for item in ITEMS for c in item.categories}


def topics(entries: list[Interest]) -> list[tuple[str, str]]:
    return [(e.topic, e.source) for e in entries]


@pytest.fixture
def record(tmp_path: Path) -> RecordStore:
    _, record, batch = setup(tmp_path)
    batch.run(USERS, batch.profiler.prepare_full)
    return record


def test_topics_naming_a_category_are_spelled_as_the_catalog_spells_them() -> None:
    assert category_named("sci-fi", CATEGORIES) == "Sci-Fi"
    assert category_named("Science fiction", CATEGORIES) == "Sci-Fi"
    assert category_named("horror films", CATEGORIES) == "Horror"
    assert category_named("slow burn", CATEGORIES) is None


def test_an_edit_is_a_user_version_with_user_entries_and_no_evidence(record: RecordStore) -> None:
    store = ProfileStore(record)
    base = store.get("scifi")
    assert base is not None
    outcome = apply_edit(
        record, "scifi", EditRequest(add_dislikes=["horror"], add_interests=["slow burn"])
    )
    profile = outcome.profile
    assert outcome.changed and profile is not None and store.get("scifi") == profile
    p = profile.provenance
    assert (p.kind, p.model, p.prompt.id, p.version) == (ProfileKind.EDIT, "user", "user_edit", 2)
    assert p.history_hash == base.provenance.history_hash
    assert topics(profile.dislikes) == [("Horror", "user")]
    assert topics(profile.interests) == [("slow burn", "user"), *topics(base.interests)]
    assert all(e.weight == 1.0 and e.evidence == [] for e in profile.dislikes)
    assert [v.kind for v in store.versions("scifi")] == ["full", "edit"]
    # an edit neither makes the profile stale nor current: the LLM's stamp decides
    assert store.latest_stamps()["scifi"].model == "fake-model"
    assert "Horror" not in previous_text(profile) and "source" not in previous_text(profile)


def test_removing_your_own_entry_restores_the_profile_exactly(record: RecordStore) -> None:
    base = ProfileStore(record).get("scifi")
    assert base is not None
    apply_edit(record, "scifi", EditRequest(add_dislikes=["sci-fi"]))
    edited = ProfileStore(record).get("scifi")
    assert edited is not None and edited.interests == []  # contradicted by your dislike
    outcome = apply_edit(record, "scifi", EditRequest(remove=["Sci-Fi"]))
    assert outcome.profile is not None
    assert outcome.profile.interests == base.interests
    assert outcome.profile.dislikes == base.dislikes
    assert outcome.edits == load_edits(ProfileStore(record), "scifi")
    assert not outcome.edits


def test_removing_a_model_topic_and_errors(record: RecordStore) -> None:
    model_topic = ProfileStore(record).get("scifi").interests[0].topic  # type: ignore[union-attr]
    outcome = apply_edit(record, "scifi", EditRequest(remove=["sci-fi"]))
    assert outcome.edits.removed == ["Sci-Fi"] and model_topic.startswith("Sci-Fi like")
    assert outcome.profile is not None and outcome.profile.interests == []
    with pytest.raises(EditError, match="no interest or dislike matches"):
        apply_edit(record, "scifi", EditRequest(remove=["westerns"]))
    with pytest.raises(EditError, match="not a catalog category"):
        apply_edit(record, "scifi", EditRequest(never=["westerns"]))
    with pytest.raises(EditError, match="not excluded"):
        apply_edit(record, "scifi", EditRequest(allow_again=["Horror"]))
    with pytest.raises(EditError, match="neither a profile nor events"):
        apply_edit(record, "nobody", EditRequest(add_interests=["Horror"]))
    with pytest.raises(EditError, match="longer than"):
        apply_edit(record, "scifi", EditRequest(add_interests=["x" * 41]))
    again = apply_edit(record, "scifi", EditRequest(remove=["sci-fi"]))
    assert not again.changed and len(ProfileStore(record).versions("scifi")) == 2


def test_never_and_allow_again_are_stored_as_catalog_categories(record: RecordStore) -> None:
    outcome = apply_edit(record, "crime", EditRequest(never=["horror", "ROMANCE"]))
    assert outcome.edits.never == ["Horror", "Romance"]
    outcome = apply_edit(record, "crime", EditRequest(allow_again=["romance"]))
    assert outcome.edits.never == ["Horror"]
    assert [v.kind for v in ProfileStore(record).versions("crime")] == ["full", "edit", "edit"]


def test_update_keeps_the_users_edits(tmp_path: Path) -> None:
    _, record, batch = setup(tmp_path)
    batch.run(USERS, batch.profiler.prepare_full)
    store = batch.profiler.profiles
    apply_edit(record, "scifi", EditRequest(add_dislikes=["horror"], add_interests=["slow burn"]))
    removed: str | None = None
    for day in (30, 40):  # two updates: the edits survive any number of them
        add_events(record, "scifi", [("8", 5, day), ("4", 4, day + 1)])
        assert stale_users(batch.profiler, since=None) == ["scifi"]
        previous = store.get("scifi")
        assert previous is not None
        request = batch.profiler.prepare_update("scifi", previous)
        assert "slow burn" not in request.prompt.messages[-1].content  # the LLM never sees it
        assert batch.run(["scifi"], lambda u, r=request: r).profiled == 1  # type: ignore[misc]
        latest = store.get("scifi")
        assert latest is not None and latest.provenance.kind is ProfileKind.UPDATE
        assert latest.provenance.model == "fake-model"
        assert topics(latest.interests)[0] == ("slow burn", "user")
        assert topics(latest.dislikes) == [("Horror", "user")]
        written = [e.topic for e in latest.interests if e.source == "model"]
        if removed is None:  # remove the model's topic: the fake LLM writes it again next time
            assert written
            removed = written[0]
            apply_edit(record, "scifi", EditRequest(remove=[removed]))
        else:
            assert removed not in written
    assert load_edits(store, "scifi").interests == ["slow burn"]
    assert [v.kind for v in store.versions("scifi")] == ["full", "edit", "update", "edit",
                                                         "update"]  # fmt: skip


def test_full_profile_of_an_edited_user_keeps_the_edits(tmp_path: Path) -> None:
    """`personae profile --force` (or a new model) rewrites the profile: edits stay."""
    _, record, batch = setup(tmp_path)
    apply_edit(record, "crime", EditRequest(add_interests=["film noir"], never=["Horror"]))
    blank = ProfileStore(record).get("crime")
    assert blank is not None and blank.provenance.kind is ProfileKind.EDIT
    assert blank.provenance.version == 1 and blank.facts.event_count == 5
    assert ProfileStore(record).latest_stamps()["crime"].model == "user"  # not current
    report = batch.run(["crime"], batch.profiler.prepare_full)
    assert report.profiled == 1
    latest = ProfileStore(record).get("crime")
    assert latest is not None and latest.provenance.version == 2
    assert topics(latest.interests)[0] == ("film noir", "user")


def test_checks_pass_user_entries_through_and_drafts_cannot_claim_them() -> None:
    mine = user_entry("Horror", liked=False)
    model = Interest(topic="Horror", weight=0.8, sentiment="negative", evidence=["8"])
    draft = ProfileDraft(
        interests=[Interest(topic="Sci-Fi", weight=0.9, sentiment="positive", evidence=["1"])],
        dislikes=[model],
        sentiment=Sentiment(label="positive", score=0.5),
        intent="more",
        summary="sum",
    )
    draft.dislikes.append(mine)
    items = {i.item_id: i for i in ITEMS}
    interests, dislikes, report = ground(draft, {"1"}, items)
    assert dislikes == [mine] and report.dropped_interests == 1  # "8" is not in the history
    assert report.score == 0.5  # of the model's two entries, one kept and supported
    ratings = {"1": 5.0, "8": 5.0, "11": 5.0, "2": 1.0}  # horror liked: a dislike contradicted
    check = check_claims(interests, [mine], ratings, items)
    assert check.claims == 1
    kept, kept_dislikes, dropped = drop_contradicted(interests, [mine], ratings, items)
    assert kept_dislikes == [mine] and dropped == 0
    reply = draft.model_dump() | {"dislikes": [mine.model_dump()]}
    assert ProfileDraft.model_validate(reply).dislikes[0].source == "model"
    assert "source" not in json.dumps(ProfileDraft.model_json_schema())
    with pytest.raises(ValueError, match="evidence"):
        Interest(topic="x", weight=1, sentiment="positive", evidence=[])


def test_forget_deletes_the_users_edits(record: RecordStore, tmp_path: Path) -> None:
    from agent.config import Settings
    from agent.store.chroma import open_client

    apply_edit(record, "scifi", EditRequest(never=["Horror"]))
    client = open_client(Settings(data_dir=tmp_path))
    assert survey(record, client, tmp_path, "scifi").profile_edits == 1
    report = forget_user(record, client, tmp_path, "scifi")
    assert report.profile_edits == 1 and ProfileStore(record).edits("scifi") is None


def test_cli_edit_show_and_json(
    record: RecordStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(profile_edit_cmds, "load_embedder", lambda settings: HashEmbedder())
    app = typer.Typer()
    sub = typer.Typer()
    profile_edit_cmds.register(sub)
    app.add_typer(sub, name="profile")

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, ["profile", "edit", *args, "--data-dir", str(tmp_path)])
        return result.exit_code, result.stdout + result.stderr

    code, out = run("scifi", "--add-dislike", "horror", "--never", "romance", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["changed"] and data["kind"] == "edit" and data["edits"]["never"] == ["Romance"]
    assert data["profile"]["dislikes"][0] == {
        "topic": "Horror", "weight": 1.0, "sentiment": "negative", "evidence": [], "source": "user"
    }  # fmt: skip
    code, out = run("scifi", "--show")
    assert code == 0 and "Horror (1.00, yours)" in out and "Romance" in out
    code, out = run("scifi", "--remove", "westerns")
    assert code == 1 and "no interest or dislike matches" in out
    code, out = run("scifi")
    assert code == 1 and "say what to change" in out
