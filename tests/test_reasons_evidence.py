"""Reason evidence and its checks on hand-made cases (issue 29): exact EASE contributions, the
per-reason checks, the deletion test and the variety figures. No LLM, no data dir."""

from __future__ import annotations

import numpy as np
import pytest

from agent.profiles.copying import ngrams
from agent.reasons.checks import ReasonCheck, check_reason
from agent.reasons.deletion import deletion_test, drop_ratio
from agent.reasons.evidence import item_evidence, shown_evidence
from agent.reasons.summary import summarize
from agent.reasons.variety import distinct, template, variety
from agent.recommend.collaborative import EaseModel, fit_ease
from agent.schemas import Item

IDS = ["h1", "h2", "h3", "h4", "j1", "j2"]
HISTORY = ["h1", "h2", "h3", "h4"]
TITLES = {"h1": "Aladdin", "h2": "Star Wars", "h3": "Heat", "h4": "Usual Suspects, The"}
CATALOG = ["Children's", "Comedy", "Thriller", "War", "unknown"]
ET = Item(item_id="j1", title="E.T. the Extra-Terrestrial", categories=["Children's"], year=1982)
OTHER = Item(item_id="j2", title="Copycat", categories=["Thriller"], year=1995)


def hand_ease() -> EaseModel:
    """B[k, j] set by hand: j1 is driven by h1 (0.5), h2 (0.2), h4 (0.05), pulled down by h3
    (-0.1); j2 only by h3 (0.3)."""
    b = np.zeros((6, 6), dtype=np.float32)
    b[0, 4], b[1, 4], b[2, 4], b[3, 4] = 0.5, 0.2, -0.1, 0.05
    b[2, 5] = 0.3
    return EaseModel(IDS, b)


def test_contributions_are_the_exact_ease_terms_and_sum_to_the_score() -> None:
    ease = hand_ease()
    found = item_evidence(ease, HISTORY, ET, TITLES)
    assert [(d.item_id, d.title) for d in found.drivers] == [
        ("h1", "Aladdin"), ("h2", "Star Wars"), ("h4", "Usual Suspects, The"),
    ]  # fmt: skip
    assert [d.contribution for d in found.drivers] == pytest.approx([0.5, 0.2, 0.05])
    assert found.score == pytest.approx(0.65)  # 0.5 + 0.2 - 0.1 + 0.05
    assert found.score == pytest.approx(float(ease.scores(HISTORY)[4]))
    assert (found.categories, found.year) == (["Children's"], 1982)
    both = shown_evidence(ease, HISTORY, {"j1": ET, "j2": OTHER}, ["j2", "j1"], TITLES)
    assert list(both) == ["j2", "j1"] and both["j2"].top_ids() == ["h3"]
    assert ease.contributions(HISTORY, "j1", top=2) == ["h1", "h2"]  # today's reason, unchanged


def test_fitted_ease_contribution_matches_the_closed_form_by_hand() -> None:
    """X = [[1, 1], [1, 0]] (u1 has a and b, u2 has a), λ = 1: XᵀX + λI = [[3, 1], [1, 2]],
    P = [[2, -1], [-1, 3]] / 5, B[k, j] = -P[k, j] / P[j, j]: B[a, b] = 1/3, B[b, a] = 1/2."""
    ease = fit_ease([("u1", "a"), ("u1", "b"), ("u2", "a")], lam=1.0, max_items=10)
    assert ease.contribution_scores(["a"], "b") == [("a", pytest.approx(1 / 3))]
    assert ease.contribution_scores(["b"], "a") == [("b", pytest.approx(1 / 2))]


def test_checks_tell_a_faithful_reason_from_an_unfaithful_or_false_one() -> None:
    evidence = item_evidence(hand_ease(), HISTORY, ET, TITLES)

    def check(text: str, cited: list[str]) -> ReasonCheck:
        return check_reason(text, cited, evidence, CATALOG, [TITLES[c] for c in cited])

    faithful = check("People who liked Aladdin and Star Wars also liked this.", ["h1", "h2"])
    assert faithful.faithfulness == 1.0 and not faithful.false_claim  # "Wars" is a title
    unfaithful = check("Like Heat, a film for children.", ["h3"])
    assert unfaithful.faithfulness == 0.0 and not unfaithful.false_claim
    assert check("Like Aladdin and Heat.", ["h1", "h3"]).faithfulness == 0.5
    assert check("A fine film.", []).faithfulness is None
    wrong = check("A gripping thriller, like Aladdin; the comedies you love.", ["h1"])
    assert wrong.false_categories == ["Comedy", "Thriller"] and wrong.false_claim
    assert check("Unknown gems like Aladdin.", ["h1"]).false_categories == []
    rated = check("You rated E.T. the Extra-Terrestrial as fun, like Aladdin.", ["h1"])
    assert rated.seen_claims == ["you rated e t the"] and rated.false_claim
    assert check("The user rates E.T. the Extra-Terrestrial highly.", ["h1"]).seen_claims
    assert check("You've already seen this one.", ["h1"]).seen_claims == [
        "you've already seen this"
    ]
    assert check("You rated Aladdin highly; this shares its charm.", ["h1"]).seen_claims == []


def test_deletion_of_the_only_driver_drops_score_and_rank_more_than_random() -> None:
    b = np.zeros((6, 6), dtype=np.float32)
    b[0, 4] = 1.0  # h1 is j1's only driver
    b[1, 5] = 0.5  # h2 drives j2, j1's rival for the top
    ease = EaseModel(IDS, b)
    found = deletion_test(ease, HISTORY, "j1", ["h1"], set(HISTORY), seed=3, draws=8, user_id="u")
    assert found is not None
    assert (found.score, found.rank) == (1.0, 1)
    assert found.cited_drop == pytest.approx(1.0) and found.cited_rank_drop == 1
    assert 0 < found.random_drop < 1 and found.ratio is not None and found.ratio > 1
    again = deletion_test(ease, HISTORY, "j1", ["h1"], set(HISTORY), seed=3, draws=8, user_id="u")
    assert again == found  # seeded
    assert deletion_test(ease, HISTORY, "j1", ["nope"], set(HISTORY)) is None
    summary = drop_ratio([found, None])
    assert summary.items == 1 and summary.ratio == pytest.approx(found.ratio)


def test_variety_figures_on_a_hand_made_list() -> None:
    texts = ["The film is great fun for you.", "The film is great fun and moving.",
             "A quiet story of love."]  # fmt: skip
    assert distinct(texts, 1) == pytest.approx(14 / 19)
    assert distinct(texts, 2) == pytest.approx(12 / 16)
    assert template(texts) == ("the film is great fun", pytest.approx(2 / 3))
    grams = frozenset(ngrams("Write about a quiet story of the past."))
    found = variety(texts, grams)
    assert found.copy_rate == pytest.approx(1 / 3)
    assert found.opening_3_rate == pytest.approx(2 / 3)
    assert variety([]).distinct_2 == 0.0 and variety([]).template_rate == 0.0


def test_summary_puts_the_figures_of_one_run_together() -> None:
    ease = hand_ease()
    evidence = item_evidence(ease, HISTORY, ET, TITLES)
    texts = ["People who liked Aladdin also liked this.", "You rated E.T. the Extra-Terrestrial."]
    checks = [check_reason(texts[0], ["h1"], evidence, CATALOG), check_reason(texts[1], [],
              evidence, CATALOG)]  # fmt: skip
    deletions = [deletion_test(ease, HISTORY, "j1", ["h1"], set(HISTORY)), None]
    found = summarize(texts, checks, deletions)
    assert (found.reasons, found.uncited_rate, found.faithfulness) == (2, 0.5, 1.0)
    assert (found.false_claim_rate, found.seen_claim_rate) == (0.5, 0.5)
    assert found.deletion_items == 1 and found.copy_rate is None
