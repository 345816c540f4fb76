"""The production ranker: `rank fit` trains and saves it with a manifest, `recommend` orders by
it when present (and warns and uses fusion when not), `explain` shows the features that moved
an item, and the `rank` command module loads no heavy library until a command runs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.rank.fit import FitOptions, fit_production
from agent.rank.model import RankerParams
from agent.rank.serve import ServingRanker
from agent.rank.store import folder, read_manifest
from agent.recommend.explain import Explainer
from agent.recommend.sequential import SasRecParams
from tests.recommend_data import World, build_world, history_ids

TINY_EPOCHS = 2
TINY = FitOptions(
    sequential=SasRecParams(epochs=TINY_EPOCHS, dim=16, max_len=8, batch_size=8),
    ranker=RankerParams(rounds=10, min_data_in_leaf=2, early_stopping=5),
    depth=10,
    min_history=1,
    metrics_share=0.2,
)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


def test_fit_saves_a_manifest_that_loads_back(world: World) -> None:
    report = fit_production(world.record, world.settings.data_dir, TINY)
    manifest = read_manifest(world.settings.data_dir)
    assert manifest is not None and manifest == report.manifest
    assert set(manifest.files) == {"ranker", "sources", "sequential"}
    on_disk = {p.name for p in folder(world.settings.data_dir).iterdir()}
    assert on_disk == {*manifest.files.values(), "manifest.json"}
    assert manifest.metrics["users"] >= 1 and "ranker_ndcg@10" in manifest.metrics
    assert manifest.features[0] == "collaborative_score" and manifest.timings["total_s"] > 0
    again = fit_production(world.record, world.settings.data_dir, TINY)
    on_disk = {p.name for p in folder(world.settings.data_dir).iterdir()}
    assert on_disk == {*again.manifest.files.values(), "manifest.json"}  # old files removed


def test_the_serving_fit_reuses_the_validated_epoch_count(world: World) -> None:
    """The serving sequential model trains on every event for the epochs the fit before the
    latest events chose, and holds nothing out (no second validation)."""
    from agent.recommend.sequential import SequentialModel

    report = fit_production(world.record, world.settings.data_dir, TINY)
    served = SequentialModel.load(
        folder(world.settings.data_dir) / report.manifest.files["sequential"]
    )
    assert served.params.patience == 0 and 1 <= served.params.epochs <= TINY_EPOCHS
    assert served.best_epoch == served.params.epochs


def test_recommend_orders_by_the_ranker_and_explain_shows_its_features(world: World) -> None:
    fit_production(world.record, world.settings.data_dir, TINY)
    rec = world.recommender()
    result = rec.recommend("scifi", k=5, rerank_with_llm=False)
    assert "rank_s" in result.timings
    ranker = ServingRanker.load(world.settings.data_dir)
    assert ranker is not None
    history = world.record.history("scifi")
    expected = ranker.rank("scifi", history, exclude={e.item_id for e in history})
    got = [r.item_id for r in result.items]
    assert got == [i for i in expected.items if i in set(got)][: len(got)]
    assert not set(got) & history_ids(world.record, "scifi")
    explanation = Explainer(rec).explain("scifi", got[0])
    assert explanation.ranker_features and any("learned ranker" in f for f in explanation.facts)
    assert explanation.verdict == "recommended: rank 1 by the learned ranker (top 10)"
    assert {f.feature for f in explanation.ranker_features} <= set(ranker.model.features)


def test_without_a_ranker_recommend_warns_and_uses_fusion(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agent"):
        result = world.recommender().recommend("scifi", k=5, rerank_with_llm=False)
    assert "rank_s" not in result.timings
    assert any("personae rank fit" in r.getMessage() for r in caplog.records)


def test_rank_fit_command_reports_json(world: World) -> None:
    args = ["rank", "fit", "--json", "--no-sequential", "--depth", "10",
            "--data-dir", str(world.settings.data_dir)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["seconds"] > 0 and "sequential" not in body["manifest"]["files"]
    assert body["manifest"]["depth"] == 10


def test_the_rank_command_module_imports_no_heavy_library() -> None:
    code = (
        "import sys, agent.cli.rank_cmds; "
        "print(sorted(m for m in ('lightgbm', 'torch', 'agent.rank.model') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_profile_columns_come_only_from_profiles_written_before_the_training_event(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The world's profiles saw every event, so they cannot give the training groups (each
    user's latest event) their profile columns; once newer events arrive, they can, and
    `recommend` then fills the same columns from the latest profile."""
    from agent.embeddings import HashEmbedder
    from agent.profiles.edits import EditRequest, apply_edit
    from agent.rank import profile_training
    from agent.rank.fit import stored_vectors
    from agent.rank.profile_match import SERVED_PROFILE_FEATURES
    from tests.profile_data import event
    from tests.recommend_data import PROFILED

    embed = HashEmbedder().embed
    vectors = stored_vectors(world.index)
    options = FitOptions(**{**TINY.__dict__, "min_profiles": 2})  # type: ignore[arg-type]
    before = fit_production(world.record, world.settings.data_dir, options, vectors, embed=embed)
    assert before.manifest.metrics["profiles_before_target"] == 0
    assert not set(SERVED_PROFILE_FEATURES) & set(before.manifest.features)
    with world.record.writer() as writer:
        for day, user in enumerate(PROFILED):
            writer.add_interaction(event(user, "12", 5, 200 + day))
    after = fit_production(world.record, world.settings.data_dir, options, vectors, embed=embed)
    assert after.manifest.metrics["profiles_before_target"] == len(PROFILED)
    assert set(SERVED_PROFILE_FEATURES) <= set(after.manifest.features)
    rec = world.recommender()
    ranker = rec.ranker()
    assert ranker is not None and ranker.uses_profile()
    evidence = rec.profile_evidence(ranker, "scifi", rec.profile_of("scifi"))
    assert evidence is not None and evidence.profile is not None
    assert rec.profile_evidence(ranker, "sparse", None) is None
    made: list[str] = []
    real = profile_training.profile_evidence

    def counted(profiles: Any, embed: Any) -> Any:
        made.extend(profiles)
        return real(profiles, embed)

    monkeypatch.setattr(profile_training, "profile_evidence", counted)
    assert rec.recommend("scifi", k=3, rerank_with_llm=False).items
    assert rec.profile_evidence(ranker, "scifi", rec.profile_of("scifi")) is evidence
    assert made == []  # embedded once, above, for recommend and explain alike
    apply_edit(world.record, "scifi", EditRequest(add_dislikes=["Horror"]))
    edited = rec.profile_evidence(ranker, "scifi", rec.profile_of("scifi"))
    assert edited is not evidence and made == ["scifi"]  # a new version: embedded anew
