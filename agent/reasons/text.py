"""Words of a reason as the checks read them: lowercased tokens, titles without their
article, phrase search, titles blanked out, and the English forms of a category name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[a-z0-9']+")
NOT_CATEGORIES = frozenset({"unknown", "other", "none", "misc"})
"""Catalog placeholders (ML-100K's "unknown"), never a claim about an item."""
DERIVED = {
    "animation": ["animated"],
    "romance": ["romantic"],
    "comedy": ["comedic"],
    "sci fi": ["science fiction", "scifi"],
    "film noir": ["noir"],
    "children's": ["children", "kids"],
}
"""English forms of a category name other than its plural (used only if the catalog has it)."""


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def title_words(title: str) -> list[str]:
    """A title's words without its article, also when given last ("Usual Suspects, The")."""
    words = tokens(title)
    if len(words) > 1 and words[-1] in {"the", "a", "an"} and "," in title:
        words = words[:-1]
    if len(words) > 1 and words[0] in {"the", "a", "an"}:
        words = words[1:]
    return words


def find(
    words: Sequence[str], phrase: Sequence[str], start: int = 0, end: int | None = None
) -> int:
    """Where `phrase` starts in `words[start:end]`, or -1."""
    stop = len(words) if end is None else min(end, len(words))
    n = len(phrase)
    for i in range(start, stop - n + 1):
        if n and list(words[i : i + n]) == list(phrase):
            return i
    return -1


def without_titles(words: list[str], titles: Iterable[str]) -> list[str]:
    """`words` with every occurrence of the titles blanked ("Star Wars" is not a War claim)."""
    out = list(words)
    for title in titles:
        phrase = title_words(title)
        while phrase and (at := find(out, phrase)) >= 0:
            out[at : at + len(phrase)] = [""] * len(phrase)
    return out


def category_forms(category: str) -> list[list[str]]:
    """The word sequences that name a category: its name, plural and common derived forms."""
    base = tokens(category)
    if not base:
        return []
    last = base[-1]
    plurals = [last[:-1] + "ies"] if last.endswith("y") else [last + "s"]
    forms = [base] + [[*base[:-1], p] for p in plurals if not last.endswith("'s")]
    forms += [tokens(d) for d in DERIVED.get(" ".join(base), [])]
    return forms
