"""The facts a reason states beyond its citations, checked against its item's evidence with no
LLM: how the user rated a named driver ("you rated Vertigo 5/5"), that a named driver is recent
in the history, that the item shares a category with a named driver ("a thriller, like
Vertigo"), the item's decade and the user's average for it, and the item's popularity.

The no-LLM reasons state these facts (`agent.reasons.phrasing`) and an LLM reason may; either
way a claim that does not hold is a false claim (`ReasonCheck.false_facts`). Each check finds
its claim by the words that make it and attributes it to the driver titles named near it: a
claim the evidence cannot back (a rating of no named driver) counts as false too."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from agent.reasons.evidence import Driver, ItemEvidence
from agent.reasons.text import NOT_CATEGORIES, category_forms, find, title_words, tokens

RATING = re.compile(r"(\d(?:\.\d)?)\s*/\s*5\b|(\d(?:\.\d)?) stars?\b")
DECADE = re.compile(r"\b(1[89]\d0|20\d0)s\b")
DECADE_MEAN = re.compile(r"(\d\.\d) on average")
USER_MEAN = re.compile(r"(?:overall|your average(?: is| of)?) (\d\.\d)")
MOST = re.compile(r"\b(\d+) most[- ](?:liked|rated|popular|watched)")
RECENT_WORDS = frozenset({"recent", "recently", "lately", "latest", "newest"})
LINK_WORDS = frozenset({"like", "shares", "share", "sharing", "same", "both", "another", "too"})
POPULAR_WORDS = frozenset({"popular", "widely"})
POPULAR_TOP = 100
"""An item is popular when at most this many items were liked by more users."""
CLAUSE = re.compile(r"[.;:!?]+\s*")


def title_pattern(title: str) -> re.Pattern[str] | None:
    words = title_words(title)
    if not words:
        return None
    return re.compile(r"\b" + r"\W+".join(re.escape(w) for w in words) + r"\b")


def named(text: str, drivers: Iterable[Driver]) -> list[tuple[int, int, Driver]]:
    """(start, end, driver) of every driver title in the lowercased text, in text order."""
    low = text.lower()
    spans = []
    for driver in drivers:
        pattern = title_pattern(driver.title)
        if pattern is not None:
            spans += [(m.start(), m.end(), driver) for m in pattern.finditer(low)]
    return sorted(spans, key=lambda s: (s[0], -s[1]))


def rating_claims(text: str, drivers: Collection[Driver]) -> list[str]:
    """Each "N/5" (or "N stars") must follow a named driver the user rated N: the nearest
    title before it is the one it speaks of."""
    spans = named(text, drivers)
    found = []
    for match in RATING.finditer(text.lower()):
        value = float(match.group(1) or match.group(2))
        before = [s for s in spans if s[1] <= match.start()]
        if not before:
            found.append(f"rating {value:g}/5 of no named driver")
            continue
        driver = max(before, key=lambda s: s[1])[2]
        if driver.rating is None or abs(driver.rating - value) > 1e-6:
            had = "no rating" if driver.rating is None else f"{driver.rating:g}/5"
            found.append(f"says you rated {driver.title} {value:g}/5 ({had})")
    return found


def clauses(text: str) -> list[str]:
    return [c for c in CLAUSE.split(text) if c.strip()]


def recency_claims(text: str, drivers: Collection[Driver]) -> list[str]:
    """A clause that calls its named drivers recent: each must be among the last events."""
    found = []
    for clause in clauses(text):
        if RECENT_WORDS & set(tokens(clause)):
            found += [f"calls {d.title} recent" for _, _, d in named(clause, drivers)
                      if not d.recent]  # fmt: skip
    return found


def shared_category_claims(
    text: str, evidence: ItemEvidence, catalog: Collection[str]
) -> list[str]:
    """A clause linking a category to named drivers ("like", "shares", "both"...): each
    driver whose categories are known must have it."""
    found = []
    for clause in clauses(text):
        words = tokens(clause)
        if not LINK_WORDS & set(words):
            continue
        spans = named(clause, evidence.drivers)
        titles = [d.title for _, _, d in spans]
        bare = words
        for title in titles:  # a title's own words are names, not category claims
            phrase = title_words(title)
            while phrase and (at := find(bare, phrase)) >= 0:
                bare = bare[:at] + [""] * len(phrase) + bare[at + len(phrase) :]
        for category in catalog:
            if category.lower() in NOT_CATEGORIES:
                continue
            if not any(find(bare, form) >= 0 for form in category_forms(category)):
                continue
            found += [f"says {d.title} is {category}" for _, _, d in spans
                      if d.categories and category not in d.categories]  # fmt: skip
    return list(dict.fromkeys(found))


def decade_claims(text: str, evidence: ItemEvidence) -> list[str]:
    """A decade named must be the item's; an average stated must be the user's, to 0.1."""
    found = []
    low = text.lower()
    for match in DECADE.finditer(low):
        if evidence.decade != int(match.group(1)):
            found.append(f"says the {match.group(1)}s (the item is from {evidence.year})")
    for pattern, value, what in ((DECADE_MEAN, evidence.decade_mean, "decade"),
                                 (USER_MEAN, evidence.user_mean, "overall")):  # fmt: skip
        for match in pattern.finditer(low):
            if value is None or abs(round(value, 1) - float(match.group(1))) > 1e-6:
                had = "unknown" if value is None else f"{value:.1f}"
                found.append(f"says your {what} average is {match.group(1)} ({had})")
    return found


def popularity_claims(text: str, evidence: ItemEvidence) -> list[str]:
    rank = evidence.popularity_rank
    found = [f"says one of the {m.group(1)} most liked (rank {rank})"
             for m in MOST.finditer(text.lower())
             if rank is None or rank > int(m.group(1))]  # fmt: skip
    if POPULAR_WORDS & set(tokens(text)) and (rank is None or rank > POPULAR_TOP):
        found.append(f"says popular (rank {rank})")
    return found


def false_facts(text: str, evidence: ItemEvidence, catalog: Collection[str]) -> list[str]:
    """Every stated fact of the text that the item's evidence does not back."""
    drivers = evidence.drivers
    return (
        rating_claims(text, drivers)
        + recency_claims(text, drivers)
        + shared_category_claims(text, evidence, catalog)
        + decade_claims(text, evidence)
        + popularity_claims(text, evidence)
    )
