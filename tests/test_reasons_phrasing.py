"""The no-LLM reasons worded from more of the evidence (issue 29): every shape states only
facts its evidence backs (the checks find nothing), the shape follows from the evidence and
the list, and each new claim type is caught by `agent.reasons.facts` when it is false."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.reasons.checks import check_reason
from agent.reasons.evidence import Driver, ItemEvidence, item_evidence, user_facts
from agent.reasons.facts import false_facts
from agent.reasons.phrasing import SHAPES, Phrasing, display, evidence_reason
from agent.schemas import Interaction, Item
from tests.test_reasons_evidence import HISTORY, TITLES, hand_ease

CATALOG = ["Children's", "Comedy", "Drama", "Thriller", "War", "unknown"]
START = datetime(2020, 1, 1, tzinfo=UTC)
ET = Item(
    item_id="j1", title="E.T. the Extra-Terrestrial", categories=["Children's", "Drama"], year=1982
)
HISTORY_ITEMS = {
    "h1": Item(item_id="h1", title="Aladdin", categories=["Children's", "Comedy"], year=1992),
    "h2": Item(item_id="h2", title="Star Wars", categories=["War"], year=1977),
    "h3": Item(item_id="h3", title="Heat", categories=["Thriller"], year=1995),
    "h4": Item(item_id="h4", title="Usual Suspects, The", categories=["Thriller"], year=1995),
    "o1": Item(item_id="o1", title="Tron", categories=["Drama"], year=1982),
    "o2": Item(item_id="o2", title="Gandhi", categories=["Drama"], year=1982),
    "o3": Item(item_id="o3", title="Annie", categories=["Drama"], year=1982),
}


def events(ratings: dict[str, float]) -> list[Interaction]:
    return [
        Interaction(user_id="u", item_id=i, rating=r, timestamp=START + timedelta(days=n))
        for n, (i, r) in enumerate(ratings.items())
    ]


def evidence_for(ratings: dict[str, float]) -> ItemEvidence:
    facts = user_facts(events(ratings), HISTORY_ITEMS)
    return item_evidence(hand_ease(), HISTORY, ET, TITLES, facts=facts)


RICH = {"o1": 5.0, "o2": 5.0, "o3": 4.0, "h3": 2.0, "h4": 3.0, "h1": 5.0, "h2": 4.0}
"""h1 (5/5) and h2 (4/5) are the latest events; 1980s films rated 4.67 against 4.0 overall."""


def test_every_shape_the_evidence_supports_passes_every_check() -> None:
    evidence = evidence_for(RICH)
    assert evidence.drivers[0].categories == ["Children's", "Comedy"]
    assert evidence.drivers[0].events_ago == 2 and evidence.drivers[0].recent
    assert evidence.decade_count == 3 and evidence.user_mean == pytest.approx(4.0)
    assert evidence.popularity_rank == 5  # hand_ease's ids are in popularity order
    phrasing = Phrasing()
    seen = []
    for _ in SHAPES:
        text, cited = evidence_reason(evidence, phrasing) or ("", [])
        seen.append(text)
        check = check_reason(text, cited, evidence, CATALOG, [TITLES[c] for c in cited])
        assert check.problems == [], (text, check.problems)
        assert check.faithfulness == 1.0
    assert phrasing.shapes[:5] == ["ratings", "category", "recent", "era", "popular"]
    assert "You rated Aladdin 5/5 and Star Wars 4/5" in seen[0]
    assert seen[1].startswith("A children's film like Aladdin (5/5 from you)")
    assert "1980s" in seen[3] and "4.7 on average (overall 4.0)" in seen[3]


def test_the_shape_follows_from_the_evidence_not_chance() -> None:
    low = {"h1": 2.0, "h2": 1.0, "h3": 2.0, "h4": 3.0}  # nothing liked, nothing of the 1980s
    evidence = evidence_for(low)
    one = evidence_reason(evidence, Phrasing())
    assert one == evidence_reason(evidence, Phrasing())  # same evidence, same reason
    assert one is not None and "rated" not in one[0]  # no liked driver to cite a rating of
    bare = item_evidence(hand_ease(), HISTORY, ET, TITLES)  # no facts at all
    text, cited = evidence_reason(bare) or ("", [])
    assert text.startswith(("A children's", "One of the", "Fans of")) and cited


def test_a_list_names_fresh_drivers_first_and_varies_its_shapes() -> None:
    evidence = evidence_for(RICH)
    phrasing = Phrasing()
    first = evidence_reason(evidence, phrasing)
    second = evidence_reason(evidence, phrasing)
    assert first is not None and second is not None
    assert first[1] == ["h1", "h2"]
    assert "h4" in second[1]  # the one top-3 driver not named yet
    assert first[0].split()[:3] != second[0].split()[:3]


def test_display_puts_a_trailing_article_first() -> None:
    assert display("Usual Suspects, The") == "The Usual Suspects"
    assert display("Aladdin") == "Aladdin"


def driver(**given: object) -> Driver:
    base: dict[str, object] = {
        "item_id": "h1",
        "title": "Vertigo",
        "contribution": 0.4,
        "rating": 5.0,
        "categories": ["Thriller"],
        "events_ago": 3,
    }
    return Driver.model_validate(base | given)


def facts_of(text: str, **given: object) -> list[str]:
    base: dict[str, object] = {
        "item_id": "j",
        "title": "Rear Window",
        "categories": ["Thriller"],
        "year": 1954,
        "drivers": [driver()],
        "decade_mean": 4.5,
        "decade_count": 4,
        "user_mean": 3.6,
        "popularity_rank": 40,
    }
    return false_facts(text, ItemEvidence.model_validate(base | given), CATALOG)


def test_each_new_claim_type_is_caught_when_false() -> None:
    assert facts_of("You rated Vertigo 5/5; its fans liked this.") == []
    assert facts_of("You rated Vertigo 4/5; its fans liked this.") != []
    assert facts_of("Rated 5/5 by you.") == ["rating 5/5 of no named driver"]
    assert facts_of("Close to Vertigo, among your latest films.") == []
    assert facts_of(
        "Close to Vertigo, among your latest films.", drivers=[driver(events_ago=40)]
    ) == ["calls Vertigo recent"]
    assert facts_of("A thriller film like Vertigo.") == []
    assert facts_of("A thriller film like Vertigo.", drivers=[driver(categories=["Drama"])]) == [
        "says Vertigo is Thriller"
    ]
    assert facts_of("From the 1950s, a decade you rate 4.5 on average (overall 3.6).") == []
    assert len(facts_of("From the 1960s, a decade you rate 4.2 on average (overall 3.0).")) == 3
    assert facts_of("One of the 50 most-liked films.") == []
    assert facts_of("One of the 25 most-liked films.") != []
    assert facts_of("A popular pick.", popularity_rank=400) == ["says popular (rank 400)"]


def test_the_article_agrees_with_the_category() -> None:
    """Read in the main job's table: "A animation-comedy film like The Wrong Trousers"."""
    from agent.reasons.phrasing import Facts, category_shape

    evidence = evidence_for(RICH)
    evidence.drivers[0].categories = ["Animation", "Comedy"]
    evidence.categories = ["Animation", "Comedy"]
    text = category_shape(Facts(evidence, evidence.drivers[:1]))
    assert text is not None and text.startswith("An animation-comedy film like Aladdin"), text
