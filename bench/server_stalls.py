"""How much of a batch a vLLM server spent with requests held back, read from its log.

    python bench/server_stalls.py SERVER_LOG [--since HH:MM:SS] [--until HH:MM:SS] [--json]

vLLM logs one line per interval (about 10 s) with the requests running, waiting and
`Deferred` (held back by a transient constraint, vLLM's words; a grammar still compiling
is one), and the prompt and generation throughput. This counts, between two times
of the log, the intervals with deferred requests and those that also made no progress (no
prompt and no generated tokens while requests were waiting). Use it on the log of a server
that ran one batch alone, e.g. `personae serve` (log: stdout) during `personae profile
--sample 32 --base-url ...`. Measured here (vLLM 0.32 CPU), a batch whose users share one
schema showed as many deferred intervals as one with a schema per user: deferral is not only
grammar compiling, so compare runs rather than read one share as compile time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

LINE = re.compile(
    r"(?P<time>\d\d:\d\d:\d\d) \[loggers\.py:\d+\] Engine \d+: "
    r"Avg prompt throughput: (?P<prompt>[\d.]+) tokens/s, "
    r"Avg generation throughput: (?P<gen>[\d.]+) tokens/s, "
    r"Running: (?P<running>\d+) reqs, Waiting: (?P<waiting>\d+) reqs"
    r"(?:, Deferred: (?P<deferred>\d+) reqs)?"
)


@dataclass
class Stalls:
    intervals: int
    with_deferred: int
    stalled: int
    """Intervals with deferred requests and neither prompt nor generated tokens."""
    generated_tokens_est: float

    @property
    def stalled_share(self) -> float:
        return self.stalled / self.intervals if self.intervals else 0.0

    @property
    def deferred_share(self) -> float:
        return self.with_deferred / self.intervals if self.intervals else 0.0


def read(log: Path, since: str | None, until: str | None) -> Stalls:
    rows = []
    for line in log.read_text(errors="replace").splitlines():
        match = LINE.search(line)
        if match is None:
            continue
        when = match["time"]
        if (since and when < since) or (until and when > until):
            continue
        rows.append(match)
    deferred = [r for r in rows if int(r["deferred"] or 0) > 0]
    stalled = [r for r in deferred if float(r["prompt"]) == 0 and float(r["gen"]) == 0]
    generated = sum(float(r["gen"]) * 10 for r in rows)
    return Stalls(len(rows), len(deferred), len(stalled), round(generated))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--since", help="first log time to count (HH:MM:SS)")
    parser.add_argument("--until", help="last log time to count (HH:MM:SS)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.log.is_file():
        sys.exit(f"{args.log}: no such file")
    stalls = read(args.log, args.since, args.until)
    found = asdict(stalls) | {
        "deferred_share": round(stalls.deferred_share, 3),
        "stalled_share": round(stalls.stalled_share, 3),
    }
    if args.json:
        print(json.dumps(found, indent=2))
        return
    print(
        f"{stalls.intervals} log intervals: {stalls.with_deferred} with deferred requests "
        f"({stalls.deferred_share:.0%}), {stalls.stalled} of them without progress "
        f"({stalls.stalled_share:.0%}); ~{stalls.generated_tokens_est} tokens generated"
    )


if __name__ == "__main__":
    main()
