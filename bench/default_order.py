"""The order `recommend` gave by default before and after issue 34, on the same users and
candidates (llmrank), from two finished eval runs of the same users and seed:

    RERANKED  eval run --protocol llmrank --users N --seed S --shuffles 1 --no-rank
              (the LLM's scored ranks of every candidate list)
    RANKED    eval run --no-llm --protocol llmrank --users N --seed S
              (the learned ranker without LLM features, as `rank fit` trains it)

before: the ranker's order with the LLM rank blended in at the old default weight (0.5),
        which is what `Recommender.final_order` did on top of a fitted ranker;
after:  the ranker's order (the LLM writes reasons only).

Usage: PYTHONPATH=. python bench/default_order.py RERANKED_RUN RANKED_RUN [--weight 0.5]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evals.execute import load_records
from evals.metrics import bootstrap, metric, paired_bootstrap, rank_of
from evals.protocols import blended_order

METRIC = "ndcg@10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reranked", type=Path)
    parser.add_argument("ranked", type=Path)
    parser.add_argument("--weight", type=float, default=0.5)
    parser.add_argument("--system", default="ranker-no-llm")
    args = parser.parse_args()
    llm = {r.user_id: r for r in load_records(args.reranked)}
    ranked = {r.user_id: r for r in load_records(args.ranked)}
    users = sorted(set(llm) & set(ranked))
    before, after = [], []
    for user in users:
        a, b = llm[user].protocols["llmrank"], ranked[user].protocols["llmrank"]
        if a.candidates != b.candidates:
            raise SystemExit(f"user {user}: the runs drew different candidates")
        order = b.systems[args.system].top
        after.append(metric(METRIC, rank_of(ranked[user].target, order)))
        blended = blended_order(order, a.rerank, args.weight)
        before.append(metric(METRIC, rank_of(ranked[user].target, blended)))
    intervals = {
        f"before ({args.system} + LLM blend w={args.weight:g})": bootstrap(before, 1000, 0),
        f"after ({args.system})": bootstrap(after, 1000, 0),
        "after - before (paired)": paired_bootstrap(before, after, 1000, 0),
    }
    report: dict[str, object] = {"users": len(users)}
    for name, v in intervals.items():
        report[name] = {"mean": round(v.mean, 2), "low": round(v.low, 2), "high": round(v.high, 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
