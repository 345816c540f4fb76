"""Wall time of `personae` commands as whole processes, against `python -c pass`.

    PERSONAE_DATA_DIR=DIR PYTHONPATH=. .venv/bin/python bench/cli_latency.py [--runs 7]
        [--user 1] [--no-refit] [--json] [--before TREE [--before-data DIR2]]

Each command is started the way a user starts it: the `personae` console script run by this
interpreter (`python .venv/bin/personae ...`), next to the baseline `python -c pass` started
by the same interpreter. Commands take turns in every round (so a burst of load on a shared
machine hits all of them alike), after one discarded warm-up round; the table gives the median,
min and max in seconds, the median as a ratio to the baseline's median, and the median CPU
time (user + system) of the process, which other load on the machine inflates far less.

The refit check (skip with --no-refit) works on a copy of the data dir, so DIR is left as it
was: it records one `feedback` event (the user likes their top recommendation), then times the
next `recommend` (it must refit and say so on stderr) and the one after (models current).

DIR must hold an ingested record, the item index and a profile of --user (e.g. the main job:
`personae ingest movielens-100k --sample`, `personae index items`, `personae profile`).

Before/after in one run: `--before TREE` (another source tree, e.g. `git archive HEAD | tar
-x -C TREE` before a change) times every command from that tree too, in the same rounds (its
rows are marked `[before]`, run with PYTHONPATH=TREE), then prints the medians side by side.
`--before-data DIR2` gives it its own data dir (a copy, when the change altered a file format).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TARGETS_S = {"--help": 0.5, "stats --json": 1.0, "recommend USER --no-rerank --k 5": 2.0}
"""The issue's targets (medians, models current)."""


def personae_script() -> Path:
    script = Path(sys.executable).parent / "personae"
    if not script.exists():
        raise SystemExit(f"no console script at {script}: run `make setup`")
    return script


@dataclass
class Timed:
    label: str
    argv: list[str]
    seconds: list[float] = field(default_factory=list)
    target_s: float | None = None
    env: dict[str, str] | None = None
    """The environment to run it in (None: the bench's own)."""
    cpu_seconds: list[float] = field(default_factory=list)
    """user + system CPU of the process: less sensitive than wall time to other load."""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass
class Run:
    seconds: float
    cpu_seconds: float
    code: int
    stdout: str
    stderr: str


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], env: dict[str, str]) -> Run:
    cpu, started = _cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    return Run(wall, _cpu() - cpu, done.returncode, done.stdout, done.stderr)


def checked(argv: list[str], env: dict[str, str]) -> Run:
    result = run(argv, env)
    if result.code != 0:
        raise SystemExit(f"{' '.join(argv[1:])} failed ({result.code}):\n{result.stderr[-2000:]}")
    return result


def time_commands(commands: list[Timed], env: dict[str, str], runs: int, warmup: int) -> None:
    for round_no in range(warmup + runs):
        for command in commands:
            result = checked(command.argv, command.env or env)
            if round_no >= warmup:
                command.seconds.append(result.seconds)
                command.cpu_seconds.append(result.cpu_seconds)


def refit_check(data_dir: Path, user: str, base: list[str], env: dict[str, str]) -> dict[str, Any]:
    """On a copy of `data_dir`: feedback, then recommend twice."""
    with tempfile.TemporaryDirectory(prefix="cli-latency-") as tmp:
        copy = Path(tmp) / "data"
        shutil.copytree(data_dir, copy)
        env = env | {"PERSONAE_DATA_DIR": str(copy)}
        recommend = [*base, "recommend", user, "--no-rerank", "--k", "5"]
        top = json.loads(checked([*recommend, "--json"], env).stdout)["items"][0]["item_id"]
        feedback = checked([*base, "feedback", user, top, "liked"], env)
        after = checked(recommend, env)
        again = checked(recommend, env)
    said = [line for line in after.stderr.splitlines() if "refitting" in line]
    return {
        "feedback": f"user {user} liked item {top}",
        "feedback_s": round(feedback.seconds, 3),
        "recommend_after_feedback_s": round(after.seconds, 3),
        "said": said,
        "refit_lines": len(said),
        "recommend_again_s": round(again.seconds, 3),
        "again_said": [line for line in again.stderr.splitlines() if "refitting" in line],
    }


def table(baseline: Timed, commands: list[Timed]) -> str:
    head = (
        f"{'command':<36} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio':>7} "
        f"{'cpu s':>7} {'target':>7}"
    )
    lines = [head, "-" * len(head)]
    for c in [baseline, *commands]:
        ratio = c.median / baseline.median
        target = f"<{c.target_s:g} s" if c.target_s else ""
        mark = (" ok" if c.median < c.target_s else " MISSED") if c.target_s else ""
        lines.append(
            f"{c.label:<36} {c.median:>9.3f} {min(c.seconds):>7.3f} {max(c.seconds):>7.3f} "
            f"{ratio:>6.1f}x {statistics.median(c.cpu_seconds):>7.3f} {target:>7}{mark}"
        )
    return "\n".join(lines)


def side_by_side(commands: list[Timed]) -> str:
    """Medians of each command from the tree under test and from --before."""
    before = {c.label.removesuffix(BEFORE): c for c in commands if c.label.endswith(BEFORE)}
    head = f"{'command':<36} {'before s':>9} {'after s':>9} {'before cpu':>11} {'after cpu':>10}"
    lines = [head, "-" * len(head)]
    for c in commands:
        if c.label in before:
            b = before[c.label]
            cpu_b, cpu_c = statistics.median(b.cpu_seconds), statistics.median(c.cpu_seconds)
            lines.append(
                f"{c.label:<36} {b.median:>9.3f} {c.median:>9.3f} {cpu_b:>11.3f} {cpu_c:>10.3f}"
            )
    return "\n".join(lines)


BEFORE = " [before]"
LABELS = ("--help", "stats --json", "similar USER", "recommend USER --no-rerank --k 5")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed rounds (median of these)")
    parser.add_argument("--warmup", type=int, default=1, help="discarded rounds first")
    parser.add_argument("--user", default="1", help="a profiled user")
    parser.add_argument("--no-refit", action="store_true", help="skip the feedback/refit check")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--before", type=Path, help="source tree to time in the same rounds")
    parser.add_argument("--before-data", type=Path, help="data dir for --before (default DIR)")
    args = parser.parse_args()
    data_dir = Path(os.environ.get("PERSONAE_DATA_DIR", "")).expanduser()
    if not os.environ.get("PERSONAE_DATA_DIR") or not data_dir.is_dir():
        raise SystemExit("set PERSONAE_DATA_DIR to a prepared data dir (see the docstring)")
    env = dict(os.environ)
    base = [sys.executable, str(personae_script())]
    baseline = Timed("python -c pass", [sys.executable, "-c", "pass"])
    variants: list[tuple[str, dict[str, str] | None]] = [("", None)]
    if args.before is not None:
        before_data = args.before_data or data_dir
        before_env = env | {"PYTHONPATH": str(args.before.resolve()),
                            "PERSONAE_DATA_DIR": str(before_data)}  # fmt: skip
        variants.append((BEFORE, before_env))
    commands = [
        Timed(
            label + suffix,
            [*base, *label.replace("USER", args.user).split()],
            target_s=None if suffix else TARGETS_S.get(label),
            env=variant_env,
        )
        for label in LABELS
        for suffix, variant_env in variants
    ]
    # Models and the user's query vector current before timing (this may fit them once).
    for _, variant_env in variants:
        checked([*base, "index", "models"], variant_env or env)
    load_before = os.getloadavg()
    time_commands([baseline, *commands], env, args.runs, args.warmup)
    report: dict[str, Any] = {
        "runs": args.runs,
        "warmup": args.warmup,
        "data_dir": str(data_dir),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "cpus": os.cpu_count(),
        "commands": [
            {k: v for k, v in asdict(c).items() if k != "env"}  # not the environment
            | {
                "median_s": round(c.median, 3),
                "ratio": round(c.median / baseline.median, 2),
                "median_cpu_s": round(statistics.median(c.cpu_seconds), 3),
            }
            for c in [baseline, *commands]
        ],
    }
    if not args.no_refit:
        report["refit"] = refit_check(data_dir, args.user, base, env)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    print(table(baseline, commands))
    if args.before is not None:
        print()
        print(side_by_side(commands))
    print(f"load average (1, 5, 15 min) before {load_before}, after {os.getloadavg()}")
    refit = report.get("refit")
    if refit:
        print(
            f"after feedback ({refit['feedback']}): recommend {refit['recommend_after_feedback_s']}"
            f" s, said {refit['said']}; next recommend {refit['recommend_again_s']} s, "
            f"said {refit['again_said'] or 'nothing'}"
        )


if __name__ == "__main__":
    main()
