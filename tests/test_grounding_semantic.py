"""Semantic grounding: a topic finer than the genre list ("mafia films" for The Godfather) is
supported when it is close to its evidence in embedding space, not only when it shares a word.
The threshold was chosen on the hand-labelled pairs of fixtures/grounding/topic_support.json;
the slow test shows it on the real embedder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from agent.embeddings import SentenceTransformerEmbedder
from agent.profiles.grounding import (
    SEMANTIC_THRESHOLD,
    LexicalJudge,
    SemanticJudge,
    TopicJudge,
    ground,
)
from agent.schemas import Item
from agent.schemas.profile import Interest, ProfileDraft, Sentiment

PAIRS = Path(__file__).parent / "fixtures" / "grounding" / "topic_support.json"


def labelled() -> list[tuple[str, Item, bool]]:
    rows = json.loads(PAIRS.read_text())["pairs"]
    return [
        (topic, Item(item_id=str(n), title=title, year=year, categories=cats), label)
        for n, (topic, title, year, cats, label) in enumerate(rows)
    ]


def accuracy(judge: TopicJudge, pairs: Sequence[tuple[str, Item, bool]]) -> float:
    return float(np.mean([judge.supported(topic, [item]) == label for topic, item, label in pairs]))


class AxisEmbedder:
    """Deterministic: each known text points along its own axis, so similarity is exactly
    1 for texts mapped to the same axis and 0 otherwise."""

    model_id = "axes"
    dim = 4
    axes = {"mafia films": 0, "Action, Crime, Drama": 0, "space opera": 1, "Comedy": 2}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, self.axes.get(text, 3)] = 1.0
        return out


def draft(*topics: str) -> ProfileDraft:
    interests = [
        Interest(topic=t, weight=0.5, sentiment="positive", evidence=["1"]) for t in topics
    ]
    return ProfileDraft(
        interests=interests,
        sentiment=Sentiment(label="positive", score=0.5),
        intent="more mob stories",
        summary="Likes crime.",
    )


def test_semantic_judge_supports_a_close_topic_that_word_matching_rejects() -> None:
    items = {
        "1": Item(item_id="1", title="Godfather, The", categories=["Action", "Crime", "Drama"])
    }
    mafia = draft("mafia films", "space opera", "crime sagas")
    _, _, lexical = ground(mafia, {"1"}, items, LexicalJudge())
    _, _, semantic = ground(mafia, {"1"}, items, SemanticJudge(AxisEmbedder()))
    assert lexical.unsupported_topics == 2  # only "crime sagas" shares a word
    assert semantic.unsupported_topics == 1  # "space opera" is still unsupported
    assert semantic.score == pytest.approx(0.667, abs=0.001)


def test_without_a_judge_grounding_is_word_matching() -> None:
    items = {"1": Item(item_id="1", title="Godfather, The", categories=["Crime"])}
    _, _, report = ground(draft("mafia films"), {"1"}, items)
    assert report.unsupported_topics == 1


@pytest.mark.slow
def test_the_threshold_separates_the_labelled_pairs_on_the_real_embedder() -> None:
    pairs = labelled()
    semantic = SemanticJudge(SentenceTransformerEmbedder())
    assert accuracy(LexicalJudge(), pairs) < 0.75
    assert accuracy(semantic, pairs) >= 0.9
    for nearby in (SEMANTIC_THRESHOLD - 0.01, SEMANTIC_THRESHOLD + 0.01):  # inside a band
        assert accuracy(SemanticJudge(semantic.embedder, nearby), pairs) >= 0.9
    supported = [(t, i) for t, i, label in pairs if label]
    found = sum(semantic.supported(t, [i]) for t, i in supported)
    words_only = sum(LexicalJudge().supported(t, [i]) for t, i in supported)
    assert found >= words_only + 10


def test_warm_embeds_a_drafts_texts_in_one_call_and_the_checks_then_embed_nothing() -> None:
    calls: list[int] = []

    class Counting(AxisEmbedder):
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            calls.append(len(texts))
            return super().embed(texts)

    items = {
        "1": Item(item_id="1", title="Godfather, The", categories=["Action", "Crime", "Drama"]),
        "2": Item(item_id="2", title="Airplane!", categories=["Comedy"]),
    }
    judge = SemanticJudge(Counting())
    judge.warm(["mafia films", "space opera"], items.values())
    assert calls == [4]
    ground(draft("mafia films", "space opera"), {"1", "2"}, items, judge)
    assert calls == [4]
