"""Text a model copied from its prompt rather than wrote about the user.

Small models copy the fixed part of a prompt (instructions and example) into their answer:
under profile v4, 4 of 8 intents ended "that rewards a second viewing", the example's words.
A profile text copies its prompt when it shares any `N`-word sequence with the prompt's fixed
messages (every message but the last, which is the user's own turn)."""

from __future__ import annotations

import re
from functools import cache

from agent.prompts import load_prompt

N = 4
_WORD = re.compile(r"[a-z0-9']+")


def ngrams(text: str, n: int = N) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@cache
def prompt_ngrams(prompt_id: str, version: int) -> frozenset[tuple[str, ...]]:
    """The `N`-grams of a prompt's fixed text: its instructions and examples."""
    template = load_prompt(prompt_id, version)
    return frozenset().union(*(ngrams(m.content) for m in template.messages[:-1]))


def copies(text: str, grams: frozenset[tuple[str, ...]]) -> bool:
    return not ngrams(text).isdisjoint(grams)
