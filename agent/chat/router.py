"""A small deterministic router: the tool calls a question obviously needs, before any model
call; the model chooses only for the questions it does not recognise.

Why a router and not only the model: the 1.5B default model picked `recommend` with every
filter filled for "why did you recommend E.T. ... and what do I dislike?" (issue 30), and
the same question got the right tool or a wrong one by chance. The questions people ask a
recommender fall in a few shapes ("why (not) X", "what do I like/dislike", "recommend me
... like Z / a comedy from the 1990s") that a few patterns recognise every time, at no model
cost, with arguments taken from the question itself (a title resolved through the catalog,
a category from the catalog's own list, a decade the catalog has). A question of several
shapes ("why X, and what do I dislike?") gets one call per shape. Anything else falls to
the model, whose first reply is decoded against an enum of the tools (the constrained path),
so it still cannot call a tool that does not exist. The model always writes the answer,
which is then checked against what the tools returned (`agent.chat.answer_check`)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from agent.profiles.claims import bare_words
from tools.catalog import Catalog
from tools.context import ToolInputError

MAX_ROUTED = 3

_CLAUSES = re.compile(
    r"[?;!]|,\s*(?:and|also|but|then)?\s*|\s+(?:and|also)\s+(?=(?:what|which|why|how|can|could"
    r"|please|recommend|suggest|show|give|tell)\b)",
    re.I,
)
_WHY_ITEM = re.compile(
    r"\bwhy\b.*?\b(?:recommend(?:ed|ing)?|suggest(?:ed|ing)?|pick(?:ed)?|show(?:ed|n)?|rank(?:ed)?"
    r"|would\s+i\s+like|should\s+i\s+(?:watch|see))\s+(?:me\s+)?(?P<title>.+)$",
    re.I,
)
_WHY_NOT = re.compile(r"\bwhy\s+not\s+(?P<title>.+)$", re.I)
_WHY_IS = re.compile(
    r"\bwhy\s+(?:is|was|isn'?t|wasn'?t)\s+(?P<title>.+?)\s+(?:not\s+)?(?:recommended|in\s+my|on\s+my"
    r"|among|there|suggested)",
    re.I,
)
_TITLE_TAIL = re.compile(
    r"\s+(?:to|for)\s+me\b.*$|\s+(?:again|instead|at\s+all|then)\b.*$|[.?!]+$", re.I
)
_TASTE = re.compile(
    r"\b(?:what|which)\b.*\b(?:do|did|would)\s+i\b.*\b(?:like|dislike|hate|love|enjoy|prefer|"
    r"avoid)\b|\bmy\s+(?:taste|profile|preferences|favou?rites?|dislikes|interests)\b|\babout\s+"
    r"me\b|\b(?:least\s+)?favou?rite\b|\bkinds?\s+of\s+(?:movies|films|items)\b",
    re.I,
)
_RECOMMEND = re.compile(
    r"\b(?:recommend|suggest|something|anything|find\s+me|show\s+me|give\s+me|what\s+should\s+i"
    r"|looking\s+for|in\s+the\s+mood)\b",
    re.I,
)
_LIKE = re.compile(r"\b(?:like|similar\s+to|resembling)\s+(?P<title>.+)$", re.I)
_DECADE = re.compile(r"\b(?:(?P<century>19|20)?(?P<decade>\d)0'?s)\b|'(?P<short>\d)0s\b")
_EXCLUDE = re.compile(r"\b(?:without|no|not|except|but\s+not)\s+(?P<what>[\w\s'-]+)$", re.I)
_HISTORY = re.compile(
    r"\bwhat\s+(?:did|have)\s+i\s+(?:watch|see|rate|seen|watched|rated)|\bmy\s+(?:last|recent|"
    r"latest|history)|\brated\s+(?:highest|lowest|best|worst)|\bhave\s+i\s+(?:seen|watched|rated)",
    re.I,
)
_TOPIC = r"(?P<topic>[\w\s'&-]{2,40}?)"
_TOPIC_END = r"(?:[\s,]+(?:please|any\s?more|from\s+now\s+on|again|for\s+me))*[\s.!]*$"
_EDITS: list[tuple[str, re.Pattern[str]]] = [
    ("never", re.compile(r"^(?:please\s+)?(?:never|don'?t\s+ever|do\s+not\s+ever)\s+(?:show|"
                         r"recommend|suggest)(?:\s+me)?(?:\s+any)?\s+" + _TOPIC + _TOPIC_END,
                         re.I)),
    ("remove", re.compile(r"^(?:please\s+)?(?:remove|delete|drop|take)\s+" + _TOPIC
                          + r"\s+(?:from|off|out\s+of)\s+my\s+profile" + _TOPIC_END, re.I)),
    ("add_dislike", re.compile(r"^(?:please\s+)?(?:no\s+more|less|fewer|stop\s+(?:recommending|"
                               r"showing|suggesting)(?:\s+me)?)\s+" + _TOPIC + _TOPIC_END, re.I)),
    ("add_dislike", re.compile(r"^i\s+(?:don'?t|do\s+not|no\s+longer)\s+(?:like|enjoy|want)\s+"
                               + _TOPIC + _TOPIC_END, re.I)),
    ("add_dislike", re.compile(r"^i(?:'m|\s+am)\s+(?:tired|sick)\s+of\s+" + _TOPIC + _TOPIC_END,
                               re.I)),
    ("add_interest", re.compile(r"^(?:please\s+)?(?:(?:show|give)\s+me\s+)?more\s+(?!like\b)"
                                + _TOPIC + _TOPIC_END, re.I)),
    ("add_interest", re.compile(r"^i\s+(?:really\s+)?(?:like|love|enjoy)\s+(?!it\b|that\b|this\b)"
                                + _TOPIC + r"(?:\s+now)?" + _TOPIC_END, re.I)),
]  # fmt: skip
"""Clauses asking to change the profile ("no more horror, please"): a proposed edit, stored
only when the user confirms (`tools.edit_tools`)."""
_SIMILAR = re.compile(r"\bpeople\s+like\s+me\b|\bsimilar\s+users\b|\busers\s+like\s+me\b", re.I)


class RoutedCall(BaseModel):
    name: str
    args: dict[str, Any]
    clause: str
    """The part of the question it answers."""


def route(question: str, catalog: Catalog) -> list[RoutedCall]:
    """The calls the question needs, in the order asked; [] when no shape is recognised."""
    calls: list[RoutedCall] = []
    for clause in (c.strip() for c in _CLAUSES.split(question)):
        call = route_clause(clause, catalog) if clause else None
        if call is not None and all(c.name != call.name for c in calls):
            calls.append(call)
    return calls[:MAX_ROUTED]


def route_clause(clause: str, catalog: Catalog) -> RoutedCall | None:
    why = _WHY_IS.search(clause) or _WHY_ITEM.search(clause) or _WHY_NOT.search(clause)
    if why is not None:
        return RoutedCall(name="explain_item", args={"item": title_in(why["title"], catalog)},
                          clause=clause)  # fmt: skip
    edit = edit_in(clause)
    if edit is not None:
        return RoutedCall(name="propose_profile_edit", args=edit, clause=clause)
    if _SIMILAR.search(clause):
        return RoutedCall(name="similar_users", args={}, clause=clause)
    if _TASTE.search(clause):
        return RoutedCall(name="get_profile", args={}, clause=clause)
    if _HISTORY.search(clause):
        return RoutedCall(name="get_history", args={}, clause=clause)
    if _RECOMMEND.search(clause):
        return RoutedCall(name="recommend", args=recommend_args(clause, catalog), clause=clause)
    return None


def edit_in(clause: str) -> dict[str, Any] | None:
    """The profile edit a clause asks for, as the edit tool's arguments; None: not an edit."""
    for action, pattern in _EDITS:
        match = pattern.search(clause.strip())
        if match is not None and match["topic"].strip():
            return {"action": action, "topic": " ".join(match["topic"].split())}
    return None


def title_in(text: str, catalog: Catalog) -> str:
    """The title a clause names: the text as written when the catalog knows it, else the
    first catalog title mentioned in it, else the text (the tool's error lists the closest)."""
    span = _TITLE_TAIL.sub("", text.strip()).strip(" \"'")
    try:
        catalog.resolve(span)
    except ToolInputError:
        mentioned = catalog.mentions(text)
        return mentioned[0].text if mentioned else span
    return span


def recommend_args(clause: str, catalog: Catalog) -> dict[str, Any]:
    args: dict[str, Any] = {}
    like = _LIKE.search(clause)
    if like is not None:
        args["like"] = title_in(like["title"], catalog)
        clause = clause[: like.start()]
    excluded = _EXCLUDE.search(clause)
    if excluded is not None:
        dropped = categories_in(excluded["what"], catalog)
        if dropped:
            args["exclude_category"] = dropped[0]
            clause = clause[: excluded.start()]
    wanted = categories_in(clause, catalog)
    if wanted:
        args["category"] = wanted[0]
    decade = decade_in(clause, catalog)
    if decade is not None:
        args["decade"] = decade
    return args


def categories_in(text: str, catalog: Catalog) -> list[str]:
    """Catalog categories every word of which the text has ("romantic comedy" -> Comedy,
    Romance; "sci-fi" and "science fiction" -> Sci-Fi), most words first."""
    have = bare_words(text)
    found = [c for c in catalog.categories() if bare_words(c) and bare_words(c) <= have]
    return sorted(found, key=lambda c: -len(bare_words(c)))


def decade_in(text: str, catalog: Catalog) -> str | None:
    """`1990s`, `the 90s`, `'90s` -> "1990s" when the catalog has that decade."""
    match = _DECADE.search(text)
    if match is None:
        return None
    digit = match["decade"] or match["short"]
    century = match["century"] or ("20" if digit in "012" else "19")
    decade = f"{century}{digit}0s"
    years = catalog.year_range()
    if years is None or not years[0] // 10 * 10 <= int(decade[:4]) <= years[1]:
        return None
    return decade
