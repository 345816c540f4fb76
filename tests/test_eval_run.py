"""The eval harness end to end on a small synthetic catalog (real SQLite and Chroma, the hash
embedder, the smoke LLM): no leakage of the held-out item into any prompt, reproducibility
per seed, the refusal of fake backends, the run folder, resume from the cache, and the CLI."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import PrivateAttr
from typer.testing import CliRunner

from agent.cli import app, eval_cmds
from agent.config import Settings
from agent.embeddings import Embedder, HashEmbedder
from agent.rank.profile_match import PROFILE_FEATURES
from agent.runtime.structured import StructuredGenerator
from agent.schemas import Interaction, Item, User
from agent.store.chroma import open_client
from agent.store.item_index import ItemIndex
from agent.store.record import RecordStore
from evals.backends import FakeBackendError
from evals.execute import RunResult, execute, load_records
from evals.prepare import EvalContext, RunOptions
from evals.protocols import Protocol
from evals.smoke import SmokeChatModel

GENRES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]
START = datetime(2021, 1, 1, tzinfo=UTC)
NON_LLM = (
    "random", "popularity", "collaborative", "dense-history", "fusion-history", "sequential",
    "ranker-no-llm",
)  # fmt: skip


class RecordingSmoke(SmokeChatModel):
    """The smoke model, keeping every prompt it was sent."""

    _prompts: list[str] = PrivateAttr(default_factory=list)

    def _reply(self, messages: list[Any], kwargs: dict[str, Any]) -> Any:
        self._prompts.append("\n".join(str(m.content) for m in messages))
        return super()._reply(messages, kwargs)


@dataclass
class World:
    settings: Settings
    record: RecordStore
    index: ItemIndex


def build(tmp_path: Path, embedder: Embedder | None = None) -> World:
    settings = Settings(data_dir=tmp_path / "data", concurrency=4, max_reasks=1)
    record = RecordStore.at(settings.data_dir)
    rng = random.Random(7)
    items = [
        Item(item_id=str(i), title=f"Film{i} {GENRES[i % 5]} tale", year=1990 + i % 10,
             categories=[GENRES[i % 5], GENRES[(i * 3) % 5]])
        for i in range(1, 61)
    ]  # fmt: skip
    held_out = [
        Item(item_id=f"h{u}", title=f"Heldout{u} {GENRES[u % 5]} tale", categories=[GENRES[u % 5]])
        for u in range(1, 25)
    ]
    with record.writer() as writer:
        for item in items + held_out:
            writer.put_item(item)
        for u in range(1, 25):
            user = f"u{u}"
            writer.put_user(User(user_id=user))
            liked = [it.item_id for it in items if int(it.item_id) % 5 in (u % 5, (u + 1) % 5)]
            picks = rng.sample(liked, 8) + rng.sample([it.item_id for it in items], 4)
            days = rng.sample(range(200), len(set(picks)))
            for item_id, day in zip(dict.fromkeys(picks), days, strict=False):
                writer.add_interaction(
                    Interaction(user_id=user, item_id=item_id, rating=float(rng.randint(1, 5)),
                                timestamp=START + timedelta(days=day))
                )  # fmt: skip
            last = START + timedelta(days=300)  # everyone's newest event: an item only they have
            writer.add_interaction(Interaction(user_id=user, item_id=f"h{u}", rating=5.0,
                                               timestamp=last))  # fmt: skip
    index = ItemIndex(open_client(settings), embedder or HashEmbedder())
    index.refresh(record.iter_items())
    return World(settings, record, index)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build(tmp_path)


def run(
    world: World, tmp_path: Path, model: SmokeChatModel | None = None, **given: Any
) -> RunResult:
    chat = model or SmokeChatModel()
    generator = StructuredGenerator(world.settings, chat, "smoke", base_url="(test)")
    ctx = EvalContext(world.settings, world.record, world.index, world.index.embedder, generator)
    options = RunOptions(
        protocols=given.pop("protocols", [Protocol.LLMRANK, Protocol.FULL, Protocol.TWO_STAGE]),
        users=given.pop("users", 8),
        smoke=given.pop("smoke", True),
        out_dir=tmp_path / given.pop("out", "runs"),
        cache_dir=tmp_path / "cache",
        **given,
    )
    return execute(ctx, options)


@pytest.mark.parametrize("mode", ["scored", "generate"])
def test_held_out_item_never_reaches_a_profile_prompt_or_a_history(
    world: World, tmp_path: Path, mode: str
) -> None:
    """Every user's held-out item is one nobody else has: it may appear in a prompt only as a
    candidate (that is the protocol), never in a profile prompt, a profile block or a history."""
    model = RecordingSmoke()
    result = run(world, tmp_path, model, protocols=[Protocol.LLMRANK, Protocol.TWO_STAGE],
                 rerank_mode=mode)  # fmt: skip
    records = load_records(result.run_dir)
    assert records and all(r.target == f"h{r.user_id[1:]}" for r in records)
    assert len(model._prompts) >= 2 * len(records)
    shown_as_candidate = 0
    for prompt in model._prompts:
        outside = prompt
        if "<candidates>\n" in prompt:
            head, rest = prompt.split("<candidates>\n", 1)
            block, tail = rest.split("</candidates>", 1)
            outside = head + tail
            shown_as_candidate += sum(  # generate shows ids, scored labels the titles
                f"[{r.target}]" in block or f"Heldout{r.user_id[1:]} " in block for r in records
            )
        for record in records:
            title = f"Heldout{record.user_id[1:]} "
            assert f"[{record.target}]" not in outside and title not in outside
    assert shown_as_candidate >= len(records)
    for record in records:
        assert record.target not in record.history_ids
        profile = record.profile.profile  # type: ignore[union-attr]
        assert profile is not None
        assert record.target not in {i for x in profile.interests for i in x.evidence}
        assert record.target in record.protocols["llmrank"].candidates


def non_llm(result: RunResult) -> list[Any]:
    rows = []
    for record in load_records(result.run_dir):
        for name, entry in record.protocols.items():
            systems = {k: v.model_dump() for k, v in entry.systems.items() if k in NON_LLM}
            rows.append((record.user_id, name, entry.candidates, systems))
    return rows


def test_same_seed_same_candidates_and_non_llm_metrics(world: World, tmp_path: Path) -> None:
    first = run(world, tmp_path, out="a", seed=5)
    second = run(world, tmp_path, out="b", seed=5)
    assert non_llm(first) == non_llm(second)
    for protocol in ("llmrank", "full"):
        a = first.summary.protocols[protocol].systems
        b = second.summary.protocols[protocol].systems
        assert {k: a[k].metrics for k in NON_LLM} == {k: b[k].metrics for k in NON_LLM}
    other = run(world, tmp_path, out="c", seed=6)
    assert non_llm(other) != non_llm(first)


def test_every_system_side_by_side_and_the_run_folder(world: World, tmp_path: Path) -> None:
    result = run(world, tmp_path, shuffles=2, rerank_mode="generate")
    names = {"llmrank", "full", "two-stage"}
    assert set(result.summary.protocols) == names
    llmrank = result.summary.protocols["llmrank"].systems
    # one ranker per LLM column left out (no llm_score in generate mode): each column's gain
    ablated = {f"ranker-without-{c}" for c in (*PROFILE_FEATURES, "profile_confidence")}
    assert set(llmrank) == {
        *NON_LLM, "dense-profile", "fusion", "llm-rerank", "blended", "ranker", "default", *ablated,
    }  # fmt: skip
    gains = {d.a for d in result.summary.protocols["llmrank"].differences if d.b == "ranker"}
    assert ablated <= gains
    # generate mode: no label scores, but the profile columns: the default path is the ranker
    assert result.summary.default_path is not None
    assert result.summary.default_path.system == "ranker"
    assert result.summary.checks["default not below ranker-no-llm (95% CI not entirely below 0)"]
    assert "| default - ranker-no-llm |" in (result.run_dir / "report.md").read_text()
    stage = result.summary.protocols["two-stage"]
    assert stage.retrieved_users is not None and stage.retrieved_only is not None
    files = {p.name for p in result.run_dir.iterdir()}
    assert {"per_user.jsonl", "summary.json", "manifest.json", "report.md"} <= files
    assert {"llmrank-ndcg10.png", "position_bias.png", "latency.png"} <= files
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["prompts"]["rerank"]["hash"] and manifest["data_hash"]
    assert manifest["seeds"]["eval"] == 0 and manifest["smoke"] is True
    report = (result.run_dir / "report.md").read_text()
    assert "SMOKE RUN" in report and "| llm-rerank |" in report and "22.72" in report
    assert "orders its top **20** candidates (llmrank: of 20" in report
    assert "| ranker - ranker-no-llm |" in report and "Beyond accuracy" in report
    assert "| ranker - ranker-without-profile_confidence | " in report
    assert "## Learned ranker" in report and "NDCG@10 over the training users" in report
    full = result.summary.protocols["full"]
    assert full.beyond is not None and 0 < full.beyond["ranker-no-llm"]["coverage@10"] <= 100
    assert {(d.a, d.b) for d in full.differences} >= {("ranker-no-llm", "ranker")}
    quality = result.summary.quality
    assert quality["profiles"]["schema_valid_rate"] == 1.0
    truth = quality["profile truth"]
    assert truth["profiles"] == result.summary.users
    assert 0 <= truth["drafted bare_genre"]["mean"] <= 1 and "example_copy" in truth
    assert {(d.a, d.b) for d in result.summary.protocols["llmrank"].differences} >= {
        ("dense-history", "dense-profile")}  # fmt: skip
    assert quality["re-rank (llmrank)"]["reasons_citing_outside_prefix"] == 0.0
    assert result.summary.cost["re-rank"]["tokens_out_per_user"] > 0
    for record in load_records(result.run_dir):
        candidates = record.protocols["llmrank"].candidates
        assert len(candidates) == 20 and record.target in candidates
        assert record.protocols["llmrank"].rerank.runs == 2  # type: ignore[union-attr]


def test_scored_rerank_keeps_every_score_and_reuses_probes_across_shuffle_counts(
    world: World, tmp_path: Path
) -> None:
    """Scored mode: one one-token probe per order, a score for every candidate, and S = 1
    after S = 3 answered from the probe cache (its one order is the first of the three)."""
    model = RecordingSmoke()
    three = run(world, tmp_path, model, protocols=[Protocol.LLMRANK], shuffles=3, out="s3")
    records = load_records(three.run_dir)
    for record in records:
        rerank = record.protocols["llmrank"].rerank
        assert rerank is not None and rerank.mode == "scored" and rerank.runs == 3
        assert rerank.tokens_out == 3 and not rerank.picks
        assert set(rerank.scores) == set(record.protocols["llmrank"].candidates)
        assert sorted(rerank.llm_ranks.values()) == list(range(1, 21))
        best = max(rerank.scores, key=lambda i: rerank.scores[i])
        assert rerank.llm_ranks[best] == 1
    sent = len(model._prompts)
    one = run(world, tmp_path, model, protocols=[Protocol.LLMRANK], shuffles=1, out="s1")
    assert len(model._prompts) == sent  # every probe came from the cache
    first = {r.user_id: r.protocols["llmrank"].rerank for r in load_records(one.run_dir)}
    assert all(r is not None and r.runs == 1 and r.cached for r in first.values())


def test_ranker_llm_columns_come_from_events_before_each_validation_target(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ranker learns from validation events: the LLM evidence of a training group is
    made from the events before that user's validation target only, over the group's own
    candidates (the target among them); judging uses the test-stage scores."""
    from evals.llm_evidence import TrainingLLM
    from evals.splits import load_histories

    seen: dict[str, Any] = {}
    original = TrainingLLM.__call__

    def spy(self: TrainingLLM, groups: Any) -> Any:
        seen.update(groups)
        return original(self, groups)

    monkeypatch.setattr(TrainingLLM, "__call__", spy)
    result = run(world, tmp_path, RecordingSmoke(), protocols=[Protocol.LLMRANK])
    histories = load_histories(world.record)
    records = load_records(result.run_dir)
    assert set(seen) == {r.user_id for r in records}
    for user_id, group in seen.items():
        events = histories[user_id]
        assert list(group.before) == events[:-2]
        assert events[-2].item_id in group.candidates and len(group.candidates) == 20
    assert "llm_evidence_train_s" in result.summary.ranking["timings_s"]  # type: ignore[operator]
    # equal terms: both rankers learn from the groups of exactly the users the LLM ran on
    assert result.summary.ranking["groups"] == {"sampled": len(records)}  # type: ignore[index]
    assert "ranker" in result.summary.protocols["llmrank"].systems
    # trained with the LLM columns: the eval's default path is this ranker
    assert result.summary.default_path is not None
    assert result.summary.default_path.system == "ranker"


def test_fake_backends_are_refused_without_smoke(world: World, tmp_path: Path) -> None:
    with pytest.raises(FakeBackendError, match="--smoke"):
        run(world, tmp_path, smoke=False)


def test_a_rerun_takes_llm_results_from_the_cache(world: World, tmp_path: Path) -> None:
    first = run(world, tmp_path, protocols=[Protocol.LLMRANK], out="a")
    model = RecordingSmoke()
    second = run(world, tmp_path, model, protocols=[Protocol.LLMRANK], out="b")
    assert model._prompts == []
    assert second.summary.cost["profiles"]["from_cache"] == 8
    a, b = first.summary.protocols["llmrank"], second.summary.protocols["llmrank"]
    assert {k: v.metrics for k, v in a.systems.items()} == {
        k: v.metrics for k, v in b.systems.items()
    }


def cli(world: World, monkeypatch: pytest.MonkeyPatch, *args: str, data: bool = True) -> Any:
    def no_server(settings: Settings) -> Any:
        raise AssertionError("the eval CLI tried to reach an LLM server")

    monkeypatch.setattr(eval_cmds, "load_embedder", lambda settings: HashEmbedder())
    monkeypatch.setattr(eval_cmds, "open_generator", no_server)
    extra = ["--data-dir", str(world.settings.data_dir)] if data else []
    return CliRunner().invoke(app, [*args, *extra])


def test_cli_run_compare_and_tune_blend(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = str(tmp_path / "runs")
    refused = cli(world, monkeypatch, "eval", "run", "--users", "5", "--out", out)
    assert refused.exit_code == 1 and "--smoke" in refused.output  # refused before any server
    runs = []
    for seed in ("0", "0"):
        args = ["--smoke", "--users", "6", "--seed", seed, "--out", out, "--json"]
        done = cli(world, monkeypatch, "eval", "run", *args, "--protocol", "full")
        assert done.exit_code == 0, done.output
        runs.append(json.loads(done.stdout)["run_dir"])
        if len(runs) == 1:
            import time

            time.sleep(1.1)  # run folders are named by the second
    compared = cli(world, monkeypatch, "eval", "compare", *runs, "--json", data=False)
    assert compared.exit_code == 0, compared.output
    body = json.loads(compared.stdout)
    assert body["paired"] is True and {r["protocol"] for r in body["rows"]} == {"full"}
    assert all(r["diff"] == 0 for r in body["rows"] if r["system"] in NON_LLM)
    tuned = cli(world, monkeypatch, "eval", "tune-blend", "--smoke", "--users", "6", "--out", out,
                "--json")  # fmt: skip
    assert tuned.exit_code == 0, tuned.output
    sweep = json.loads(tuned.stdout)["sweep"]
    assert [p["weight"] for p in sweep["points"]][0] == 0.0 and 0 <= sweep["best"] <= 1
    assert Path(json.loads(tuned.stdout)["run_dir"]).name.split("-")[1] == "validation"
    # a smoke run's weight means nothing: recommend must not pick it up
    assert json.loads(tuned.stdout)["stored"] is None
    assert not (world.settings.data_dir / "models" / "rerank_blend.json").exists()


def test_reproduce_command_carries_the_personae_settings_from_the_environment() -> None:
    environ = {
        "PERSONAE_EVAL_RERANK_PICKS": "10",
        "PERSONAE_API_KEY": "secret",
        "PERSONAE_DATA_DIR": "/tmp/a b",
        "HOME": "/root",
    }
    command = eval_cmds.reproduce_command(["eval", "run", "--users", "200"], environ)
    assert command == (
        "PERSONAE_DATA_DIR='/tmp/a b' PERSONAE_EVAL_RERANK_PICKS=10 personae eval run --users 200"
    )


def test_tune_blend_stores_its_weight_where_recommend_reads_it(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real (here: smoke marked as real) tune-blend run stores the chosen weight for the
    served model and mode beside the fitted models; `recommend`'s lookup finds it there."""
    from agent.recommend.llm_rerank import llm_weight
    from agent.store.fitted import load_tuned_blend
    from evals.smoke import SMOKE_MODEL

    real_run = eval_cmds.run_eval

    def as_if_real(settings: Settings, options: RunOptions, show: bool) -> RunResult:
        result = real_run(settings, options, show)
        result.summary.smoke = False
        return result

    monkeypatch.setattr(eval_cmds, "run_eval", as_if_real)
    out = str(tmp_path / "runs")
    done = cli(world, monkeypatch, "eval", "tune-blend", "--smoke", "--users", "6", "--out", out,
               "--json")  # fmt: skip
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert body["stored"] == str(world.settings.data_dir / "models" / "rerank_blend.json")
    stored = load_tuned_blend(world.settings.data_dir, SMOKE_MODEL, "scored")
    assert stored is not None and stored.weight == body["sweep"]["best"]
    assert stored.users == 6 and stored.protocol == "llmrank" and stored.data_hash
    assert llm_weight(world.settings, SMOKE_MODEL, "scored") == (stored.weight, "tuned")
    assert llm_weight(world.settings, "another-model", "scored") == (0.0, "none")
    table = cli(world, monkeypatch, "eval", "tune-blend", "--smoke", "--users", "6", "--out", out)
    assert table.exit_code == 0, f"{table.output}\n{table.exception!r}"
    printed = "".join(table.output.split())  # rich wraps the long line at any space
    assert "stored:weight" in printed and "rerank_blend.json" in printed


def test_a_run_ending_in_the_same_second_as_another_gets_its_own_folder(tmp_path: Path) -> None:
    from evals.execute import new_run_dir

    first = new_run_dir(tmp_path / "runs", "20261205T010203-test-llmrank-6u-s0")
    second = new_run_dir(tmp_path / "runs", "20261205T010203-test-llmrank-6u-s0")
    assert first.is_dir() and second.is_dir() and second.name == first.name + "-2"
