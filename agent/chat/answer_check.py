"""Hold a chat answer to what the tools returned this turn and to the user's ratings, with no
LLM.

- Titles: every catalog title the answer names (`Catalog.mentions`) must be an item a tool
  showed this turn; any other is ungrounded (the model knew it from pre-training, or from an
  earlier turn it may misremember).
- Claims: a clause that says the user likes or dislikes something ("you loved Alien", "I
  usually dislike horror") is checked against the ratings: a named item must be in the
  history (not a recommendation the user has never seen) and on that side
  (`agent.profiles.sentiment`: 4-5 liked, 1-2 disliked on a 1-5 scale), a named category
  must not be contradicted by the user's rated items of it (the profile claim check,
  `agent.profiles.claims`, 3+ matching items), and "you rated X 5" must be X's rating.
  Clauses about other people ("people who liked X") and hypotheticals ("you might like X")
  claim nothing about this user's history.

A failing answer is re-asked once with `problems()`, then replaced (`agent.chat.session`)."""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, Field

from agent.profiles.claims import MIN_MATCHES, agrees, bare_words, matching_ratings
from agent.profiles.grounding import LexicalJudge
from agent.profiles.sentiment import Side, sides_of
from agent.reasons.evidence import ratings_of
from agent.schemas import Interaction, Item
from tools.catalog import Catalog, Mention, Word, tokens

_NEGATIVE = re.compile(
    r"\b(?:dislike[sd]?|hate[sd]?|not\s+(?:like|enjoy|love|a\s+fan)|dont\s+(?:like|enjoy|love)|"
    r"didnt\s+(?:like|enjoy|love)|doesnt\s+(?:like|enjoy)|avoid(?:s|ed)?|rated\s+(?:\w+\s+)?low|"
    r"low(?:er)?\s+ratings?|least\s+favou?rite|poorly|negative)\b"
)
_POSITIVE = re.compile(
    r"\b(?:like[sd]?|love[sd]?|enjoy(?:s|ed)?|favou?rite|fan\s+of|rated\s+(?:\w+\s+)?high(?:ly)?|"
    r"high(?:er)?\s+ratings?|prefer(?:s|red)?|appreciate[sd]?)\b"
)
_SUBJECT = re.compile(r"\b(?:you|your|youve|youre|yours|i|my|me|user|users)\b")
_OTHERS = re.compile(r"\b(?:people|others|viewers|fans|audiences|users\s+who|who\s+liked)\b")
_HYPOTHETICAL = re.compile(r"\b(?:might|may|would|could|will|should|probably|perhaps|if)\b")
_RATED = re.compile(r"\brated\s+(?:it\s+)?(?P<n>\d+(?:\.\d+)?)\b")
_BREAK_WORDS = frozenset({"but", "while", "whereas", "although", "though", "however", "except"})
_BREAK_CHARS = re.compile(r"[,;!?]|\.\s|\.$")


class Claim(BaseModel):
    clause: str
    side: Side
    titles: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    contradictions: list[str] = Field(default_factory=list)


class AnswerCheck(BaseModel):
    """What was checked in one answer, and what failed."""

    titles: list[str] = Field(default_factory=list)
    """Catalog titles the answer names, as written."""
    cited: list[str] = Field(default_factory=list)
    """Ids of the named titles the tools showed this turn."""
    ungrounded: list[str] = Field(default_factory=list)
    """Named titles no tool showed this turn."""
    claims: list[Claim] = Field(default_factory=list)
    unanswered: list[str] = Field(default_factory=list)
    """Tool results the answer does not use: it names none of their required items (an
    explanation's drivers, a list's items), so the question went unanswered."""

    @property
    def contradictions(self) -> list[str]:
        return [c for claim in self.claims for c in claim.contradictions]

    @property
    def grounded(self) -> bool:
        return not self.ungrounded

    @property
    def ok(self) -> bool:
        return self.grounded and not self.contradictions and not self.unanswered

    def problems(self) -> list[str]:
        found = [
            f"it names {t}, which no tool result of this question shows; name only items "
            "from the tool results"
            for t in self.ungrounded
        ]
        return found + [f"it says {c}" for c in self.contradictions] + self.unanswered


class UserRatings:
    """The user's ratings and sides, and their items, for the claim checks."""

    def __init__(self, history: Sequence[Interaction], items: Mapping[str, Item]) -> None:
        self.ratings = ratings_of(history)
        self.sides = sides_of(history)
        self.seen = {e.item_id for e in history}
        self.items = dict(items)
        self.mean = statistics.fmean(self.ratings.values()) if self.ratings else None


def check_answer(
    answer: str,
    catalog: Catalog,
    shown: set[str],
    user: UserRatings,
    required: Sequence[tuple[str, list[str]]] = (),
) -> AnswerCheck:
    """`required`: (tool, items) whose answer must name at least one of the items."""
    words = tokens(answer)
    mentions = catalog.mentions(answer)
    check = AnswerCheck(titles=[m.text for m in mentions])
    for m in mentions:
        if m.among(shown):
            check.cited += [i for i in m.item_ids if i in shown][:1]
        else:
            check.ungrounded.append(m.text)
    check.cited = list(dict.fromkeys(check.cited))
    check.ungrounded = list(dict.fromkeys(check.ungrounded))
    for clause, named in clauses(answer, words, mentions):
        claim = claim_of(clause, named, catalog, user)
        if claim is not None:
            check.claims.append(claim)
    already = {c for claim in check.claims for c in claim.contradictions}
    for mention, verb in governed(words, mentions):
        claim = verb_claim(words, mention, verb, catalog, user)
        claim.contradictions = [c for c in claim.contradictions if c not in already]
        if claim.contradictions:
            check.claims.append(claim)
    named_ids = {i for m in mentions for i in m.item_ids}
    for tool, items in required:
        if not named_ids & set(items):
            titles = ", ".join(catalog.name(i) for i in items[:3])
            check.unanswered.append(f"it does not use the {tool} result: name at least one of "
                                    f"{titles} and what the result says about it")  # fmt: skip
    return check


def clauses(
    text: str, words: list[Word], mentions: list[Mention]
) -> list[tuple[list[Word], list[Mention]]]:
    """The answer cut at punctuation and contrast words, never inside a title."""
    inside = {i for m in mentions for i in range(m.start, m.end - 1)}
    cuts = [0]
    for i in range(len(words) - 1):
        gap = text[words[i].end : words[i + 1].start]
        tail = words[i].original[-1] == "." and words[i].original.count(".") == 1
        punctuated = i not in inside and bool(_BREAK_CHARS.search(gap) or tail)
        contrast = words[i + 1].norm in _BREAK_WORDS and i + 1 not in inside
        if punctuated or contrast:
            cuts.append(i + 1)
    cuts.append(len(words))
    found = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        named = [m for m in mentions if start <= m.start < end]
        found.append((words[start:end], named))
    return found


def claim_of(
    clause: list[Word], named: list[Mention], catalog: Catalog, user: UserRatings
) -> Claim | None:
    """The clause's claim about the user's taste, checked; None when it makes none."""
    in_titles = {i for m in named for i in range(m.start, m.end)}
    plain = " ".join(w.norm for w in clause if w.position not in in_titles)
    if not _SUBJECT.search(plain) or _OTHERS.search(plain) or _HYPOTHETICAL.search(plain):
        return None
    side: Side | None = "disliked" if _NEGATIVE.search(plain) else None
    side = side or ("liked" if _POSITIVE.search(plain) else None)
    rated = _RATED.search(plain)
    if side is None and rated is None:
        return None
    text = " ".join(w.original for w in clause)
    claim = Claim(clause=text, side=side or "liked", titles=[m.text for m in named])
    for m in named:
        claim.contradictions += title_contradictions(m, side, rated, catalog, user)
    if side is not None:
        claim.categories = [c for c in catalog.categories() if bare_words(c) <= bare_words(plain)
                            and bare_words(c)]  # fmt: skip
        claim.contradictions += category_contradictions(claim.categories, side, user)
    return claim


_VERB_BEFORE = re.compile(
    r"\b(?:you|user|i)\s+(?:have\s+|had\s+|already\s+|really\s+)?(?P<verb>liked|loved|enjoyed|"
    r"rated|watched|seen|saw|disliked|hated)$"
)


_LIST_GLUE = frozenset({"and", "or"})
_VERBS = {"loved": "liked", "enjoyed": "liked", "hated": "disliked", "saw": "watched",
          "seen": "watched"}  # fmt: skip


def governed(words: Sequence[Word], mentions: Sequence[Mention]) -> list[tuple[Mention, str]]:
    """Titles with the taste verb that governs them: the words right before the title ("the
    user liked Dr. Strangelove"), or, for a title in a list closed by "and"/"or", the verb of
    the list's first title ("you liked Toy Story, Twelve Monkeys and Heat": all three; in "you
    loved Alien, Star Wars is a pick" Star Wars is no member: no "and" closes the list)."""
    found: list[tuple[Mention, str]] = []
    verb: str | None = None
    pending: list[Mention] = []
    previous_of: list[Mention | None] = [None, *mentions[:-1]] if mentions else []
    for previous, mention in zip(previous_of, mentions, strict=True):
        before = " ".join(w.norm for w in words[max(0, mention.start - 4) : mention.start])
        hit = _VERB_BEFORE.search(before)
        gap = [w.norm for w in words[previous.end : mention.start] if w.norm] if previous else None
        if hit:
            verb, pending = _VERBS.get(hit["verb"], hit["verb"]), []
            found.append((mention, verb))
        elif verb is not None and gap == []:  # a comma: a member if an "and" comes later
            pending.append(mention)
        elif verb is not None and gap and all(g in _LIST_GLUE for g in gap):
            found += [(m, verb) for m in [*pending, mention]]
            verb, pending = None, []
        else:
            verb, pending = None, []
    return found


def verb_claim(
    words: Sequence[Word], mention: Mention, verb: str, catalog: Catalog, user: UserRatings
) -> Claim:
    """What a governed title claims: an item outside the history presented as one the user
    had, or a liked/disliked item on the other side of the user's ratings."""
    text = " ".join(w.original for w in words[max(0, mention.start - 3) : mention.end])
    side: Side = "disliked" if verb == "disliked" else "liked"
    claim = Claim(clause=text, side=side, titles=[mention.text])
    if not user.seen & set(mention.item_ids):
        claim.contradictions.append(f"the user {verb} {catalog.name(mention.item_ids[0])}, "
                                    "which is not in their history")  # fmt: skip
    elif verb in ("liked", "disliked"):
        claim.contradictions += title_contradictions(mention, side, None, catalog, user)
    return claim


def title_contradictions(
    mention: Mention, side: Side | None, rated: re.Match[str] | None, catalog: Catalog,
    user: UserRatings,
) -> list[str]:  # fmt: skip
    own = [i for i in mention.item_ids if i in user.ratings or i in user.sides]
    if not own:
        return []
    item_id = own[0]
    rating = user.ratings.get(item_id)
    what = f"{catalog.name(item_id)}" + (f" (the user rated it {rating:g})" if rating else "")
    found = []
    actual = user.sides.get(item_id)
    if side is not None and actual is not None and actual != side:
        found.append(f"the user {side} {what}")
    if rated is not None and rating is not None and float(rated["n"]) != rating:
        found.append(f"the user rated {catalog.name(item_id)} {rated['n']} (it was {rating:g})")
    return found


def category_contradictions(categories: list[str], side: Side, user: UserRatings) -> list[str]:
    """Each category on its own: "you dislike thriller, comedy and horror" is three claims
    (their items pooled could average out to the user's mean and hide a false one)."""
    if user.mean is None:
        return []
    found = []
    for category in categories:
        matches = matching_ratings(category, user.ratings, user.items, LexicalJudge())
        if len(matches) < MIN_MATCHES or agrees(matches, user.mean, side == "liked"):
            continue
        found.append(f"the user {side} {category}, but they rate those items "
                     f"{statistics.fmean(matches):.1f} on average ({len(matches)} items; their "
                     f"mean {user.mean:.1f})")  # fmt: skip
    return found
