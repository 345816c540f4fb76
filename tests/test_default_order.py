"""The order `recommend` gives by default (issue 34), with fakes for plumbing only:

- with a fitted ranker the order is the ranker's, whatever the LLM ranks say;
- without a ranker and without a tuned weight the order is fusion's and no scoring request is
  sent (only the one for the shown items' reasons);
- a weight stored by `eval tune-blend` is used, for the model and mode it was tuned for only."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import PrivateAttr

from agent.config import Settings
from agent.rank.fit import fit_production
from agent.rank.serve import ServingRanker
from agent.recommend.llm_rerank import llm_weight
from agent.recommend.rerank import RerankOutcome
from agent.store.fitted import (
    TunedBlend,
    load_tuned_blend,
    save_tuned_blend,
    tuned_blend_path,
)
from tests.fakes import SchemaFiller
from tests.recommend_data import World, build_world, fake_generator, history_ids
from tests.test_rank_store import TINY


class Recording(SchemaFiller):
    """The schema filler, keeping the kwargs of every request: a scoring request asks for
    log-probs, a reasons request for a JSON schema."""

    _sent: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        self._sent.append(dict(kwargs))
        return super()._reply(messages, kwargs)

    @property
    def scoring(self) -> int:
        return sum(1 for k in self._sent if k.get("logprobs"))

    @property
    def other(self) -> int:
        return len(self._sent) - self.scoring


def tuned_for(model: str, weight: float, mode: str = "scored") -> TunedBlend:
    return TunedBlend(weight=weight, model=model, mode=mode, metric="ndcg@10", users=100,
                      protocol="llmrank", tuned_at="2024-01-01T00:00:00+00:00")  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path, rerank_top_n=5)


def test_with_a_ranker_the_order_is_the_rankers_whatever_the_llm_says(world: World) -> None:
    fit_production(world.record, world.settings.data_dir, TINY)
    # even a forced weight and a stored one do not blend the LLM on top of the ranker
    save_tuned_blend(world.settings.data_dir, tuned_for("fake-model", 1.0))
    settings = world.settings.model_copy(update={"rerank_blend": 1.0})
    model = Recording(enum_pick=0)
    rec = World(settings, world.record, world.index).recommender(fake_generator(settings, model))
    retrieval = rec.retrieve("scifi")
    fused = [(f.item_id, f.score) for f in retrieval.fused]
    ids = [i for i, _ in fused]
    for ranks in ({i: n for n, i in enumerate(reversed(ids), 1)}, {ids[-1]: 1}, {}):
        assert rec.final_order(retrieval, RerankOutcome(llm_ranks=ranks)) == fused
    assert rec.ordering().describe() == "ranker" and not rec.ordering().uses_llm

    result = rec.recommend("scifi", k=3)
    assert model.scoring == 0 and model.other == 1  # the reasons request only
    assert result.ordering == "ranker" and not result.reranked
    assert result.rerank is not None and result.rerank.mode == "reasons"
    assert result.rerank.blend == 0 and result.rerank.blend_from == "ranker"
    # the filler's words name no driver: its reasons are left out for the retrieval ones
    assert result.rerank.reasons_unusable == len(result.items)
    assert all(r.reason_by == "retrieval" and r.llm_rank is None for r in result.items)
    ranker = ServingRanker.load(world.settings.data_dir)
    assert ranker is not None
    history = world.record.history("scifi")
    expected = ranker.rank("scifi", history, exclude={e.item_id for e in history})
    got = [r.item_id for r in result.items]
    assert got == [i for i in expected.items if i in set(got)][: len(got)]


def test_without_a_ranker_or_a_tuned_weight_fusion_orders_and_nothing_is_scored(
    world: World,
) -> None:
    assert world.settings.rerank_blend is None
    model = Recording(enum_pick=0)
    rec = world.recommender(fake_generator(world.settings, model))
    result = rec.recommend("scifi", k=3)
    fused = [f.item_id for f in rec.retrieve("scifi").fused]
    assert [r.item_id for r in result.items] == fused[:3]
    assert model.scoring == 0 and model.other == 1
    assert result.ordering == "fusion" and not result.reranked
    assert result.rerank is not None and result.rerank.mode == "reasons"
    assert result.rerank.blend == 0 and result.rerank.blend_from == "none"
    assert result.rerank.reasons_unusable == len(result.items)  # the filler names no driver
    assert "rerank_s" not in result.timings and "reasons_s" in result.timings
    seen = history_ids(world.record, "scifi")
    assert not seen & set(fused[:3])


def test_no_rerank_asks_the_llm_nothing(world: World) -> None:
    model = Recording(enum_pick=0)
    rec = world.recommender(fake_generator(world.settings, model))
    result = rec.recommend("scifi", k=3, rerank_with_llm=False)
    assert model._sent == [] and result.rerank is None and result.ordering == "fusion"
    assert all(r.reason_by == "retrieval" for r in result.items)


def test_a_tuned_weight_is_used_for_its_model_and_mode_only(world: World) -> None:
    data_dir = world.settings.data_dir
    save_tuned_blend(data_dir, tuned_for("other-model", 1.0))
    save_tuned_blend(data_dir, tuned_for("fake-model", 1.0, mode="generate"))
    model = Recording(enum_pick=0)
    result = world.recommender(fake_generator(world.settings, model)).recommend("scifi", k=3)
    assert model.scoring == 0 and result.ordering == "fusion"  # neither is for this model+mode

    save_tuned_blend(data_dir, tuned_for("fake-model", 1.0))
    model = Recording(enum_pick=0)
    result = world.recommender(fake_generator(world.settings, model)).recommend("scifi", k=3)
    shuffles = world.settings.rerank_score_shuffles
    assert model.scoring == shuffles and model.other == 1
    assert result.reranked and result.ordering == "fusion+LLM blend w=1"
    assert result.rerank is not None and result.rerank.mode == "scored"
    assert result.rerank.blend == 1.0 and result.rerank.blend_from == "tuned"
    ranks = [r.llm_rank for r in result.items]
    assert ranks == sorted(ranks) and ranks[0] == 1  # at weight 1 the LLM's order

    settings = world.settings.model_copy(update={"rerank_blend": 0.0})  # the override wins
    model = Recording(enum_pick=0)
    rec = World(settings, world.record, world.index).recommender(fake_generator(settings, model))
    assert rec.recommend("scifi", k=3).ordering == "fusion" and model.scoring == 0


def test_tuned_weights_are_kept_per_model_and_mode_and_a_damaged_file_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    save_tuned_blend(tmp_path, tuned_for("m", 0.3))
    save_tuned_blend(tmp_path, tuned_for("m", 0.2, mode="generate"))
    save_tuned_blend(tmp_path, tuned_for("m", 0.4))  # replaces the first
    saved = json.loads(tuned_blend_path(tmp_path).read_text())
    assert len(saved["weights"]) == 2
    found = load_tuned_blend(tmp_path, "m", "scored")
    assert found is not None and found.weight == 0.4
    assert load_tuned_blend(tmp_path, "n", "scored") is None
    settings = Settings(data_dir=tmp_path)
    assert llm_weight(settings, "m", "generate") == (0.2, "tuned")
    assert llm_weight(settings, "n", "scored") == (0.0, "none")
    assert llm_weight(settings.model_copy(update={"rerank_blend": 0.7}), "m", "scored") == (
        0.7,
        "setting",
    )
    tuned_blend_path(tmp_path).write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="agent"):
        assert load_tuned_blend(tmp_path, "m", "scored") is None
    assert any("tuned blend" in r.getMessage() for r in caplog.records)
