"""PNG plots for the report (matplotlib, no display): metric by system with bootstrap
intervals, position bias, and latency."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from evals.summary import ProtocolSummary  # noqa: E402


def metric_plot(summary: ProtocolSummary, metric: str, path: Path, title: str) -> Path:
    names = list(summary.systems)
    means = [summary.systems[n].metrics[metric].mean for n in names]
    lows = [m - summary.systems[n].metrics[metric].low for n, m in zip(names, means, strict=True)]
    highs = [summary.systems[n].metrics[metric].high - m for n, m in zip(names, means, strict=True)]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names)), 3.6))
    ax.bar(names, means, yerr=[lows, highs], capsize=4, color="#4c78a8")
    ax.set_ylabel(f"{metric} (x100)")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def position_plot(bias: dict[str, dict[str, float | None]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for system, row in bias.items():
        buckets = list(row)
        ax.plot(buckets, [v if v is not None else float("nan") for v in row.values()],
                marker="o", label=system)  # fmt: skip
        ax.set_xticks(range(len(buckets)), buckets)
    ax.set_xlabel("position of the held-out item in the shown candidates")
    ax.set_ylabel("NDCG@10 (x100)")
    ax.set_title("Position bias (llmrank)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency_plot(latencies: dict[str, list[float]], path: Path) -> Path:
    labels = [k for k, v in latencies.items() if v]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    if labels:
        ax.boxplot([latencies[k] for k in labels], tick_labels=labels)
    ax.set_ylabel("seconds per user")
    ax.set_title("Latency per user and stage")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
