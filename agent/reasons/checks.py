"""A written reason held against its item's evidence, with no LLM in the loop.

A constraint fixes the form of what a model writes, never its truth (design: "Recommendation
stages"). Issue 29 found LLM reasons citing items that did not drive the score, giving
items categories they lack, saying the user rated the film being recommended, and repeating
one template. Each of those is checked here from text and numbers alone:

- faithfulness: the share of cited history items among the item's top-3 EASE contributors;
- false claims: a catalog category word the item does not have, a phrase saying the user
  rated, watched or saw the recommended item, or a stated fact its evidence does not back
  (`agent.reasons.facts`: a driver's rating, recency or categories, decade, popularity);
- and, over a run, variety (`agent.reasons.variety`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from pydantic import BaseModel

from agent.reasons.evidence import ItemEvidence
from agent.reasons.facts import false_facts
from agent.reasons.text import (
    NOT_CATEGORIES,
    category_forms,
    find,
    title_words,
    tokens,
    without_titles,
)

__all__ = ["ReasonCheck", "check_reason", "find", "title_words", "tokens"]

FAITHFUL_TOP = 3
SUBJECTS = frozenset({"you", "you've", "user"})
"""Not "they": "people who liked A ... they also liked this" speaks of other users."""
HELPERS = frozenset({"have", "has", "had", "already", "also", "previously", "once", "just"})
SEEN_VERBS = frozenset(
    {"rated", "rate", "rates", "watched", "watch", "watches", "saw", "seen", "viewed",
     "enjoyed", "liked", "loved", "gave"}
)  # fmt: skip
TARGET_WINDOW = 3
"""Words between the verb and the recommended item's title in a seen-claim ("this" must follow
the verb at once: "you rated Aladdin highly; this ..." claims nothing about this item)."""


def false_categories(
    text: str, evidence: ItemEvidence, catalog: Collection[str], titles: Iterable[str] = ()
) -> list[str]:
    """Catalog categories a reason names that the item does not have. Titles (the item's own
    and the cited ones) are removed first: their words are names, not claims."""
    words = without_titles(tokens(text), [evidence.title, *titles])
    has = {c.lower() for c in evidence.categories}
    found = []
    for category in sorted(catalog):
        if category.lower() in has or category.lower() in NOT_CATEGORIES:
            continue
        if any(find(words, form) >= 0 for form in category_forms(category)):
            found.append(category)
    return found


def seen_claims(text: str, title: str, names: Iterable[str] = ()) -> list[str]:
    """Phrases saying the user rated, watched or saw the recommended item ("you rated X",
    "the user rates X as fun", "you've already seen this"): the item is a recommendation, so
    the user has not. `names` (history titles the reason may name) are blanked first, except
    those inside the item's own title: "you rated Batman Returns low" is no claim about
    Batman, but with Batman cited "you rated Batman Returns" is one about Batman Returns."""
    own = title_words(title)
    names = [n for n in names if find(own, title_words(n)) < 0]
    words = without_titles(tokens(text), names)
    target = title_words(title)[:3]
    found = []
    for i, word in enumerate(words):
        if word not in SUBJECTS:
            continue
        j = i + 1
        while j < len(words) and words[j] in HELPERS:
            j += 1
        if j >= len(words) or words[j] not in SEEN_VERBS:
            continue
        window = j + 1 + TARGET_WINDOW
        at = find(words, target, j + 1, window + len(target)) if target else -1
        this = j + 1 if j + 1 < len(words) and words[j + 1] == "this" else -1
        end = at + len(target) if at >= 0 else this + 1 if this >= 0 else -1
        if end >= 0:
            found.append(" ".join(words[i:end]))
    return found


def faithfulness(
    cited: Sequence[str], evidence: ItemEvidence, top: int = FAITHFUL_TOP
) -> float | None:
    """Share of the cited history items among the item's `top` contributors; None when the
    reason cites nothing (counted apart: it names no driver, true or false)."""
    cited = list(dict.fromkeys(cited))
    if not cited:
        return None
    drivers = set(evidence.top_ids(top))
    return sum(c in drivers for c in cited) / len(cited)


class ReasonCheck(BaseModel):
    item_id: str
    cited: list[str]
    faithfulness: float | None
    false_categories: list[str]
    seen_claims: list[str]
    cut_off: bool = False
    """The text stops mid-sentence (the reason's length bound cut it): "... because it has
    been rated" was seen for 5 of 5 reasons of a user with reasons v2."""
    names_driver: bool = True
    """The text names at least one cited driver by title: a reason that names none ("X is a
    mystery thriller, which is a category ...") says nothing the evidence backs."""
    false_facts: list[str] = []
    """Stated facts the evidence does not back (`agent.reasons.facts`): a driver's rating,
    its recency or categories, the item's decade or popularity."""

    @property
    def false_claim(self) -> bool:
        return bool(self.false_categories or self.seen_claims or self.false_facts)

    @property
    def problems(self) -> list[str]:
        found = [f"category {c}" for c in self.false_categories] + self.seen_claims
        found += self.false_facts
        found += ["cut off mid-sentence"] if self.cut_off else []
        return found + ([] if self.names_driver else ["names none of its cited drivers"])


def cut_off(text: str) -> bool:
    return not text.rstrip().endswith((".", "!", "?", '"', ")"))


def names_any(text: str, titles: Iterable[str]) -> bool:
    """True when the text holds the first words of one of the titles (up to three: "Return
    of the Jedi" is named by "Return of the")."""
    words = tokens(text)
    return any(find(words, title_words(t)[:3]) >= 0 for t in titles if title_words(t))


def check_reason(
    text: str,
    cited: Sequence[str],
    evidence: ItemEvidence,
    catalog: Collection[str],
    cited_titles: Iterable[str] = (),
) -> ReasonCheck:
    """Every per-reason check. `catalog` is the catalog's category names; `cited_titles` the
    titles of the cited history items (names, not category or seen claims)."""
    cited_titles = list(cited_titles)
    mine = {d.item_id: d.title for d in evidence.drivers}
    return ReasonCheck(
        item_id=evidence.item_id,
        cited=list(cited),
        faithfulness=faithfulness(cited, evidence),
        false_categories=false_categories(text, evidence, catalog, cited_titles),
        seen_claims=seen_claims(text, evidence.title, cited_titles),
        cut_off=cut_off(text),
        names_driver=names_any(text, [mine[c] for c in cited if c in mine]),
        false_facts=false_facts(text, evidence, catalog),
    )
