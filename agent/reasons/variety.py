"""Variety of a run's reasons: one template in every reason is what issue 29 found ("X is an
animation that rewards a second viewing", the profile prompt's example, in 4 of 5 reasons).

- distinct-1 / distinct-2 (Li et al., NAACL'16) over all reasons;
- the template rate: the share of reasons opening with the run's most common 5 words;
- the example-copy rate: the share sharing any 4-word sequence with the prompt's fixed text
  (`agent.profiles.copying`, the check profiles already use)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from pydantic import BaseModel

from agent.profiles.copying import copies
from agent.reasons.text import tokens

TEMPLATE_WORDS = 5


class Variety(BaseModel):
    reasons: int
    distinct_1: float
    distinct_2: float
    template: str
    """The run's most common opening `TEMPLATE_WORDS` words."""
    template_rate: float
    opening_3_rate: float
    """The same with 3 words: a template whose 4th word varies ("people who liked <title>")
    passes the 5-word rate."""
    copy_rate: float | None = None
    """Share of reasons with a 4-word sequence of the prompt's fixed text (None: no prompt)."""


def distinct(texts: Iterable[str], n: int) -> float:
    """Distinct-n (Li et al., NAACL'16): unique n-grams / all n-grams, over every text."""
    grams = [tuple(w[i : i + n]) for w in map(tokens, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def template(texts: Sequence[str], n: int = TEMPLATE_WORDS) -> tuple[str, float]:
    """The most common opening n words and the share of texts that open with them."""
    openings = Counter(tuple(w[:n]) for w in map(tokens, texts) if len(w) >= n)
    if not openings:
        return "", 0.0
    opening, count = openings.most_common(1)[0]
    return " ".join(opening), count / len(texts)


def variety(
    texts: Sequence[str], prompt_grams: frozenset[tuple[str, ...]] | None = None
) -> Variety:
    opening, rate = template(texts)
    copy_rate = None
    if prompt_grams is not None and texts:
        copy_rate = sum(copies(t, prompt_grams) for t in texts) / len(texts)
    return Variety(
        reasons=len(texts),
        distinct_1=distinct(texts, 1),
        distinct_2=distinct(texts, 2),
        template=opening,
        template_rate=rate,
        opening_3_rate=template(texts, 3)[1],
        copy_rate=copy_rate,
    )
