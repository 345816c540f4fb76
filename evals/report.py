"""`report.md`: the summary as Markdown tables, the plots, and the published numbers the
llmrank protocol is meant to be compared with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evals.manifest import Manifest
from evals.ranked import ABLATED
from evals.reasons_stage import ReasonsReport
from evals.summary import ProtocolSummary, RunSummary, SystemSummary

PUBLISHED = """\
Published llmrank NDCG@10 (Hou et al., ECIR'24; ML-1M / Amazon Games, 20 candidates):
ChatGPT 48.80 / 50.31, GPT-4 46.74 / 62.88, popularity 52.33 / 52.96, BPR-MF 64.29 / 66.27,
SASRec 78.89 / 75.92; random 22.72. These are other datasets: read them as a scale, not a
target (this run's data is in the manifest)."""

HEADLINE = "ndcg@10"

GIVEN = {
    "random": "nothing (seeded shuffle)",
    "popularity": "every user's training events (decayed counts); nothing of the user",
    "collaborative": "EASE fitted on every user's training prefix; the user's whole prefix",
    "dense-history": "the mean text vector of the user's last 50 training events (the cap)",
    "fusion-history": "its parts as given here (dense-history, collaborative, popularity)",
    "dense-profile": "the profile written from the last 50 training events",
    "fusion": "its parts as given here (dense-profile, collaborative, popularity)",
    "sequential": "SASRec fitted on every user's training prefix; the user's last max_len "
    "positive items of it",
    "ranker-no-llm": "LambdaRank trained on the validation event (sources fitted on the "
    "events before it); judged with sources refitted on the whole training prefix",
    "ranker": "as ranker-no-llm, plus the LLM feature columns (NaN where not computed)",
    "llm-rerank": "the profile and the last events shown in the prompt",
    "blended": "llm-rerank and the fusion order",
    "default": "what `recommend` gives by default: the ranker's order when rankers were "
    "fitted (ranker if trained with the LLM columns, else ranker-no-llm), else fusion with the "
    "LLM rank blended in at the tuned weight (0 without one); which one is under Checks",
}
"""What each system was given of a judged user (the target itself never)."""


def cell(system: SystemSummary, metric: str, interval: bool) -> str:
    m = system.metrics[metric]
    return f"{m.mean:.2f} [{m.low:.2f}, {m.high:.2f}]" if interval else f"{m.mean:.2f}"


def metric_table(systems: dict[str, SystemSummary], metrics: list[str]) -> list[str]:
    head = ["system", *metrics, "users covered"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, system in systems.items():
        cells = [cell(system, m, m == HEADLINE) for m in metrics]
        n = next(iter(system.metrics.values())).n
        ms = f"{system.ms_per_user:.2f}" if system.ms_per_user is not None else "-"
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {system.covered}/{n} ({ms} ms/user) |"
        )
    return lines


def protocol_section(summary: ProtocolSummary, plot: str | None) -> list[str]:
    lines = [f"## Protocol: {summary.protocol.value} ({summary.users} users)", ""]
    lines += [f"Values x100; {HEADLINE} with a 95% bootstrap interval over users.", ""]
    lines += metric_table(summary.systems, summary.metrics)
    if summary.retrieved_only is not None:
        lines += ["", f"Users whose held-out item was retrieved in the top 20: "
                      f"{summary.retrieved_users}/{summary.users}", ""]  # fmt: skip
        lines += metric_table(summary.retrieved_only, summary.metrics)
    if summary.position_bias:
        lines += ["", "Position bias: NDCG@10 by position of the held-out item as shown", ""]
        buckets = list(next(iter(summary.position_bias.values())))
        lines += ["| system | " + " | ".join(buckets) + " |", "|" + "---|" * (len(buckets) + 1)]
        for system, row in summary.position_bias.items():
            values = ["-" if v is None else f"{v:.2f}" for v in row.values()]
            lines.append(f"| {system} | " + " | ".join(values) + " |")
    if summary.differences:
        lines += [
            "",
            f"Paired differences (B - A, {HEADLINE}, same users and candidates, 95% "
            "bootstrap interval)",
            "",
            "| B - A | difference | note |",
            "|---|---|---|",
        ]
        for d in summary.differences:
            lines.append(f"| {d.b} - {d.a} | {d.mean:+.2f} [{d.low:.2f}, {d.high:.2f}] "
                         f"| {d.note} |")  # fmt: skip
    if summary.beyond:
        lines += ["", "Beyond accuracy (top 10): catalog coverage, intra-list diversity by "
                      "category (1 - Jaccard), novelty (mean self-information, bits), share of "
                      "the 10% most popular items", ""]  # fmt: skip
        columns = list(next(iter(summary.beyond.values())))
        lines += ["| system | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
        for system, beyond in summary.beyond.items():
            cells = " | ".join(f"{beyond[c]:.2f}" for c in columns)
            lines.append(f"| {system} | {cells} |")
    if plot:
        lines += ["", f"![{summary.protocol.value}]({plot})"]
    return lines + [""]


def given_section(systems: list[str]) -> list[str]:
    lines = ["## What each system was given", "", "| system | given |", "|---|---|"]
    lines += [f"| {name} | {GIVEN[name]} |" for name in systems if name in GIVEN]
    lines += [f"| {name} | as ranker, without the column {name.removeprefix(ABLATED)} |"
              for name in systems if name.startswith(ABLATED)]  # fmt: skip
    return lines + [""]


def ranking_section(ranking: dict[str, Any]) -> list[str]:
    lines = ["## Learned ranker", ""]
    lines += [f"Timings (s): {ranking.get('timings_s', {})}; training groups: "
              f"{ranking.get('groups', {})}.", ""]  # fmt: skip
    for mode, columns in ranking.get("LLM columns alone on training groups", {}).items():
        lines += [f"Each LLM column alone on the {mode} training groups (validation events):",
                  "", "| column | NDCG@10 | groups |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {name} | {alone['ndcg@10']} | {alone['groups']} |"
                  for name, alone in columns.items()]  # fmt: skip
        lines.append("")
    for name, facts in ranking.items():
        if not isinstance(facts, dict) or "gain" not in facts:
            continue
        lines += [f"### {name}: {facts['trees']} trees, {facts['train_s']} s, 5-fold NDCG@10 "
                  f"over the training users {facts['cv_ndcg@10']}", "",
                  "| feature | gain | share |", "|---|---|---|"]  # fmt: skip
        total = sum(facts["gain"].values()) or 1.0
        for feature, gain in list(facts["gain"].items())[:15]:
            lines.append(f"| {feature} | {gain:.1f} | {100 * gain / total:.1f}% |")
        lines.append("")
    return lines


REASON_ROWS = (
    ("reasons", "reasons"),
    ("faithfulness (cited among the item's top-3 EASE drivers)", "faithfulness"),
    ("citing nothing", "uncited_rate"),
    ("deletion: score drop, cited / as many random (ratio)", "deletion_ratio"),
    ("deletion: mean score drop, cited / random", ("deletion_cited_drop", "deletion_random_drop")),
    ("deletion: mean rank drop, cited / random",
     ("deletion_cited_rank_drop", "deletion_random_rank_drop")),
    ("false-claim rate", "false_claim_rate"),
    ("  category the item lacks", "false_category_rate"),
    ("  says the user rated or watched the item", "seen_claim_rate"),
    ("distinct-1", "distinct_1"),
    ("distinct-2", "distinct_2"),
    ("template rate (most common opening 5 words)", "template_rate"),
    ("  same opening 3 words", "opening_3_rate"),
    ("example-copy rate (4 words of the prompt)", "copy_rate"),
)  # fmt: skip
COLUMN_NAMES = {"retrieval": "retrieval (no LLM)", "llm": "shown (LLM, retrieval fallback)",
                "llm_drafts": "LLM drafts"}  # fmt: skip


def figure(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def reasons_section(report: ReasonsReport) -> list[str]:
    """The reasons for each user's top K, the columns side by side (issue 29)."""
    lines = ["## Reasons", "",
             f"Top {report.k} unseen items of EASE (fitted on the training prefix) for "
             f"{report.users} users, evidence from each user's training prefix only; "
             f"{report.profiles} users with an eval profile; example copy against "
             f"{report.copy_prompt}. Per user: reasons.jsonl.", ""]  # fmt: skip
    columns = {name: c.model_dump() for name, c in report.columns.items()}
    lines += ["| figure | " + " | ".join(COLUMN_NAMES.get(n, n) for n in columns) + " |",
              "|" + "---|" * (len(columns) + 1)]  # fmt: skip
    for name, key in REASON_ROWS:
        keys = key if isinstance(key, tuple) else (key,)
        cells = [" / ".join(figure(c[k]) for k in keys) for c in columns.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| template | " + " | ".join(f"`{c['template']}`" for c in columns.values())
                 + " |")  # fmt: skip
    if report.llm is not None:
        llm = report.llm
        lines += ["", f"LLM ({llm['model']}, {llm['prompt']}): {llm['tokens_in_per_user']} "
                      f"tokens in, {llm['tokens_out_per_user']} out, {llm['seconds_per_user']} s "
                      f"per user ({llm.get('computed_now', 0)} requests now, "
                      f"{llm.get('from_cache', 0)} from the cache); kept {llm['kept']}, left out "
                      f"for citing nothing {llm['uncited']}, a false claim "
                      f"{llm['false_claims']}, cut off or naming no driver {llm['unusable']}; "
                      f"{llm['failed_users']} users failed."]  # fmt: skip
    for user, shown in report.examples.items():
        lines += ["", f"User {user}:", ""]
        lines += [f"- {e['title']} [{e['by']}]: {e['reason']}" for e in shown]
    return lines + [""]


def kv_table(title: str, data: dict[str, Any]) -> list[str]:
    lines = [f"### {title}", "", "| what | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in data.items()]
    return lines + [""]


def llm_setup(manifest: Manifest) -> str:
    """How the LLM systems were asked, which changes what their numbers mean."""
    s, o = manifest.settings, manifest.options
    if o.get("rerank_mode") == "scored":
        return (
            f"LLM re-rank (scored): each candidate gets a one-letter label and its score is the "
            f"next-token log-probability of that label (top {s['rerank_top_logprobs']} "
            f"returned; a label outside them scores as the lowest returned), averaged over "
            f"{o['shuffles']} order(s), the first the order shown; no list is written; "
            f"blended = {o['blend']} x LLM rank + {1 - o['blend']:g} x fusion rank."
        )
    return (
        f"LLM re-rank: the model orders its top **{s['eval_rerank_picks']}** candidates "
        f"(llmrank: of {s['eval_candidates']}; candidates it does not rank follow in the order "
        f"shown), {o['shuffles']} shuffle(s), up to {s['max_reasks']} re-asks per reply, "
        f"temperature {s['temperature']}; blended = {o['blend']} x LLM rank + "
        f"{1 - o['blend']:g} x fusion rank."
    )


def render(summary: RunSummary, manifest: Manifest, plots: dict[str, str]) -> str:
    lines = [f"# personae eval {summary.run_id}", ""]
    if summary.smoke:
        fakes = ", ".join(manifest.fakes) or "none"
        lines += [
            f"> **SMOKE RUN with fake backends ({fakes}): these numbers prove the plumbing "
            "only and mean nothing about quality.**",
            "",
        ]
    lines += [
        f"Stage **{summary.stage}**, seed {summary.seed}, {summary.users} users. "
        f"LLM: `{summary.backends['llm']}`; embedder: `{summary.backends['embedder']}`; "
        f"git `{manifest.git_commit}`{' (dirty tree)' if manifest.git_dirty else ''}; "
        f"data `{manifest.data_hash[:16]}`.",
        "",
    ]
    if manifest.options["use_llm"]:
        lines += [llm_setup(manifest), ""]
    for name, protocol in summary.protocols.items():
        lines += protocol_section(protocol, plots.get(name))
    shown = list(dict.fromkeys(s for p in summary.protocols.values() for s in p.systems))
    lines += given_section(shown)
    if summary.ranking:
        lines += ranking_section(summary.ranking)
    lines += ["## Checks", ""]
    lines += [f"- {k}: {'**False (failed)**' if v is False else v}"
              for k, v in summary.checks.items()] + [""]  # fmt: skip
    lines += ["## Quality", ""]
    for title, data in summary.quality.items():
        lines += kv_table(title, data)
    if summary.reasons is not None:
        lines += reasons_section(summary.reasons)
    lines += ["## Cost and speed", ""]
    for title, data in summary.cost.items():
        lines += kv_table(title, data)
    for extra in ("position_bias", "latency"):
        if extra in plots:
            lines += [f"![{extra}]({plots[extra]})", ""]
    lines += ["## Reference", "", PUBLISHED, ""]
    lines += ["## Reproduce", "", "```", manifest.options.get("command", ""), "```", ""]
    return "\n".join(lines)


def write_report(run_dir: Path, summary: RunSummary, manifest: Manifest,
                 plots: dict[str, str]) -> Path:  # fmt: skip
    path = run_dir / "report.md"
    path.write_text(render(summary, manifest, plots), encoding="utf-8")
    return path
