"""Profile truth (profile v5+): which side an event is on, history shown in groups by side,
evidence by construction, claims held against the ratings, topics renamed when the model's
fail, and text copied from the prompt. All model-free: fakes only stand in for the model's
reply, never for a quality claim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.config import Settings
from agent.profiles.claims import check_claims, is_bare
from agent.profiles.copying import copies, prompt_ngrams
from agent.profiles.groups import grouped_context, quotas
from agent.profiles.naming import computed_topic, display_title, settle_topics
from agent.profiles.profiler import Profiler
from agent.profiles.sentiment import RatingScale, sides_of
from agent.prompts import load_prompt
from agent.runtime.structured import Generated, GenerationMeta
from agent.schemas import EventType, Interaction, Item
from agent.schemas.profile import GroupedDraft, Interest, grouped_ids
from tests.profile_data import ITEMS, build_record

START = datetime(2020, 1, 1, tzinfo=UTC)
CATALOG = {i.item_id: i for i in ITEMS}


def rated(user: str, pairs: list[tuple[str, float | None]]) -> list[Interaction]:
    return [
        Interaction(user_id=user, item_id=item, timestamp=START + timedelta(days=day),
                    rating=rating, event_type=EventType.RATING if rating else EventType.CLICK)
        for day, (item, rating) in enumerate(pairs)
    ]  # fmt: skip


def interest(topic: str, evidence: list[str]) -> Interest:
    return Interest(topic=topic, weight=0.8, sentiment="positive", evidence=evidence)


# -- sides ---------------------------------------------------------------------------------


def test_on_a_five_point_scale_4_and_5_are_liked_1_and_2_disliked_whatever_the_mean() -> None:
    generous = RatingScale.of(rated("u", [("1", 5), ("2", 5), ("3", 4), ("4", 3)]))
    assert generous.five_point and generous.mean is not None and generous.mean > 4
    assert [generous.rated_side(r) for r in (5, 4, 3, 2, 1)] == [
        "liked", "liked", None, "disliked", "disliked"]  # fmt: skip
    one = RatingScale.of(rated("u", [("1", 5)]))
    assert one.rated_side(5) == "liked"  # a one-rating history still has a side


def test_other_scales_split_at_the_users_mean() -> None:
    tens = RatingScale.of(rated("u", [("1", 9), ("2", 3), ("3", 6)]))
    assert not tens.five_point
    assert [tens.rated_side(r) for r in (9, 6, 3)] == ["liked", None, "disliked"]


def test_implicit_feedback_only_every_choice_is_liked_and_negative_feedback_disliked() -> None:
    """The rule for users without ratings: what they chose is liked; `disliked`/`dismissed`
    feedback is disliked; nothing else is disliked."""
    history = rated("u", [("1", None), ("2", None)]) + [
        Interaction(user_id="u", item_id="3", timestamp=START + timedelta(days=9),
                    event_type=EventType.FEEDBACK, attributes={"label": "dismissed"}),
    ]  # fmt: skip
    scale = RatingScale.of(history)
    assert scale.implicit and scale.describe("liked") == "chosen (no ratings)"
    assert sides_of(history) == {"1": "liked", "2": "liked", "3": "disliked"}


def test_clicks_beside_ratings_are_on_neither_side() -> None:
    assert sides_of(rated("u", [("1", 5), ("2", None), ("3", 1)])) == {
        "1": "liked", "3": "disliked"}  # fmt: skip


# -- groups --------------------------------------------------------------------------------


def test_liked_groups_hold_only_liked_items_and_disliked_groups_only_disliked() -> None:
    history = rated("u", [("1", 5), ("2", 5), ("7", 4), ("10", 5), ("6", 1), ("9", 2), ("8", 1),
                          ("4", 3)])  # fmt: skip
    scale = RatingScale.of(history)
    context = grouped_context(history, CATALOG, [], 2000, scale)
    groups = context.groups()
    sides = sides_of(history)
    assert {g.label for g in context.liked} <= set("ABCDE")
    assert {g.label for g in context.disliked} <= set("XYZ")
    for label, ids in groups.items():
        wanted = "liked" if label in "ABCDE" else "disliked"
        assert ids and all(sides[i] == wanted for i in ids), (label, ids)
    assert "4" not in {i for ids in groups.values() for i in ids}  # a 3 is on neither side
    assert context.groups()["A"][0] in {"1", "2", "10"}  # strongest first: a 5, not the 4
    lines = "\n".join(context.block("liked"))
    assert lines.startswith("A. Sci-Fi") and "Sci-Fi, " not in lines  # no category lists


def test_the_line_budget_is_shared_in_proportion_with_a_floor_for_each_side() -> None:
    assert quotas(90, 10, 40) == (30, 10)  # 10% disliked gets the 25% floor
    assert quotas(50, 50, 40) == (20, 20)
    assert quotas(100, 2, 40) == (38, 2)  # a floor cannot show more than there is
    assert quotas(3, 0, 40) == (3, 0)
    assert quotas(0, 0, 40) == (0, 0)


def test_a_short_history_still_shows_its_strongest_item() -> None:
    history = rated("u", [("3", 5), ("9", 4), ("6", 4), ("8", 1), ("1", 2)])
    context = grouped_context(history, CATALOG, [], 2000, RatingScale.of(history))
    assert "3" in {i for ids in context.groups().values() for i in ids}


# -- evidence by construction --------------------------------------------------------------


def grouped(interests: list[tuple[str, str]], dislikes: list[tuple[str, str]]) -> GroupedDraft:
    return GroupedDraft.model_validate({
        "interests": [{"group": g, "topic": t, "weight": 0.9, "sentiment": "positive"}
                      for g, t in interests],
        "dislikes": [{"group": g, "topic": t, "weight": 0.5, "sentiment": "negative"}
                     for g, t in dislikes],
        "sentiment": {"label": "positive", "score": 0.5}, "intent": "More.", "summary": "Yes.",
    })  # fmt: skip


def test_a_named_group_becomes_its_items_and_an_unshown_group_is_invalid() -> None:
    draft, twice = grouped_ids(
        grouped([("A", "space"), ("C", "ghost"), ("A", "again")], [("X", "weepies")]),
        {"A": ["1", "2", "10", "7", "5"], "X": ["6", "9"]},
    )
    assert twice == 1
    assert [i.evidence for i in draft.interests] == [["1", "2", "10", "7"], ["group:C"]]
    assert draft.dislikes[0].evidence == ["6", "9"]


def test_the_schema_cannot_put_a_disliked_group_under_an_interest() -> None:
    schema = GroupedDraft.model_json_schema()
    defs = schema["$defs"]
    assert defs["LikedGroup"]["properties"]["group"]["enum"] == list("ABCDE")
    assert defs["DislikedGroup"]["properties"]["group"]["enum"] == list("XYZ")


def test_a_stored_grouped_profile_cites_only_liked_items_under_interests(tmp_path: Path) -> None:
    profiler = Profiler(Settings(data_dir=tmp_path), build_record(tmp_path))
    request = profiler.prepare_full("scifi")
    assert request.prompt.ref.version >= 5 and request.groups is not None
    liked = [g for g in request.groups if g in "ABCDE"]
    disliked = [g for g in request.groups if g in "XYZ"]
    draft = grouped([(g, "space adventure") for g in liked], [(g, "x") for g in disliked])
    meta = GenerationMeta(model="fake", prompt=request.prompt.ref, attempts=1)
    profile = profiler.finish(request, Generated(value=draft, meta=meta))
    ratings = {"1": 5, "2": 5, "7": 4, "10": 5, "6": 1, "9": 2}
    assert profile.interests and all(ratings[i] >= 4 for p in profile.interests
                                     for i in p.evidence)  # fmt: skip
    assert all(ratings[i] <= 2 for p in profile.dislikes for i in p.evidence)
    assert profile.grounding.claims is not None
    assert profile.grounding.claims.evidence_agreeing == profile.grounding.claims.evidence_checked


# -- claims against the ratings ------------------------------------------------------------

USER1 = {"1": 1.0, "2": 1.0, "7": 2.0, "10": 1.0, "5": 5.0, "6": 5.0, "9": 4.0, "4": 5.0}
"""Hates science fiction (1, 2, 7, 10 are Sci-Fi), loves the rest."""


def test_an_interest_citing_items_rated_below_the_mean_disagrees() -> None:
    check = check_claims([interest("space horror", ["1", "2"])], [], USER1, CATALOG)
    assert (check.evidence_checked, check.evidence_agreeing) == (1, 0)


def test_the_whole_history_contradicts_an_interest_in_what_the_user_rates_low() -> None:
    liked_scifi = interest("sci-fi", ["9"])  # evidence agrees, the history does not
    check = check_claims([liked_scifi], [], USER1, CATALOG)
    assert check.evidence_agreeing == 1
    assert (check.history_checked, check.history_contradicted) == (1, 1)
    romance = interest("romance", ["6", "9"])  # 2 rated Romance items: too few to check
    assert check_claims([romance], [], USER1, CATALOG).history_checked == 0
    disliked = Interest(topic="sci-fi", weight=0.5, sentiment="negative", evidence=["1"])
    assert check_claims([], [disliked], USER1, CATALOG).history_contradicted == 0


def test_bare_genres_are_category_names_only() -> None:
    categories = ["Sci-Fi", "Children's", "Animation", "Comedy", "Romance", "Thriller"]
    for bare in ("thriller films", "Comedies", "children's animated films", "science fiction",
                 "romantic comedies", "Sci-Fi, Thriller"):  # fmt: skip
        assert is_bare(bare, categories), bare
    for fine in ("Sci-Fi like Aliens", "1980s space sequels", "Pixar comedies", "Nolan"):
        assert not is_bare(fine, categories), fine


# -- topics renamed, text copied -----------------------------------------------------------


def test_a_bare_or_contradicted_topic_is_renamed_from_its_group_and_a_good_one_kept() -> None:
    category_of = {"5": "Drama", "6": "Drama", "4": "Crime"}
    entries = [interest("drama", ["5", "6"]), interest("Titanic and Fargo", ["6", "5"])]
    settled, renamed = settle_topics(entries, True, category_of, USER1, CATALOG)
    assert renamed == 1
    assert settled[0].topic == "Drama like Fargo and Titanic" and settled[0].evidence == ["5", "6"]
    assert settled[1].topic == "Titanic and Fargo"


def test_a_computed_topic_fits_and_reads_like_a_title() -> None:
    assert display_title("Terminator, The (1984)") == "The Terminator"
    assert display_title("Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)") == "Shanghai Triad"
    long = {"a": Item(item_id="a", title="One Flew Over the Cuckoo's Nest (1975)"),
            "b": Item(item_id="b", title="Heat (1995)")}  # fmt: skip
    assert computed_topic("Drama", ["a", "b"], long) == "Drama like Heat"
    assert len(computed_topic("Drama", ["a"], long)) <= 40


def test_copies_of_the_prompt_are_caught_in_v4_and_none_of_v5s_own_facts() -> None:
    v4 = prompt_ngrams("profile", 4)
    assert copies("An animated classic that rewards a second viewing.", v4)
    v5 = prompt_ngrams("profile", 5)
    assert copies("Doyle, Christie, Eco, Mantel, and James.", v5)  # seen for ML-100K user 6
    assert not copies("Sci-Fi like Aliens and The Terminator", v5)
    last = load_prompt("profile", 5).messages[-1].content
    assert "{{ liked_lines }}" not in last and "liked_lines" in last  # the user turn is not fixed


def test_profile_show_names_each_piece_of_evidence_with_the_users_rating(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    profiler = Profiler(Settings(data_dir=tmp_path), build_record(tmp_path))
    request = profiler.prepare_full("scifi")
    assert request.groups is not None
    draft = grouped([(g, "Ridley Scott creatures") for g in request.groups if g in "ABCDE"], [])
    meta = GenerationMeta(model="fake", prompt=request.prompt.ref, attempts=1)
    profiler.profiles.add(profiler.finish(request, Generated(value=draft, meta=meta)))
    profiler.record.close()
    env = {"PERSONAE_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    shown = CliRunner().invoke(app, ["profile", "show", "scifi"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "Alien (1979) rated 5" in shown.output and "draft vs ratings" in shown.output
