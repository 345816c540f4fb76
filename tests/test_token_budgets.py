"""Each `max_tokens` budget must hold the longest reply its schema allows, measured with the
default model's tokenizer. A budget below that cuts valid replies off, and every re-ask is cut
off again (the 200-user profiling run lost 6 users this way at the old 360-token budget).

The fillers are texts the default model really writes: prose, the repetition loop it falls
into, and digit runs (SmolLM2 spends one token per digit)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from transformers import PreTrainedTokenizerBase

from agent.config import Settings
from agent.recommend.explain import MAX_CITED as EXPLAIN_CITED
from agent.recommend.rerank import MAX_CITED as RERANK_CITED
from agent.schemas.profile import MAX_DISLIKES, MAX_EVIDENCE, MAX_INTERESTS

FILLERS = {
    "prose": "The user enjoys dramas and thrillers from the nineties with strong plots. ",
    "loop": "is a 1979 film that ",
    "digits": "1995 1996 1997 1998 ",
}
ITEM_IDS = ["1682", "1681", "1680", "1679"]


def fill(filler: str, chars: int) -> str:
    return (filler * (chars // len(filler) + 1))[:chars]


def tokens(tokenizer: PreTrainedTokenizerBase, reply: dict[str, Any]) -> int:
    """Tokens of the reply as the local server writes it: no free whitespace, but xgrammar's
    separators ", " and ": " (it rejects the compact form)."""
    return len(tokenizer(json.dumps(reply))["input_ids"])


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS.keys())
def test_profile_budget_holds_the_longest_draft(
    packaged_tokenizer: PreTrainedTokenizerBase, filler: str
) -> None:
    interest = {
        "topic": fill(filler, 40),
        "weight": 0.85,
        "sentiment": "positive",
        "evidence": ITEM_IDS[:MAX_EVIDENCE],
    }
    draft = {
        "interests": [interest] * MAX_INTERESTS,
        "dislikes": [interest] * MAX_DISLIKES,
        "sentiment": {"label": "positive", "score": 0.75},
        "intent": fill(filler, 120),
        "summary": fill(filler, 240),
    }
    assert tokens(packaged_tokenizer, draft) <= Settings().profile_max_tokens


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS.keys())
def test_rerank_budget_holds_the_longest_pick(
    packaged_tokenizer: PreTrainedTokenizerBase, filler: str
) -> None:
    pick = {"item_id": "1682", "reason": fill(filler, 100), "cited": ITEM_IDS[:RERANK_CITED]}
    assert tokens(packaged_tokenizer, pick) <= Settings().rerank_tokens_per_pick


@pytest.mark.parametrize("filler", FILLERS.values(), ids=FILLERS.keys())
def test_explain_budget_holds_the_longest_explanation(
    packaged_tokenizer: PreTrainedTokenizerBase, filler: str
) -> None:
    reply = {"explanation": fill(filler, 240), "cited": ITEM_IDS[:EXPLAIN_CITED]}
    assert tokens(packaged_tokenizer, reply) <= Settings().explain_max_tokens
