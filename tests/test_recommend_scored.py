"""Scored re-rank plumbing: reading label log-probs from a reply, the floor for missing labels,
averaging over orders, ties in retrieval order, and the probe through a LangChain chat model.
The smoke model's log-probs are hashes: these tests prove plumbing, never ranking quality."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import PrivateAttr

from agent.config import Settings
from agent.prompts import load_prompt
from agent.recommend.scored import (
    aggregate_scores,
    ascore,
    candidate_effects,
    mean_scores,
    prepare_scored,
)
from agent.runtime.label_probe import (
    ProbeFormatError,
    ProbeResult,
    probe_for,
    read_label_logprobs,
    tokenize_url,
)
from agent.runtime.structured import StructuredGenerator
from agent.schemas import Interaction, Item
from agent.schemas.profile import UserProfile
from evals.smoke import SmokeChatModel
from tests.test_segments import make_profile


def top(*pairs: tuple[str, float]) -> dict[str, object]:
    entries = [{"token": t, "logprob": v, "bytes": []} for t, v in pairs]
    return {"content": [{"token": pairs[0][0], "logprob": pairs[0][1], "top_logprobs": entries}]}


def test_label_variants_add_up_and_missing_labels_get_the_lowest_returned_value() -> None:
    found = read_label_logprobs(top(("B", -0.5), (" B", -2.0), ("A", -1.5), ("the", -4.0)), "ABC")
    assert set(found.logprobs) == {"A", "B"}
    assert found.logprobs["B"] == pytest.approx(math.log(math.exp(-0.5) + math.exp(-2.0)))
    assert found.of("C") == -4.0 and found.floor == -4.0


def test_a_reply_without_logprobs_is_a_clear_error() -> None:
    with pytest.raises(ProbeFormatError, match="top_logprobs"):
        read_label_logprobs(None, "AB")


def test_tokenize_lives_beside_v1() -> None:
    assert tokenize_url("http://h:8000/v1") == "http://h:8000/tokenize"
    assert tokenize_url("http://h:8000/v1/") == "http://h:8000/tokenize"
    assert tokenize_url("http://h:8000") == "http://h:8000/tokenize"


def items(n: int) -> dict[str, Item]:
    return {str(i): Item(item_id=str(i), title=f"Film {i}", year=1990 + i) for i in range(n)}


def history() -> list[Interaction]:
    at = datetime(2020, 1, 1, tzinfo=UTC)
    return [Interaction(user_id="u", item_id="0", rating=5.0, timestamp=at)]


def profile() -> UserProfile:
    return make_profile("u", ["Space opera"], ["Sci-Fi"])


def test_scores_average_over_orders_and_ties_keep_retrieval_order() -> None:
    catalog = items(4)
    request = prepare_scored("u", profile(), history(), catalog, ["1", "2", "3"], shuffles=2)
    assert len(request.prompts) == 2 and request.orders[0] == ["1", "2", "3"]
    second = request.orders[1]
    probes = [
        ProbeResult(logprobs={"A": -1.0, "B": -3.0}, floor=-5.0),  # order 1: 1=A 2=B 3=C
        ProbeResult(logprobs={"A": -1.0}, floor=-5.0),
    ]
    outcome = aggregate_scores(request, probes)
    expected = {c: 0.0 for c in ["1", "2", "3"]}
    for item, value in zip(["1", "2", "3"], [-1.0, -3.0, -5.0], strict=True):
        expected[item] += value / 2
    for label, item in zip("ABC", second, strict=True):
        expected[item] += (-1.0 if label == "A" else -5.0) / 2
    assert outcome.scores == pytest.approx(expected)
    assert outcome.missing_labels == 1 + 2
    ranked = sorted(outcome.llm_ranks, key=outcome.llm_ranks.__getitem__)
    assert ranked == sorted(["1", "2", "3"], key=lambda i: (-expected[i], ["1", "2", "3"].index(i)))


def additive(
    orders: list[list[str]], label_bias: list[float], worth: dict[str, float]
) -> list[list[float]]:
    return [[label_bias[lab] + worth[item] for lab, item in enumerate(o)] for o in orders]


def test_label_debias_recovers_candidates_under_an_additive_label_bias() -> None:
    """Under a strong bias for the first labels the raw mean loses the true order; the fitted
    candidate effects give it back exactly."""
    catalog = items(7)
    pool = ["1", "2", "3", "4", "5", "6"]
    request = prepare_scored("u", profile(), history(), catalog, pool, shuffles=3,
                             label_debias=True)  # fmt: skip
    worth = {"1": -3.0, "2": -2.5, "3": -2.0, "4": -1.5, "5": -1.0, "6": -0.5}
    bias = [3.0, 2.0, 1.0, 0.0, 0.0, 0.0]
    observed = additive(request.orders, bias, worth)
    raw = mean_scores(request.orders, observed)
    assert sorted(pool, key=lambda i: -raw[i]) != ["6", "5", "4", "3", "2", "1"]
    effects = candidate_effects(request.orders, observed)
    assert sorted(pool, key=lambda i: -effects[i]) == ["6", "5", "4", "3", "2", "1"]
    gaps = {i: effects[i] - worth[i] for i in pool}
    assert max(gaps.values()) - min(gaps.values()) == pytest.approx(0.0, abs=1e-6)
    probes = [ProbeResult(logprobs=dict(zip("ABCDEF", row, strict=True)), floor=-9.0)
              for row in observed]  # fmt: skip
    outcome = aggregate_scores(request, probes)
    assert min(outcome.llm_ranks, key=outcome.llm_ranks.__getitem__) == "6"


def test_label_debias_with_one_order_is_the_raw_log_probability() -> None:
    observed = [[-1.0, -4.0, -2.5]]
    assert candidate_effects([["x", "y", "z"]], observed) == pytest.approx(
        {"x": -1.0, "y": -4.0, "z": -2.5}
    )


def test_the_prompt_labels_titles_and_shows_no_ids() -> None:
    catalog = items(3)
    request = prepare_scored("u", profile(), history(), catalog, ["1", "2"], shuffles=1)
    text = "\n".join(m.content for m in request.prompts[0].messages)
    assert "A. Film 1 (1991)" in text and "B. Film 2 (1992)" in text
    assert "[1]" not in text and "[0]" not in text and "(A to B)" in text
    assert request.prompts[0].ref == load_prompt("rerank_score").ref


def test_too_many_candidates_for_the_labels_is_refused() -> None:
    catalog = items(30)
    with pytest.raises(ValueError, match="at most 26"):
        prepare_scored("u", profile(), history(), catalog, [str(i) for i in range(1, 28)])


class KwargsSmoke(SmokeChatModel):
    """The smoke model, keeping the request options of every call."""

    _sent: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def _reply(self, messages: list[Any], kwargs: dict[str, Any]) -> Any:
        self._sent.append(dict(kwargs))
        return super()._reply(messages, kwargs)


def test_the_probe_asks_for_one_token_with_logprobs_through_langchain() -> None:
    model = KwargsSmoke()
    generator = StructuredGenerator(Settings(), model, "smoke", base_url="(test)")
    request = prepare_scored("u", profile(), history(), items(6), ["1", "2", "3", "4", "5"])
    outcome = asyncio.run(ascore(probe_for(generator), request))
    assert outcome.mode == "scored" and outcome.runs == 3 and outcome.tokens_out == 3
    assert set(outcome.scores) == {"1", "2", "3", "4", "5"}
    assert len(model._sent) == 3
    for sent in model._sent:
        assert sent["logprobs"] is True and sent["top_logprobs"] == 20
        assert sent["max_tokens"] == 1 and "response_format" not in sent
