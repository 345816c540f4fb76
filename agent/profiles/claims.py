"""Hold a profile's claims against the user's own ratings, with no LLM.

A claim is an interest ("likes X") or a dislike. Three checks, stored in the grounding record
(`ClaimCheck`), shown by `profile show` and reported by the eval:

- evidence agreement: the items it cites were rated above the user's mean on average (an
  interest) or below it (a dislike);
- whole-history agreement: the user's rated items that match the topic (the grounding judge:
  a shared word with the title or categories, or, with an embedder, categories within
  `SEMANTIC_THRESHOLD` of it, the threshold chosen on the labelled pairs of
  tests/fixtures/grounding/topic_support.json) have a mean rating on the claim's side of the
  user's mean; with fewer than `MIN_MATCHES` matches the claim is unchecked;
- bare topics: a topic that is only category names ("thriller films", "dramas").

A claim the whole history contradicts is removed before the profile is stored
(`drop_contradicted`, counted in `Grounding.contradicted_claims`); the `ClaimCheck` describes
the claims as the model wrote them, so the eval measures the model and the store holds only
what the ratings allow.

Why evidence agreement is not enough: v4 profiles cited four 1-star films under user 1's top
interest, and a check of whether a topic fits its items (the grounding score) called them
grounded."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence

from agent.profiles.grounding import LexicalJudge, TopicJudge
from agent.schemas import Item
from agent.schemas.profile import ClaimCheck, Interest

MIN_MATCHES = 3
_WORD = re.compile(r"[a-z0-9]+")
_FILLER = {"film", "films", "movie", "movies", "genre", "genres", "and", "the", "of", "a", "an",
           "s", "story", "stories", "cinema", "picture", "pictures", "with"}  # fmt: skip
_ALIASES = {"animated": "animation", "romantic": "romance", "science": "sci", "fiction": "fi",
            "scifi": "sci", "comedic": "comedy", "kid": "children", "kids": "children",
            "childrens": "children", "noir": "noir", "musicals": "musical"}  # fmt: skip


def bare_words(text: str) -> set[str]:
    """Words of `text` for comparing with category names: filler dropped, plurals folded."""
    found = set()
    for word in _WORD.findall(text.lower()):
        if word in _FILLER:
            continue
        word = _ALIASES.get(word, word)
        if word.endswith("ies") and len(word) > 4:
            word = word[:-3] + "y"
        elif word.endswith("s") and not word.endswith("ss") and len(word) > 3:
            word = word[:-1]
        found.add(_ALIASES.get(word, word))
    return found


def is_bare(topic: str, categories: Iterable[str]) -> bool:
    """True when every word of the topic is a word of some category name."""
    wanted = bare_words(topic)
    known = set().union(*(bare_words(c) for c in categories))
    return bool(wanted) and wanted <= known


def matching_ratings(
    topic: str, ratings: Mapping[str, float], items: Mapping[str, Item], judge: TopicJudge
) -> list[float]:
    """Ratings of the user's items that the judge says show the topic."""
    return [r for i, r in ratings.items() if i in items and judge.supported(topic, [items[i]])]


def agrees(values: Sequence[float], mean: float, liked: bool) -> bool:
    average = statistics.fmean(values)
    return average > mean if liked else average < mean


def contradicted(
    entry: Interest,
    liked: bool,
    ratings: Mapping[str, float],
    items: Mapping[str, Item],
    judge: TopicJudge,
) -> bool | None:
    """Whole-history check of one claim: None when fewer than `MIN_MATCHES` rated items
    match its topic (unchecked)."""
    if not ratings:
        return None
    matches = matching_ratings(entry.topic, ratings, items, judge)
    if len(matches) < MIN_MATCHES:
        return None
    return not agrees(matches, statistics.fmean(ratings.values()), liked)


def check_claims(
    interests: Sequence[Interest],
    dislikes: Sequence[Interest],
    ratings: Mapping[str, float],
    items: Mapping[str, Item],
    judge: TopicJudge | None = None,
) -> ClaimCheck:
    """`ratings`: item id -> the user's rating (their whole history, not only what was shown);
    `items`: the user's items, for titles and categories. The user's own entries
    (`source="user"`) are no claims about the history: left out."""
    interests = [e for e in interests if e.source == "model"]
    dislikes = [e for e in dislikes if e.source == "model"]
    report = ClaimCheck(claims=len(interests) + len(dislikes))
    categories = {c for item in items.values() for c in item.categories}
    report.bare_topics = sum(is_bare(e.topic, categories) for e in (*interests, *dislikes))
    if not ratings:
        return report
    mean = statistics.fmean(ratings.values())
    judge = judge or LexicalJudge()
    for liked, entries in ((True, interests), (False, dislikes)):
        for entry in entries:
            cited = [ratings[i] for i in entry.evidence if i in ratings]
            if cited:
                report.evidence_checked += 1
                report.evidence_agreeing += agrees(cited, mean, liked)
            verdict = contradicted(entry, liked, ratings, items, judge)
            if verdict is not None:
                report.history_checked += 1
                report.history_contradicted += verdict
    return report


def drop_contradicted(
    interests: list[Interest],
    dislikes: list[Interest],
    ratings: Mapping[str, float],
    items: Mapping[str, Item],
    judge: TopicJudge | None = None,
) -> tuple[list[Interest], list[Interest], int]:
    """The claims the whole history does not contradict, and how many were dropped. The
    user's own entries (`source="user"`) are always kept."""
    judge = judge or LexicalJudge()

    def kept(entries: list[Interest], liked: bool) -> list[Interest]:
        mine = [e.source == "user" for e in entries]
        return [e for e, own in zip(entries, mine, strict=True)
                if own or not contradicted(e, liked, ratings, items, judge)]  # fmt: skip

    kept_interests, kept_dislikes = kept(interests, True), kept(dislikes, False)
    dropped = len(interests) + len(dislikes) - len(kept_interests) - len(kept_dislikes)
    return kept_interests, kept_dislikes, dropped
