"""Check a draft against the history: evidence must be items the user interacted with, and a
topic should match something about its evidence. Invalid ids are removed, an interest left
without evidence is dropped, and everything removed is counted.

Whether a topic is supported is judged lexically (a shared word with a category or the title)
or, given an embedder, semantically as well: a theme such as "mafia films" shares no word with
its evidence's categories "Crime, Drama" but is close to them in embedding space."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import numpy as np

from agent.embeddings import Embedder, Vectors
from agent.profiles.sentiment import Side
from agent.schemas import Item
from agent.schemas.profile import SELF_DESCRIPTION, Grounding, Interest, ProfileDraft

_WORD = re.compile(r"[a-z0-9]+")
_STOP = {"and", "the", "of", "a", "an", "films", "film", "movies", "movie", "with", "in", "s"}


def words(text: str) -> set[str]:
    return {w.rstrip("s") for w in _WORD.findall(text.lower()) if w not in _STOP}


SEMANTIC_THRESHOLD = 0.47
"""Cosine similarity (all-MiniLM-L6-v2) between a topic and an evidence item's categories from
which the topic counts as supported. Chosen on the 56 hand-labelled pairs of
tests/fixtures/grounding/topic_support.json: word matching alone classifies 71% of them right
(it finds 12 of the 28 supported topics); word matching or similarity >= t is right for 93% for
every t in [0.46, 0.49], and 0.47 sits inside that band. It still misses "space opera" for Star
Wars (0.40): the small embedder does not know films, only words about them."""


class TopicJudge(Protocol):
    def supported(self, topic: str, evidence: Sequence[Item]) -> bool:
        """Does something about the evidence items show the topic?"""
        ...


def lexically_supported(topic: str, evidence: Sequence[Item]) -> bool:
    """True when a word of the topic appears in a category or the title of an evidence item."""
    wanted = words(topic)
    return any(wanted & words(" ".join([item.title, *item.categories])) for item in evidence)


class LexicalJudge:
    """Word matching only: for runs without an embedder (plumbing tests, `--dry-run`)."""

    def supported(self, topic: str, evidence: Sequence[Item]) -> bool:
        return lexically_supported(topic, evidence)


class SemanticJudge:
    """Word matching, or embedding similarity of the topic and an evidence item's categories
    (its title when it has none) of at least `threshold`. Embeddings are cached per text, so
    a batch pays once for each distinct category list."""

    def __init__(self, embedder: Embedder, threshold: float = SEMANTIC_THRESHOLD) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self._cache: dict[str, np.ndarray] = {}

    def supported(self, topic: str, evidence: Sequence[Item]) -> bool:
        if lexically_supported(topic, evidence):
            return True
        texts = [_evidence_text(item) for item in evidence]
        if not texts:
            return False
        vectors = self._embed([topic, *texts])
        return bool((vectors[1:] @ vectors[0]).max() >= self.threshold)

    def warm(self, topics: Sequence[str], items: Iterable[Item]) -> None:
        """Embed every text a draft's checks will ask about in one batch: the grounding and
        claim checks ask topic by item, and one encoder call per new text cost about 4 s of
        CPU per profile on the 2-core machine (ML-100K histories), blocking the batch's event
        loop while vLLM waited for requests."""
        texts = [*topics, *(_evidence_text(item) for item in items)]
        if texts:
            self._embed(texts)

    def text_similarity(self, topic: str, text: str) -> float:
        vectors = self._embed([topic, text])
        return float(vectors[1] @ vectors[0])

    def _embed(self, texts: list[str]) -> Vectors:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, vector in zip(missing, self.embedder.embed(missing), strict=True):
                self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts])


def _evidence_text(item: Item) -> str:
    return ", ".join(item.categories) if item.categories else item.title


def topic_supported(
    topic: str, evidence: list[str], items: Mapping[str, Item], judge: TopicJudge | None = None
) -> bool:
    found = [items[i] for i in evidence if i in items]
    return (judge or LexicalJudge()).supported(topic, found)


def ground(
    draft: ProfileDraft,
    history_ids: set[str],
    items: Mapping[str, Item],
    judge: TopicJudge | None = None,
    sides: Mapping[str, Side] | None = None,
) -> tuple[list[Interest], list[Interest], Grounding]:
    """The interests and dislikes that survive, and the grounding record. Given `sides`
    (item id -> liked/disliked), an interest keeps only liked evidence and a dislike only
    disliked evidence: the rest is removed and counted as `wrong_side_evidence`. The user's
    own entries (`source="user"`) are kept as they are and neither checked nor counted."""
    report = Grounding(score=0.0)
    kept: dict[str, list[Interest]] = {"interests": [], "dislikes": []}
    supported = 0
    for field, entries in (("interests", draft.interests), ("dislikes", draft.dislikes)):
        wanted: Side = "liked" if field == "interests" else "disliked"
        for entry in entries:
            if entry.source == "user":  # the user's own word (`profiles.edits`): unchecked
                kept[field].append(entry)
                continue
            distinct = list(dict.fromkeys(entry.evidence))
            valid = [i for i in distinct if i in history_ids]
            report.cited += len(entry.evidence)
            report.duplicate_evidence += len(entry.evidence) - len(distinct)
            report.invalid_evidence += len(distinct) - len(valid)
            if sides:
                sided = [i for i in valid if sides.get(i) == wanted]
                report.wrong_side_evidence += len(valid) - len(sided)
                valid = sided
            if not valid:
                report.dropped_interests += 1
                continue
            interest = Interest(**(entry.model_dump() | {"evidence": valid}))
            kept[field].append(interest)
            if topic_supported(interest.topic, valid, items, judge):
                supported += 1
            else:
                report.unsupported_topics += 1
    total = sum(e.source == "model" for e in (*draft.interests, *draft.dislikes))
    report.score = round(supported / total, 3) if total else 0.0
    return kept["interests"], kept["dislikes"], report


def ground_cold_start(
    draft: ProfileDraft, text: str, judge: SemanticJudge | None = None
) -> tuple[list[Interest], Grounding]:
    """Cold start: evidence is the user's own text; a topic must share a word with it or,
    given a semantic judge, be as close to it as a supported topic is to its evidence."""
    report = Grounding(score=0.0)
    kept = []
    text_words = words(text)
    for entry in [*draft.interests]:
        report.cited += len(entry.evidence)
        close = judge is not None and judge.text_similarity(entry.topic, text) >= judge.threshold
        if words(entry.topic) & text_words or close:
            kept.append(Interest(**(entry.model_dump() | {"evidence": [SELF_DESCRIPTION]})))
        else:
            report.dropped_interests += 1
    total = len(draft.interests)
    report.score = round(len(kept) / total, 3) if total else 0.0
    return kept, report
