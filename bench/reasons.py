"""The no-LLM baseline for issue 29: today's retrieval reasons, measured for truth and variety.

    PERSONAE_DATA_DIR=DIR python bench/reasons.py [--users 100] [--k 5] [--seed 0] [--json]

On an ingested data dir (the bundled ML-100K), EASE is fitted on every user's training prefix
the way `eval run` does (`evals.splits.build_stage`, the test stage; λ and max items from the
settings), so no held-out event is seen. For `--users` users (seeded, `choose_users`) the top
`--k` unseen items by EASE get the reason `recommend --no-rerank` would show
(`retrieval_reason`, with the collaborative hit; no profile, so no interest matches), and each
reason is checked against the item's computed evidence (`agent.reasons`): faithfulness, the
deletion test (cited vs as many random history items), false claims, distinct-1/2, template
rate, example-copy rate against the `reasons` prompt's fixed text. The LLM's reasons will be
measured the same way. No LLM, no embedder, nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from typing import Any

from agent.config import Settings
from agent.profiles.copying import prompt_ngrams
from agent.prompts import load_prompt
from agent.reasons.checks import ReasonCheck, check_reason
from agent.reasons.deletion import Deletion, deletion_test
from agent.reasons.evidence import item_evidence
from agent.reasons.summary import summarize
from agent.recommend.candidates import Source
from agent.recommend.collaborative import fit_ease
from agent.recommend.fusion import SourceHit
from agent.recommend.reasons import retrieval_reason
from agent.schemas.profile import UserProfile
from agent.store.record import RecordStore
from evals.sampling import choose_users
from evals.splits import Stage, build_stage, load_histories


def command_line() -> str:
    data_dir = os.environ.get("PERSONAE_DATA_DIR")
    env = f"PERSONAE_DATA_DIR={shlex.quote(data_dir)} " if data_dir else ""
    return env + "python " + " ".join(shlex.quote(a) for a in sys.argv)


def run(users: int, k: int, seed: int) -> dict[str, Any]:
    settings = Settings()
    with RecordStore.at(settings.data_dir) as record:
        histories = load_histories(record)
        items = {item.item_id: item for item in record.iter_items()}
    data = build_stage(histories, Stage.TEST, settings.eval_history_cap, settings.eval_min_history)
    chosen = choose_users(list(data.splits), users, seed)
    started = time.perf_counter()
    lam, max_items = settings.collaborative_lambda, settings.collaborative_max_items
    ease = fit_ease(data.train_pairs, lam, max_items)
    fit_s = time.perf_counter() - started
    catalog = sorted({c for item in items.values() for c in item.categories})
    no_profile = UserProfile.model_construct(interests=[])  # retrieval_reason reads interests
    prompt = load_prompt("reasons")
    texts: list[str] = []
    checks: list[ReasonCheck] = []
    deletions: list[Deletion | None] = []
    examples: dict[str, list[dict[str, Any]]] = {}
    started = time.perf_counter()
    for user in chosen:
        split = data.splits[user]
        history = split.prefix_positive
        titles = {e.item_id: items[e.item_id].title for e in split.prefix if e.item_id in items}
        top = ease.recommend(history, k, split.prior)
        for rank, hit in enumerate(top, start=1):
            item = items[hit.item_id]
            hits = {Source.COLLABORATIVE: SourceHit(rank, hit.score)}
            reason = retrieval_reason(item, hits, no_profile, history, titles, ease)
            evidence = item_evidence(ease, history, item, titles)
            cited_titles = [titles.get(c, c) for c in reason.cited]
            checks.append(check_reason(reason.text, reason.cited, evidence, catalog, cited_titles))
            deletions.append(
                deletion_test(ease, history, item.item_id, reason.cited, split.prior, seed,
                              user_id=user)
            )  # fmt: skip
            texts.append(reason.text)
            if len(examples) < 2 or user in examples:
                examples.setdefault(user, []).append(
                    {"item": item.title, "reason": reason.text, "cited": reason.cited}
                )
    per_user_s = (time.perf_counter() - started) / max(len(chosen), 1)
    summary = summarize(texts, checks, deletions, prompt_ngrams(prompt.id, prompt.version))
    return {
        "command": command_line(),
        "data_dir": str(settings.data_dir),
        "users": len(chosen),
        "k": k,
        "seed": seed,
        "lambda": lam,
        "max_items": max_items,
        "copy_prompt": f"{prompt.id} v{prompt.version}",
        "fit_s": round(fit_s, 3),
        "seconds_per_user": round(per_user_s, 4),
        "summary": summary.model_dump(),
        "examples": examples,
    }


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table(found: dict[str, Any]) -> str:
    s = found["summary"]
    rows = [
        ("reasons", s["reasons"]),
        ("faithfulness (cited in top-3 contributors)", s["faithfulness"]),
        ("uncited rate", s["uncited_rate"]),
        ("deletion drop, cited / random (ratio)", s["deletion_ratio"]),
        ("  mean score drop cited | random",
         f"{s['deletion_cited_drop']:.4f} | {s['deletion_random_drop']:.4f}"),
        ("  mean rank drop cited | random",
         f"{s['deletion_cited_rank_drop']:.1f} | {s['deletion_random_rank_drop']:.1f}"),
        ("false-claim rate", s["false_claim_rate"]),
        ("  false category | seen claim", f"{s['false_category_rate']:.3f} | "
                                          f"{s['seen_claim_rate']:.3f}"),
        ("distinct-1", s["distinct_1"]),
        ("distinct-2", s["distinct_2"]),
        ("template rate", s["template_rate"]),
        ("  template", repr(s["template"])),
        ("  opening 3-word rate", s["opening_3_rate"]),
        (f"example-copy rate ({found['copy_prompt']})", s["copy_rate"]),
        ("seconds per user (EASE fit apart)", found["seconds_per_user"]),
        ("EASE fit seconds", found["fit_s"]),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    lines = [f"$ {found['command']}",
             f"retrieval reasons (no LLM): {found['users']} users, K={found['k']}, "
             f"seed {found['seed']}, EASE λ={found['lambda']:g}, test-stage prefixes"]  # fmt: skip
    lines += [f"{name:<{width}}  {fmt(value)}" for name, value in rows]
    for user, shown in found["examples"].items():
        lines.append(f"user {user}:")
        lines += [f"  {e['item']}: {e['reason']}" for e in shown]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    found = run(args.users, args.k, args.seed)
    if args.json:
        json.dump(found, sys.stdout, indent=2)
        print()
    else:
        print(table(found))


if __name__ == "__main__":
    main()
