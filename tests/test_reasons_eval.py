"""`eval run --reasons K` (issue 29): reasons for each user's top K through recommend's code,
judged side by side. Nothing held out reaches a reason (the held-out target and every later
event are liked by other users here, so EASE knows them and could cite them if the stage
read past the prefix); the LLM path runs on the deterministic schema filler through the run's
cache, so a rerun sends nothing. Plumbing only: no claim about how well a model writes."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli import app, eval_cmds
from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.runtime.structured import StructuredGenerator
from agent.schemas import Interaction, Item, User
from agent.store.chroma import open_client
from agent.store.item_index import ItemIndex
from agent.store.record import RecordStore
from evals.execute import RunResult, execute
from evals.prepare import EvalContext, RunOptions
from evals.protocols import Protocol
from evals.reasons_stage import PER_USER, UserReasons
from evals.splits import Stage
from tests.fakes import SchemaFiller

GENRES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]
START = datetime(2021, 1, 1, tzinfo=UTC)


def build(tmp_path: Path) -> tuple[Settings, RecordStore, ItemIndex, dict[str, list[str]]]:
    """20 users over 30 shared items: every item is liked by several users early on, and each
    user's last events are shared items too. Returns each user's item ids in time order."""
    settings = Settings(data_dir=tmp_path / "data", concurrency=2, max_reasks=1)
    record = RecordStore.at(settings.data_dir)
    rng = random.Random(3)
    items = [
        Item(item_id=str(i), title=f"Film{i} {GENRES[i % 5]} tale", year=1980 + i % 20,
             categories=[GENRES[i % 5], GENRES[(i * 3) % 5]])
        for i in range(1, 31)
    ]  # fmt: skip
    order: dict[str, list[str]] = {}
    with record.writer() as writer:
        for item in items:
            writer.put_item(item)
        for u in range(1, 21):
            user = f"u{u}"
            writer.put_user(User(user_id=user))
            order[user] = rng.sample([it.item_id for it in items], 12)
            for day, item_id in enumerate(order[user]):
                writer.add_interaction(
                    Interaction(user_id=user, item_id=item_id, rating=float(rng.choice([4, 5])),
                                timestamp=START + timedelta(days=day))
                )  # fmt: skip
    index = ItemIndex(open_client(settings), HashEmbedder())
    index.refresh(record.iter_items())
    return settings, record, index, order


def run(tmp_path: Path, generator: bool, **given: Any) -> tuple[RunResult, dict[str, list[str]]]:
    settings, record, index, order = build(tmp_path)
    made = (StructuredGenerator(settings, SchemaFiller(), "smoke", base_url="(test)")
            if generator else None)  # fmt: skip
    ctx = EvalContext(settings, record, index, index.embedder, made)
    options = RunOptions(protocols=[Protocol.LLMRANK], users=given.pop("users", 10), smoke=True,
                         out_dir=tmp_path / "runs", cache_dir=tmp_path / "cache", rank=False,
                         rerank=False, use_llm=generator, reasons=given.pop("reasons", 3),
                         **given)  # fmt: skip
    return execute(ctx, options), order


def reasons_of(result: RunResult) -> list[UserReasons]:
    lines = (result.run_dir / PER_USER).read_text(encoding="utf-8").splitlines()
    return [UserReasons.model_validate_json(line) for line in lines]


@pytest.mark.parametrize("stage", [Stage.TEST, Stage.VALIDATION])
def test_no_held_out_or_later_event_is_cited_or_offered_as_evidence(
    tmp_path: Path, stage: Stage
) -> None:
    result, order = run(tmp_path, generator=False, stage=stage)
    made = reasons_of(result)
    assert made and all(len(u.reasons) == 3 for u in made)
    drivers_seen = 0
    for user in made:
        events = order[user.user_id]
        cut = len(events) - stage.held_out
        later = set(events[cut:])  # the target and everything after it
        prefix = set(events[:cut])
        for evidence in user.evidence:
            offered = {d.item_id for d in evidence.drivers}
            drivers_seen += len(offered)
            assert not offered & later, (user.user_id, evidence.item_id, offered & later)
            assert offered <= prefix
            assert evidence.item_id not in prefix  # a recommendation, never a seen item
        for reason in user.reasons:
            assert not set(reason.cited) & later
    assert drivers_seen > 0
    summary = result.summary.reasons
    assert summary is not None and list(summary.columns) == ["retrieval"]
    assert summary.columns["retrieval"].faithfulness == 1.0
    assert summary.columns["retrieval"].false_claim_rate == 0.0
    assert "## Reasons" in (result.run_dir / "report.md").read_text(encoding="utf-8")


def test_the_llm_reasons_go_through_the_cache_and_sit_beside_the_retrieval_ones(
    tmp_path: Path,
) -> None:
    first, _ = run(tmp_path, generator=True)
    report = first.summary.reasons
    assert report is not None and list(report.columns) == ["retrieval", "llm", "llm_drafts"]
    llm = report.llm or {}
    assert llm["users"] == 10 and llm["computed_now"] == 10 and llm["from_cache"] == 0
    assert llm["kept"] + llm["uncited"] + llm["false_claims"] + llm["unusable"] == 30
    assert report.columns["llm"].reasons == report.columns["retrieval"].reasons == 30
    assert {r.by for u in reasons_of(first) for r in u.reasons} <= {"llm", "retrieval"}
    text = (first.run_dir / "report.md").read_text(encoding="utf-8")
    assert "shown (LLM, retrieval fallback)" in text and "LLM drafts" in text
    again, _ = run(tmp_path / "again", generator=True)  # a fresh world, the same data
    assert again.summary.reasons is not None
    # a different data dir: a new cache, so computed again; the same cache answers below
    settings, record, index, _ = build(tmp_path / "third")
    generator = StructuredGenerator(settings, SchemaFiller(stop_after=0), "smoke",
                                    base_url="(test)")  # fmt: skip
    ctx = EvalContext(settings, record, index, index.embedder, generator)
    options = RunOptions(protocols=[Protocol.LLMRANK], users=10, smoke=True, rank=False,
                         rerank=False, reasons=3, out_dir=tmp_path / "runs3",
                         cache_dir=tmp_path / "cache")  # fmt: skip
    third = execute(ctx, options)  # stop_after=0: any request sent would raise
    cached = (third.summary.reasons.llm or {}) if third.summary.reasons else {}
    assert cached["computed_now"] == 0 and cached["from_cache"] == 10


def test_the_cli_takes_reasons_k(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings, record, _, _ = build(tmp_path)
    record.close()
    monkeypatch.setattr(eval_cmds, "load_embedder", lambda settings: HashEmbedder())
    args = [
        "eval",
        "run",
        "--smoke",
        "--no-llm",
        "--no-rank",
        "--users",
        "5",
        "--reasons",
        "2",
        "--data-dir",
        str(settings.data_dir),
        "--out",
        str(tmp_path / "runs"),
        "--json",
    ]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    found = json.loads(out.stdout)
    assert found["summary"]["reasons"]["k"] == 2
    assert found["summary"]["reasons"]["columns"]["retrieval"]["reasons"] == 10
