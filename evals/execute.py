"""One eval run end to end: run the protocols, then write the run folder (per-user JSONL,
summary, manifest, report and plots)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.profiles.grounding import SemanticJudge
from agent.recommend.filters import load_item_meta
from evals.backends import describe
from evals.beyond import beyond_accuracy
from evals.llm import LLMStages, StageStats
from evals.manifest import Manifest, make_manifest
from evals.metrics import expected_random_ndcg
from evals.plots import latency_plot, metric_plot, position_plot
from evals.prepare import EvalContext, Prepared, RunOptions
from evals.profile_truth import profile_truth
from evals.protocols import Protocol, UserRecord
from evals.quality import position_bias, profile_quality, rerank_quality
from evals.report import write_report
from evals.runner import Runner, Task, no_progress, run_id
from evals.summary import RunSummary, default_guard, protocol_summary

PER_USER = "per_user.jsonl"
SUMMARY = "summary.json"
MANIFEST = "manifest.json"


@dataclass
class RunResult:
    run_dir: Path
    summary: RunSummary
    manifest: Manifest


def quantile(values: Sequence[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None


def stage_cost(stats: StageStats, tokens: list[tuple[int, int]]) -> dict[str, Any]:
    n = len(tokens)
    return {
        "users": n,
        "computed_now": stats.computed,
        "from_cache": stats.cached,
        "seconds_now": round(stats.seconds, 1),
        "users_per_s": round(stats.computed / stats.seconds, 3) if stats.seconds else None,
        "tokens_in_per_user": round(sum(t[0] for t in tokens) / n, 1) if n else None,
        "tokens_out_per_user": round(sum(t[1] for t in tokens) / n, 1) if n else None,
        "latency_p50_s": quantile(stats.latencies, 0.5),
        "latency_p95_s": quantile(stats.latencies, 0.95),
    }


def cost(records: list[UserRecord], stages: LLMStages | None, prep: Prepared,
         runner: Runner) -> dict[str, Any]:  # fmt: skip
    result: dict[str, Any] = {"setup": prep.timings}
    for protocol, seconds in runner.system_seconds.items():
        result[f"retrieval ms/user ({protocol})"] = {
            name: round(1000 * s / len(records), 3) for name, s in seconds.items()
        }
    if stages is None:
        return result
    profiles = [r.profile for r in records if r.profile is not None]
    result["profiles"] = stage_cost(
        stages.profile_stats, [(p.meta.tokens_in, p.meta.tokens_out) for p in profiles]
    )
    reranks = [e.rerank for r in records for e in r.protocols.values() if e.rerank is not None]
    result["re-rank"] = stage_cost(
        stages.rerank_stats, [(x.tokens_in, x.tokens_out) for x in reranks]
    )
    training = runner.training_stages
    if training is not None:  # counts only: its results live in the cache, not per user
        for name, stats in (("profiles", training.profile_stats),
                            ("re-rank", training.rerank_stats)):  # fmt: skip
            result[f"{name} (ranker training)"] = {
                "computed_now": stats.computed, "from_cache": stats.cached,
                "seconds_now": round(stats.seconds, 1),
                "users_per_s": round(stats.computed / stats.seconds, 3) if stats.seconds else None,
            }  # fmt: skip
    return result


def latencies(records: list[UserRecord]) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"profile": []}
    for record in records:
        if record.profile is not None:
            found["profile"].append(record.profile.meta.latency_s)
        for name, entry in record.protocols.items():
            if entry.rerank is not None:
                found.setdefault(f"re-rank {name}", []).append(entry.rerank.latency_s)
    return found


def checks(summary: RunSummary, candidates: int) -> dict[str, Any]:
    """The run's checks; a False value is a failed check: random far from its expected NDCG
    (the protocol is broken), or the default `recommend` path significantly below
    `ranker-no-llm` (the guard)."""
    llmrank = summary.protocols.get(Protocol.LLMRANK.value)
    if llmrank is None:
        return {}
    found: dict[str, Any] = {}
    if "random" in llmrank.systems:
        expected = round(expected_random_ndcg(10, candidates), 2)
        got = llmrank.systems["random"].metrics["ndcg@10"]
        se = (got.high - got.low) / 3.92
        z = (got.mean - expected) / se if se > 0 else 0.0
        found |= {
            "random llmrank NDCG@10 expected": expected,
            "random llmrank NDCG@10 measured": f"{got.mean:.2f} [{got.low:.2f}, {got.high:.2f}]",
            "standard errors from expected (z)": round(z, 2),
            "protocol sanity (|z| <= 3)": abs(z) <= 3,
        }
    return found | default_guard(llmrank, summary.default_path)


def summarize(runner: Runner, prep: Prepared, records: list[UserRecord], rid: str) -> RunSummary:
    options, s = runner.options, runner.ctx.settings
    protocols = {}
    for protocol in options.protocols:
        summary = protocol_summary(records, protocol, s.eval_bootstrap, options.seed)
        for name, ms in runner.system_seconds.get(protocol.value, {}).items():
            if name in summary.systems:
                summary.systems[name].ms_per_user = round(1000 * ms / len(records), 3)
        if protocol is Protocol.LLMRANK:
            summary.position_bias = position_bias(records)
        if protocol is Protocol.FULL:
            categories = {i: m.categories for i, m in load_item_meta(runner.ctx.record).items()}
            summary.beyond = beyond_accuracy(records, protocol.value, categories,
                                             prep.data.train_pairs, len(prep.catalog))  # fmt: skip
        protocols[protocol.value] = summary
    quality: dict[str, Any] = {}
    if runner.with_llm:
        quality["profiles"] = profile_quality(records, prep.ratings, prep.items)
        histories = {u: prep.data.splits[u].history for u in prep.users}
        quality["profile truth"] = profile_truth(records, histories, prep.items,
                                                 SemanticJudge(runner.ctx.embedder),
                                                 s.eval_bootstrap, options.seed)  # fmt: skip
        for protocol in options.protocols:
            if protocol is not Protocol.FULL and runner.reranked:
                quality[f"re-rank ({protocol.value})"] = rerank_quality(records, protocol)
    generator = runner.ctx.generator if runner.with_llm else None
    run = RunSummary(
        run_id=rid, stage=options.stage.value, seed=options.seed, users=len(records),
        smoke=options.smoke, backends=describe(runner.ctx.generator if runner.with_llm else None,
                                               runner.ctx.embedder),
        protocols=protocols, quality=quality, cost=cost(records, runner.stages, prep, runner),
        skipped=prep.data.skipped, checks={},
        llm_model=generator.model_name if generator is not None else None,
        default_path=runner.default,
    )  # fmt: skip
    run.checks = checks(run, s.eval_candidates)
    run.reasons = runner.reasons.report if runner.reasons is not None else None
    if runner.ranking is not None:
        run.ranking = runner.ranking.report()
    return run


def write_plots(run_dir: Path, summary: RunSummary, records: list[UserRecord]) -> dict[str, str]:
    plots = {}
    for name, protocol in summary.protocols.items():
        metric = "ndcg@10"
        path = run_dir / f"{name}-{metric.replace('@', '')}.png"
        metric_plot(protocol, metric, path, f"{name}: {metric} by system (95% CI)")
        plots[name] = path.name
    bias = summary.protocols.get(Protocol.LLMRANK.value)
    if bias is not None and bias.position_bias:
        plots["position_bias"] = position_plot(
            bias.position_bias, run_dir / "position_bias.png"
        ).name
    lat = latencies(records)
    if any(lat.values()):
        plots["latency"] = latency_plot(lat, run_dir / "latency.png").name
    return plots


def new_run_dir(out_dir: Path, rid: str) -> Path:
    """A new folder for the run: `rid`, or `rid-2`, `rid-3`... when a run that ended in the
    same second took it (two short runs back to back did, and the second one's results were
    lost to a FileExistsError after all its work)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        run_dir = out_dir / (rid if n == 1 else f"{rid}-{n}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise FileExistsError(f"{out_dir / rid}: 999 runs of that name already")


def execute(ctx: EvalContext, options: RunOptions, progress: Task = no_progress,
            command: str = "") -> RunResult:  # fmt: skip
    runner = Runner(ctx, options, progress)
    prep, records = runner.run()
    run_dir = new_run_dir(options.out_dir, run_id(options, len(records)))
    rid = run_dir.name
    with (run_dir / PER_USER).open("w", encoding="utf-8") as out:
        for record in records:
            out.write(record.model_dump_json() + "\n")
    if runner.reasons is not None:
        runner.reasons.write(run_dir)
    summary = summarize(runner, prep, records, rid)
    (run_dir / SUMMARY).write_text(summary.model_dump_json(indent=2), encoding="utf-8")
    s = ctx.settings
    manifest = make_manifest(
        rid, backends=summary.backends, smoke=options.smoke, fakes=prep.fakes,
        seeds={"eval": options.seed, "llm": s.seed, "bootstrap": options.seed},
        data_hash=prep.data_hash,
        data={"record": str(ctx.record.path), "catalog_items": len(prep.catalog),
              "users_evaluated": len(records), "skipped": prep.data.skipped},
        options=options.model_dump(mode="json") | {"command": command},
        settings=s.model_dump(mode="json", exclude={"api_key"}),
    )  # fmt: skip
    (run_dir / MANIFEST).write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    write_report(run_dir, summary, manifest, write_plots(run_dir, summary, records))
    return RunResult(run_dir, summary, manifest)


def load_records(run_dir: Path) -> list[UserRecord]:
    with (run_dir / PER_USER).open(encoding="utf-8") as lines:
        return [UserRecord.model_validate_json(line) for line in lines if line.strip()]


def load_summary(run_dir: Path) -> RunSummary:
    return RunSummary.model_validate_json((run_dir / SUMMARY).read_text(encoding="utf-8"))


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
