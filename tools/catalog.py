"""The catalog as the chat sees it: titles to ids, the categories and years that exist.

Built once per session from the record (`Catalog.of`), so every argument schema of that
session is made from the catalog it will run against (`tools.registry.argument_models`):
categories are an enum, years lie within the catalog's range, and an item is named by its
title, which `resolve` turns into an id.

Titles are compared on a key that survives how people and small models write them: case,
accents, punctuation ("E.T." = "ET"), a leading or trailing article ("The Usual Suspects" =
"Usual Suspects, The"), a year in parentheses, an alternative title in parentheses ("Seven" =
"Se7en"). `mentions` finds the catalog titles a free text names, on the same keys, so the
answer check and the resolver agree on what a title is."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from agent.schemas import Item
from tools.errors import ToolInputError

ARTICLES = frozenset({"the", "a", "an", "les", "la", "le", "il", "el", "der", "die", "das", "l"})
_YEAR = re.compile(r"\s*[\(\[]?\b(1[89]\d\d|20\d\d)\b[\)\]]?\s*$")
_PAREN = re.compile(r"\(([^()]*)\)")
_SUFFIX_ARTICLE = re.compile(r",\s*(the|a|an|les|la|le|il|el|der|die|das|l')\s*$", re.I)
_TOKEN = re.compile(r"[^\s\-/:;,!?\"()\[\]]+")
_DROP = re.compile(r"[^a-z0-9]")
CLOSEST = 5
"""Closest titles listed in an error."""
FUZZY_ACCEPT = 0.9
"""A misspelt title is taken when it is this close to one title only (difflib ratio)."""
_COMMON = frozenset(
    {"it", "this", "that", "you", "your", "i", "we", "they", "these", "because", "but", "and",
     "also", "however", "here", "there", "some", "based", "yes", "no", "since", "so", "both"}
)  # fmt: skip
"""Capitalised words that start sentences: never a one-word title mention."""


class Word(NamedTuple):
    original: str
    norm: str
    """Lower case ASCII letters and digits only."""
    start: int
    end: int
    """Character positions in the text."""
    position: int
    """Position among the text's words."""


def tokens(text: str) -> list[Word]:
    """The text's words, normalised; words that normalise to nothing are left out."""
    found: list[Word] = []
    for match in _TOKEN.finditer(text):
        original = match.group()
        folded = unicodedata.normalize("NFKD", original.replace("&", "and").casefold())
        norm = _DROP.sub("", folded.encode("ascii", "ignore").decode())
        if norm:
            found.append(Word(original, norm, match.start(), match.end(), len(found)))
    return found


def key_words(title: str) -> tuple[str, ...]:
    """A title's comparison key: normalised words, a leading article dropped."""
    words = [w.norm for w in tokens(_SUFFIX_ARTICLE.sub("", title.strip()))]
    if len(words) > 1 and words[0] in ARTICLES:
        words = words[1:]
    return tuple(words)


def split_year(text: str) -> tuple[str, int | None]:
    """`Title (1982)` -> (`Title`, 1982); no year -> (text, None)."""
    match = _YEAR.search(text)
    if match is None or match.start() == 0:
        return text, None
    return text[: match.start()], int(match.group(1))


def title_keys(title: str) -> list[tuple[str, ...]]:
    """Every key a title answers to: the whole, without parentheses, and each alternative."""
    base, _ = split_year(title)
    keys = [key_words(base), key_words(_PAREN.sub(" ", base))]
    keys += [key_words(alt) for alt in _PAREN.findall(base)]
    return [k for k in dict.fromkeys(keys) if k]


def display(item: Item) -> str:
    """`Title (year)`: how every tool names an item (never by id)."""
    base, year = split_year(item.title)
    year = year or item.year
    return f"{base.strip()} ({year})" if year else base.strip()


@dataclass
class Catalog:
    items: dict[str, Item]
    by_key: dict[tuple[str, ...], list[str]] = field(default_factory=dict)
    by_first: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    category_words: frozenset[str] = frozenset()
    """One-word category names, normalised ("war", "drama"): as a one-word title ("War, The")
    they need a year to be read as the title."""

    def __post_init__(self) -> None:
        self.category_words = frozenset(
            words[0].norm for c in self.categories() if len(words := tokens(c)) == 1
        )
        for item_id, item in self.items.items():
            for key in title_keys(item.title):
                self.by_key.setdefault(key, []).append(item_id)
        for key in self.by_key:
            self.by_first.setdefault(key[0], []).append(key)
        for keys in self.by_first.values():
            keys.sort(key=len, reverse=True)

    @classmethod
    def of(cls, items: Iterable[Item]) -> Catalog:
        return cls({item.item_id: item for item in items})

    # -- what exists --------------------------------------------------------------------

    def categories(self) -> list[str]:
        return sorted({c for item in self.items.values() for c in item.categories})

    def year_range(self) -> tuple[int, int] | None:
        years = [self.year(i) for i in self.items]
        known = [y for y in years if y is not None]
        return (min(known), max(known)) if known else None

    def year(self, item_id: str) -> int | None:
        item = self.items[item_id]
        return item.year or split_year(item.title)[1]

    def name(self, item_id: str) -> str:
        item = self.items.get(item_id)
        return display(item) if item is not None else "(unknown item)"

    def same_title(self, a: str, b: str) -> bool:
        """Two ids for one film (ML-100K lists some films twice)."""
        first, second = self.items.get(a), self.items.get(b)
        if first is None or second is None:
            return a == b
        same_key = bool(set(title_keys(first.title)) & set(title_keys(second.title)))
        return same_key and self.year(a) == self.year(b)

    # -- title to id ------------------------------------------------------------------------

    def resolve(self, text: str, prefer: Sequence[str] = ()) -> str:
        """The item a title names; `ToolInputError` with the closest titles when none or
        several do. `prefer`: ids to pick among copies of one film (e.g. ones already shown)."""
        base, year = split_year(text.strip().strip("[]\"'").strip())
        key = key_words(base)
        if not key:
            raise ToolInputError("item is empty; pass the title of an item")
        found = self._with_year(self.by_key.get(key, []), year) or self._partial(key, year)
        films = self._films(found)
        if len(films) == 1:
            return self._pick(films[0], prefer)
        if len(films) > 1:
            listed = "; ".join(self.name(f[0]) for f in films[:CLOSEST])
            raise ToolInputError(f"{text!r} matches several items: {listed}; add the year")
        return self._fuzzy(key, year, text)

    def _with_year(self, ids: Iterable[str], year: int | None) -> list[str]:
        return [i for i in ids if year is None or self.year(i) == year]

    def _partial(self, key: tuple[str, ...], year: int | None) -> list[str]:
        """Titles that start with the key's words, else titles that contain them."""
        starts, inside = [], []
        n = len(key)
        for title_key, ids in self.by_key.items():
            if title_key[:n] == key:
                starts += ids
            elif any(title_key[i : i + n] == key for i in range(1, len(title_key) - n + 1)):
                inside += ids
        return self._with_year(starts, year) or self._with_year(inside, year)

    def _films(self, ids: Sequence[str]) -> list[list[str]]:
        """Ids grouped into films (copies of one film together), first seen first."""
        films: list[list[str]] = []
        for item_id in dict.fromkeys(ids):
            home = next((f for f in films if self.same_title(f[0], item_id)), None)
            if home is None:
                films.append([item_id])
            else:
                home.append(item_id)
        return films

    def _pick(self, copies: list[str], prefer: Sequence[str]) -> str:
        preferred = [i for i in copies if i in set(prefer)]
        return (preferred or sorted(copies, key=lambda i: (len(i), i)))[0]

    def _fuzzy(self, key: tuple[str, ...], year: int | None, text: str) -> str:
        wanted = " ".join(key)
        names = {" ".join(k): k for k in self.by_key}
        close = difflib.get_close_matches(wanted, list(names), n=CLOSEST, cutoff=0.6)
        ids = [i for c in close for i in self._with_year(self.by_key[names[c]], year)]
        films = self._films(ids)
        best = close[0] if close else ""
        if len(films) == 1 and difflib.SequenceMatcher(None, wanted, best).ratio() >= FUZZY_ACCEPT:
            return self._pick(films[0], ())
        listed = "; ".join(self.name(f[0]) for f in films) or "none"
        raise ToolInputError(f"no item titled {text!r}; closest titles: {listed}")

    # -- titles in free text ----------------------------------------------------------------

    def mentions(self, text: str) -> list[Mention]:
        """The catalog titles `text` names, longest match first at each place, left to right.
        A title must start with a capital letter or a digit as written (a title is written
        as one); a one-word title must not be a common sentence opener."""
        words = tokens(text)
        found: list[Mention] = []
        at = 0
        while at < len(words):
            hit = self._match_at(words, at)
            if hit is None:
                at += 1
                continue
            key, end = hit
            shown = text[words[at].start : words[end - 1].end]
            if shown.endswith(".") and words[end - 1].original.count(".") == 1:
                shown = shown[:-1]  # the sentence's full stop, not part of the title
            found.append(Mention(text=shown, item_ids=list(self.by_key[key]), start=at, end=end))
            at = end
        return found

    def _match_at(self, words: list[Word], at: int) -> tuple[tuple[str, ...], int] | None:
        original, first = words[at].original, words[at].norm
        if not (original[0].isupper() or original[0].isdigit()):
            return None
        normalised = [w.norm for w in words]
        starts = [at + 1, at] if first in ARTICLES else [at]  # "The Usual Suspects"
        for start in starts:
            for key in self.by_first.get(normalised[start] if start < len(words) else "", []):
                end = start + len(key)
                if tuple(normalised[start:end]) != key:
                    continue
                if len(key) == 1 and start == at and (first in _COMMON or len(first) < 3):
                    continue
                if len(key) == 1 and key[0] in self.category_words and not _year_at(words, end):
                    continue  # "War" the category, not "War, The (1994)"
                return key, end
        return None


def _year_at(words: list[Word], at: int) -> bool:
    """A year follows, after the title's trailing article if any ("War, The (1994)")."""
    if at < len(words) and words[at].norm in ARTICLES:
        at += 1
    return at < len(words) and words[at].norm.isdigit() and len(words[at].norm) == 4


@dataclass
class Mention:
    """A catalog title named in a text: the words as written and every id with that title."""

    text: str
    item_ids: list[str]
    start: int
    end: int
    """Word positions in `tokens(text)`: [start, end)."""

    def among(self, shown: Mapping[str, object] | set[str]) -> bool:
        return any(i in shown for i in self.item_ids)
