"""The name a grouped profile stores for each group: the model's, when it passes the checks
that need no LLM, else one computed from the group ("Sci-Fi like Aliens and Gattaca").

Why: asked to name groups of liked films, the default 1.5B model wrote category lists back
("drama, comedy, and musical" for a group of documentaries), the same name for four groups,
or a genre the user rates below their mean. A name is kept when it says more than the
categories (`claims.is_bare`), fits the group's own items (the grounding judge) and the
user's whole history does not contradict it (`claims.contradicted`). Otherwise the stored
topic is the group's category and its strongest titles: true by construction and finer than
a genre. The grounding record counts the renamed topics, so the eval reports how often the
model's own name survived: the LLM's marginal value on this field, whatever it is."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from agent.profiles.claims import contradicted, is_bare
from agent.profiles.grounding import LexicalJudge, TopicJudge
from agent.schemas import Item
from agent.schemas.profile import CategoryRating, ComputedFacts, Interest

TOPIC_CHARS = 40
_ARTICLE = re.compile(r"^(?P<name>.+), (?P<article>The|A|An)$")
_ASIDE = re.compile(r"\s*\([^)]*\)")


def display_title(title: str) -> str:
    """'Terminator, The (1984)' -> 'The Terminator'; foreign-title asides dropped."""
    bare = _ASIDE.sub("", title).strip()
    match = _ARTICLE.match(bare)
    return f"{match['article']} {match['name']}" if match else bare


def computed_topic(category: str, evidence: Sequence[str], items: Mapping[str, Item]) -> str:
    """The category and as many of its strongest titles as fit in `TOPIC_CHARS` (titles too
    long to fit are passed over; none fitting leaves the category alone)."""
    fitting: list[str] = []
    for title in (display_title(items[i].title) for i in evidence if i in items):
        named = " and ".join([", ".join(fitting), title] if fitting else [title])
        if len(f"{category} like {named}") <= TOPIC_CHARS:
            fitting.append(title)
    if not fitting:
        return category
    named = ", ".join(fitting[:-1])
    return f"{category} like " + (f"{named} and {fitting[-1]}" if named else fitting[0])


def settle_topics(
    entries: list[Interest],
    liked: bool,
    category_of: Mapping[str, str],
    ratings: Mapping[str, float],
    items: Mapping[str, Item],
    judge: TopicJudge | None = None,
) -> tuple[list[Interest], int]:
    """Each entry with the model's topic or a computed one, and how many were renamed.
    `category_of`: item id -> the category of the group it was shown in. The user's own
    entries (`source="user"`) keep their topic."""
    judge = judge or LexicalJudge()
    every = {c for item in items.values() for c in item.categories}
    settled, renamed = [], 0
    for entry in entries:
        category = next((category_of[i] for i in entry.evidence if i in category_of), None)
        evidence = [items[i] for i in entry.evidence if i in items]
        if (
            entry.source == "user"
            or category is None
            or (
                not is_bare(entry.topic, every)
                and judge.supported(entry.topic, evidence)
                and not contradicted(entry, liked, ratings, items, judge)
            )
        ):
            settled.append(entry)
            continue
        renamed += 1
        topic = computed_topic(category, entry.evidence, items)
        settled.append(Interest(**(entry.model_dump() | {"topic": topic})))
    return settled, renamed


def computed_summary(facts: ComputedFacts) -> str | None:
    """What the ratings say, for a summary the model copied from its prompt (None: no
    ratings to say it with)."""
    mean = facts.rating_mean
    if mean is None:
        return None
    above = sorted((r for r in facts.category_ratings if r.mean > mean), key=lambda r: -r.mean)
    below = sorted((r for r in facts.category_ratings if r.mean < mean), key=lambda r: r.mean)

    def named(rows: list[CategoryRating]) -> str:
        return " and ".join(f"{r.name} ({r.mean:.1f})" for r in rows[:2])

    parts = [f"Rates {named(above)} above their {mean:.2f} average" if above else "",
             f"{named(below)} below it" if below else ""]  # fmt: skip
    text = "; ".join(p for p in parts if p)
    return f"{text}." if text else None


def computed_intent(interests: Sequence[Interest], items: Mapping[str, Item]) -> str | None:
    """More of the strongest interest, for an intent the model copied from its prompt."""
    if not interests:
        return None
    first = interests[0]
    lead = first.evidence[0] if first.evidence else None
    if " like " in first.topic or lead is None or lead not in items:
        return f"More {first.topic}"
    return f"More {first.topic} like {display_title(items[lead].title)}"
