"""Model-free parts of the chat: the catalog's title lookup, the router, the answer check."""

from __future__ import annotations

import pytest

from agent.chat.answer_check import UserRatings, check_answer
from agent.chat.router import route
from agent.schemas import Item
from tests.profile_data import event
from tools.catalog import Catalog
from tools.errors import ToolInputError

CATALOG = Catalog.of([
    Item(item_id="423", title="E.T. the Extra-Terrestrial", year=1982, categories=["Sci-Fi"]),
    Item(item_id="12", title="Usual Suspects, The", year=1995, categories=["Crime"]),
    Item(item_id="11", title="Seven (Se7en)", year=1995, categories=["Crime", "Thriller"]),
    Item(item_id="1", title="Sabrina", year=1954, categories=["Comedy", "Romance"]),
    Item(item_id="2", title="Sabrina", year=1995, categories=["Comedy", "Romance"]),
    Item(item_id="3", title="Chasing Amy", year=1997, categories=["Comedy"]),
    Item(item_id="4", title="Chasing Amy", year=1997, categories=["Comedy"]),
    Item(item_id="5", title="Free Willy", year=1993, categories=["Children's", "Drama"]),
    Item(item_id="6", title="Heat", year=1995, categories=["Crime", "Thriller"]),
    Item(item_id="7", title="Scream", year=1996, categories=["Horror"]),
    Item(item_id="8", title="Alien", year=1979, categories=["Horror", "Sci-Fi"]),
    Item(item_id="9", title="Sleeper", year=1973, categories=["Comedy", "Sci-Fi"]),
])  # fmt: skip


@pytest.mark.parametrize(
    ("text", "item_id"),
    [("E.T.", "423"), ("et the extra terrestrial", "423"), ("The Usual Suspects", "12"),
     ("usual suspects, the (1995)", "12"), ("Se7en", "11"), ("Seven", "11"),
     ("Sabrina (1995)", "2"), ("Chasing Amy", "3"), ("Free Wily", "5")],
)  # fmt: skip
def test_titles_resolve_however_they_are_written(text: str, item_id: str) -> None:
    assert CATALOG.resolve(text) == item_id


def test_ambiguous_and_unknown_titles_list_the_closest() -> None:
    with pytest.raises(ToolInputError, match=r"several items: Sabrina \(1954\); Sabrina \(1995\)"):
        CATALOG.resolve("Sabrina")
    with pytest.raises(ToolInputError, match=r"closest titles: Scream \(1996\)"):
        CATALOG.resolve("Screamers")
    assert CATALOG.resolve("Chasing Amy", prefer=["4"]) == "4"


def test_mentions_need_a_capital_and_take_the_longest_title() -> None:
    found = CATALOG.mentions("You liked E.T. the Extra-Terrestrial and The Usual Suspects. "
                             "It was a heat wave; Heat is next.")  # fmt: skip
    assert [(m.text, m.item_ids) for m in found] == [
        ("E.T. the Extra-Terrestrial", ["423"]), ("The Usual Suspects", ["12"]), ("Heat", ["6"]),
    ]  # fmt: skip


def test_a_one_word_title_that_is_a_category_needs_its_year() -> None:
    """ML-100K has "War, The (1994)": "Dr. Strangelove ... (Sci-Fi, War)" in an answer once
    failed the title check as an unshown film."""
    catalog = Catalog.of([
        Item(item_id="1058", title="War, The", year=1994, categories=["Adventure", "Drama"]),
        Item(item_id="8", title="Alien", year=1979, categories=["Horror", "Sci-Fi", "War"]),
    ])  # fmt: skip
    found = [(m.text, m.item_ids) for m in catalog.mentions("A Sci-Fi and War film like Alien; "
                                                             "also War, The (1994).")]  # fmt: skip
    assert found == [("Alien", ["8"]), ("War", ["1058"])]


@pytest.mark.parametrize(
    ("question", "calls"),
    [
        ("Why did you recommend E.T. the Extra-Terrestrial to me, and what do I usually dislike?",
         [("explain_item", {"item": "E.T. the Extra-Terrestrial"}), ("get_profile", {})]),
        ("Why didn't you recommend Free Willy?", [("explain_item", {"item": "Free Willy"})]),
        ("why not heat", [("explain_item", {"item": "heat"})]),
        ("What kinds of movies do I dislike?", [("get_profile", {})]),
        ("Recommend me a comedy from the 90s.",
         [("recommend", {"category": "Comedy", "decade": "1990s"})]),
        ("Recommend me something like Alien.", [("recommend", {"like": "Alien"})]),
        ("Suggest a thriller without horror",
         [("recommend", {"exclude_category": "Horror", "category": "Thriller"})]),
        ("Recommend a sci-fi movie from the 2010s", [("recommend", {"category": "Sci-Fi"})]),
        ("Tell me a joke", []),
    ],
)  # fmt: skip
def test_the_router(question: str, calls: list[tuple[str, dict[str, str]]]) -> None:
    assert [(c.name, c.args) for c in route(question, CATALOG)] == calls


def ratings() -> UserRatings:
    history = [event("u", "8", 5, 0), event("u", "9", 5, 1), event("u", "6", 4, 2),
               event("u", "5", 1, 3), event("u", "7", 1, 4), event("u", "3", 2, 5),
               event("u", "423", 4, 6)]  # fmt: skip
    return UserRatings(history, CATALOG.items)


def test_an_answer_naming_only_shown_titles_is_grounded() -> None:
    check = check_answer("Alien and Sleeper, which you rated 5, drove E.T. the Extra-Terrestrial.",
                         CATALOG, {"8", "9", "423"}, ratings())  # fmt: skip
    assert check.ok and check.cited == ["8", "9", "423"] and check.titles[0] == "Alien"


def test_an_unshown_title_is_ungrounded() -> None:
    check = check_answer("You might enjoy Heat.", CATALOG, {"8"}, ratings())
    assert (
        check.ungrounded == ["Heat"]
        and not check.ok
        and "Heat, which no tool" in (check.problems()[0])
    )


@pytest.mark.parametrize(
    ("answer", "contradiction"),
    [
        ("You loved Free Willy.", "the user liked Free Willy (1993) (the user rated it 1)"),
        ("You dislike Alien, but you enjoyed Scream.", "the user disliked Alien (1979)"),
        ("I usually dislike sci-fi movies.", "the user disliked Sci-Fi"),
        ("You rated Heat 2.", "the user rated Heat (1995) 2 (it was 4)"),
    ],
)
def test_claims_against_the_ratings(answer: str, contradiction: str) -> None:
    check = check_answer(answer, CATALOG, set(CATALOG.items), ratings())
    assert check.grounded and any(c.startswith(contradiction) for c in check.contradictions)


@pytest.mark.parametrize(
    "answer",
    ["You rated Free Willy 1, so it is not recommended.", "People who liked Free Willy liked it.",
     "You might like Scream.", "You dislike horror like Scream and Free Willy."],
)  # fmt: skip
def test_true_claims_and_non_claims_pass(answer: str) -> None:
    check = check_answer(answer, CATALOG, set(CATALOG.items), ratings())
    assert check.ok, check.contradictions


def test_an_answer_that_skips_what_the_explanation_found_does_not_answer_the_question() -> None:
    """The E.T. case: asked why E.T. was recommended, the answer must name what raised it."""
    required = [("explain_item", ["8", "9"])]  # E.T.'s drivers: Alien, Sleeper
    shown = {"423", "8", "9", "5"}
    skipped = check_answer("You dislike Free Willy.", CATALOG, shown, ratings(), required)
    assert skipped.grounded and not skipped.ok
    assert "Alien" in skipped.unanswered[0] and skipped.problems()[-1] == skipped.unanswered[0]
    answered = check_answer("E.T. is here because of Sleeper.", CATALOG, shown, ratings(), required)
    assert answered.ok and not answered.unanswered


def test_a_long_real_title_is_a_valid_item_argument() -> None:
    from tools.registry import ExplainItemArgs

    title = "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963)"
    assert ExplainItemArgs(item=title).item == title  # the router passes titles as written


def test_a_taste_claim_about_an_item_outside_the_history_is_false() -> None:
    """The user never saw The Usual Suspects: "you liked it" is false; "it is here because you
    liked Alien" claims nothing about it."""
    shown = set(CATALOG.items)
    false = check_answer("You liked The Usual Suspects.", CATALOG, shown, ratings())
    assert "not in their history" in false.contradictions[0]
    long = (
        "The user liked The Usual Suspects because it is similar to Alien and Sleeper, "
        "which they liked."
    )  # the chat eval's first answer, one clause naming three films
    assert "not in their history" in check_answer(long, CATALOG, shown, ratings()).contradictions[0]
    true = check_answer("The Usual Suspects is here because you liked Alien.", CATALOG,
                        shown, ratings())  # fmt: skip
    assert not true.contradictions


def test_each_category_of_a_list_is_its_own_claim() -> None:
    """Crime is rated 1, 1, 1 and Comedy 5, 5, 5, the user's mean 3.7: pooled, the six items
    average 3.0, under the mean, and would hide that "you dislike comedy" is false."""
    history = [event("u", "6", 1, 0), event("u", "11", 1, 1), event("u", "12", 1, 2),
               event("u", "9", 5, 3), event("u", "1", 5, 4), event("u", "3", 5, 5),
               event("u", "8", 5, 6), event("u", "423", 5, 7), event("u", "5", 5, 8)]  # fmt: skip
    user = UserRatings(history, CATALOG.items)
    check = check_answer("You dislike crime and comedy.", CATALOG, set(), user)
    assert [c.split(",")[0] for c in check.contradictions] == ["the user disliked Comedy"]


def test_every_title_of_a_liked_list_is_claimed() -> None:
    """From the chat eval: "The user liked Toy Story, Twelve Monkeys, and Star Trek" of a user
    who rated Twelve Monkeys 2; here Scream and Free Willy were rated 1."""
    check = check_answer("You liked Alien, Scream and Free Willy.", CATALOG, set(CATALOG.items),
                         ratings())  # fmt: skip
    found = " | ".join(check.contradictions)
    assert "Scream" in found and "Free Willy" in found and "Alien" not in found
    fine = check_answer("You liked Alien and Sleeper.", CATALOG, set(CATALOG.items), ratings())
    assert not fine.contradictions


def test_a_title_after_a_closed_list_or_a_lone_comma_is_not_claimed() -> None:
    shown = set(CATALOG.items)
    for answer in ("Because you liked Alien and Sleeper, Heat is your top pick.",
                   "Because you liked Alien, Heat is your top pick."):  # fmt: skip
        assert not check_answer(answer, CATALOG, shown, ratings()).contradictions
