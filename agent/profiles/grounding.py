"""Check a draft against the history: evidence must be items the user interacted with, and a
topic should match something about its evidence. Invalid ids are removed, an interest left
without evidence is dropped, and everything removed is counted."""

from __future__ import annotations

import re
from collections.abc import Mapping

from agent.schemas import Item
from agent.schemas.profile import SELF_DESCRIPTION, Grounding, Interest, ProfileDraft

_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"and", "the", "of", "a", "an", "films", "film", "movies", "movie", "with", "in", "s"}


def words(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower()) if w not in _STOP}


def topic_supported(topic: str, evidence: list[str], items: Mapping[str, Item]) -> bool:
    """True when a word of the topic appears in a category or the title of an evidence item."""
    wanted = words(topic)
    for item_id in evidence:
        item = items.get(item_id)
        if item is None:
            continue
        if wanted & words(" ".join([item.title, *item.categories])):
            return True
    return False


def ground(
    draft: ProfileDraft, history_ids: set[str], items: Mapping[str, Item]
) -> tuple[list[Interest], list[Interest], Grounding]:
    """The interests and dislikes that survive, and the grounding record."""
    report = Grounding(score=0.0)
    kept: dict[str, list[Interest]] = {"interests": [], "dislikes": []}
    supported = 0
    for field, entries in (("interests", draft.interests), ("dislikes", draft.dislikes)):
        for entry in entries:
            distinct = list(dict.fromkeys(entry.evidence))
            valid = [i for i in distinct if i in history_ids]
            report.cited += len(entry.evidence)
            report.duplicate_evidence += len(entry.evidence) - len(distinct)
            report.invalid_evidence += len(distinct) - len(valid)
            if not valid:
                report.dropped_interests += 1
                continue
            interest = Interest(**(entry.model_dump() | {"evidence": valid}))
            kept[field].append(interest)
            if topic_supported(interest.topic, valid, items):
                supported += 1
            else:
                report.unsupported_topics += 1
    total = len(draft.interests) + len(draft.dislikes)
    report.score = round(supported / total, 3) if total else 0.0
    return kept["interests"], kept["dislikes"], report


def ground_cold_start(draft: ProfileDraft, text: str) -> tuple[list[Interest], Grounding]:
    """Cold start: evidence is the user's own text; a topic must share a word with it."""
    report = Grounding(score=0.0)
    kept = []
    text_words = words(text)
    for entry in [*draft.interests]:
        report.cited += len(entry.evidence)
        if words(entry.topic) & text_words:
            kept.append(Interest(**(entry.model_dump() | {"evidence": [SELF_DESCRIPTION]})))
        else:
            report.dropped_interests += 1
    total = len(draft.interests)
    report.score = round(len(kept) / total, 3) if total else 0.0
    return kept, report
