"""Issue 29's reasons measured for truth and variety: the no-LLM retrieval reasons, and with
`--llm` the LLM's reasons beside them.

    PERSONAE_DATA_DIR=DIR python bench/reasons.py [--users 100] [--k 5] [--seed 0] [--json]
    PERSONAE_DATA_DIR=DIR python bench/reasons.py --llm --base-url URL [--concurrency 1]
        (PERSONAE_REASONS_PROMPT_VERSION=1 for the prompt before issue 29)

On an ingested data dir (the bundled ML-100K), EASE is fitted on every user's training prefix
the way `eval run` does (`evals.splits.build_stage`, the test stage; λ and max items from the
settings), so no held-out event is seen. For `--users` users (seeded, `choose_users`) the top
`--k` unseen items by EASE get their evidence (`agent.reasons.evidence`, with the user's stored
profile for the interests it matches, when there is one) and the reason `recommend
--no-rerank` would show (`retrieval_reason`, with the collaborative hit). With `--llm` the
server at `--base-url` (never a server started here) writes the reasons through exactly the
code `recommend` runs (`shown_reasons.reasons_for_shown`: prompt, schema, slot mapping,
checks); an item whose LLM reason is left out shows its retrieval reason, as in `recommend`.

Each column is checked against the items' computed evidence the same way: faithfulness, the
deletion test (cited vs as many random history items), false claims, distinct-1/2, template
rate, example-copy rate against the reasons prompt's fixed text. Columns: `retrieval`; `llm`
(what `recommend` shows: kept LLM reasons, retrieval reasons for the rest); `llm_drafts` (every
decoded LLM reason, before the checks). Nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

from agent.config import Settings
from agent.recommend.collaborative import fit_ease
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore
from evals.reasons_stage import ReasonsRun, llm_figures, reasons_prompt, run_users
from evals.sampling import choose_users
from evals.splits import Stage, build_stage, load_histories

if TYPE_CHECKING:
    from agent.runtime.structured import StructuredGenerator


def command_line() -> str:
    data_dir = os.environ.get("PERSONAE_DATA_DIR")
    env = f"PERSONAE_DATA_DIR={shlex.quote(data_dir)} " if data_dir else ""
    version = os.environ.get("PERSONAE_REASONS_PROMPT_VERSION")
    env += f"PERSONAE_REASONS_PROMPT_VERSION={shlex.quote(version)} " if version else ""
    return env + "python " + " ".join(shlex.quote(a) for a in sys.argv)


def run(
    settings: Settings,
    users: int,
    k: int,
    seed: int,
    generator: StructuredGenerator | None = None,
    concurrency: int = 1,
) -> dict[str, Any]:
    with RecordStore.at(settings.data_dir) as record:
        histories = load_histories(record)
        items = {item.item_id: item for item in record.iter_items()}
        data = build_stage(histories, Stage.TEST, settings.eval_history_cap,
                           settings.eval_min_history)  # fmt: skip
        chosen = choose_users(list(data.splits), users, seed)
        store = ProfileStore(record)
        profiles = {u: p for u in chosen if (p := store.get(u)) is not None}
    started = time.perf_counter()
    lam, max_items = settings.collaborative_lambda, settings.collaborative_max_items
    ease = fit_ease(data.train_pairs, lam, max_items)
    fit_s = time.perf_counter() - started
    catalog = sorted({c for item in items.values() for c in item.categories})
    made = ReasonsRun(ease, items, catalog, seed)
    prompt, grams = reasons_prompt(settings.reasons_prompt_version)
    started = time.perf_counter()
    asyncio.run(run_users(made, chosen, data.splits, profiles, k, generator, concurrency))
    per_user_s = (time.perf_counter() - started) / max(len(chosen), 1)
    llm = None if generator is None else llm_figures(made, generator, prompt, concurrency)
    report = made.report(k, len(profiles), prompt, grams, llm).model_dump()
    found: dict[str, Any] = {
        "command": command_line(),
        "data_dir": str(settings.data_dir),
        "users": len(chosen),
        "profiles": len(profiles),
        "k": k,
        "seed": seed,
        "lambda": lam,
        "max_items": max_items,
        "copy_prompt": prompt,
        "fit_s": round(fit_s, 3),
        "seconds_per_user": round(per_user_s, 4),
        "summary": report["columns"]["retrieval"],
        "columns": report["columns"],
        "examples": report["examples"],
    }
    if llm is not None:
        found["llm"] = llm
    return found


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


ROWS = [
    ("reasons", "reasons"),
    ("faithfulness (cited in top-3 contributors)", "faithfulness"),
    ("uncited rate", "uncited_rate"),
    ("deletion drop, cited / random (ratio)", "deletion_ratio"),
    ("  mean score drop cited", "deletion_cited_drop"),
    ("  mean score drop random", "deletion_random_drop"),
    ("  mean rank drop cited", "deletion_cited_rank_drop"),
    ("  mean rank drop random", "deletion_random_rank_drop"),
    ("false-claim rate", "false_claim_rate"),
    ("  false category rate", "false_category_rate"),
    ("  seen-claim rate", "seen_claim_rate"),
    ("distinct-1", "distinct_1"),
    ("distinct-2", "distinct_2"),
    ("template rate", "template_rate"),
    ("  opening 3-word rate", "opening_3_rate"),
    ("example-copy rate", "copy_rate"),
]


def table(found: dict[str, Any]) -> str:
    columns: dict[str, dict[str, Any]] = found["columns"]
    rows = [(name, [fmt(c[key]) for c in columns.values()]) for name, key in ROWS]
    rows.append(("  template", [repr(c["template"]) for c in columns.values()]))
    width = max(len(name) for name, _ in rows)
    cells = max(12, *(len(v) for _, values in rows[:-1] for v in values))
    lines = [f"$ {found['command']}",
             f"{found['users']} users ({found['profiles']} with a stored profile), "
             f"K={found['k']}, seed {found['seed']}, EASE λ={found['lambda']:g}, test-stage "
             f"prefixes; copy rate against {found['copy_prompt']}"]  # fmt: skip
    lines.append(f"{'':<{width}}  " + "  ".join(f"{c:<{cells}}" for c in columns))
    lines += [f"{n:<{width}}  " + "  ".join(f"{v:<{cells}}" for v in vs) for n, vs in rows]
    llm = found.get("llm")
    if llm is None:
        lines.append(f"seconds per user (EASE fit apart): {found['seconds_per_user']}, "
                     f"EASE fit {found['fit_s']} s")  # fmt: skip
    else:
        lines += [
            f"LLM: {llm['model']}, {llm['prompt']}, concurrency {llm['concurrency']}: "
            f"{llm['tokens_in_per_user']} tokens in, {llm['tokens_out_per_user']} out, "
            f"{llm['seconds_per_user']} s per user; {llm['failed_users']} users failed",
            f"kept {llm['kept']} LLM reasons; left out for citing nothing {llm['uncited']}, "
            f"for a false claim {llm['false_claims']}; driver numbers dropped "
            f"{llm['missing_slots']}",
        ]
        lines += [f"  left out ({r['user']}, {r['item']}): {r['reason']!r}: {r['why']}"
                  for r in llm["rejected"][:5]]  # fmt: skip
    for user, shown in found["examples"].items():
        lines.append(f"user {user}:")
        lines += [f"  {e['title']} [{e['by']}]: {e['reason']}" for e in shown]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--llm", action="store_true", help="also the LLM's reasons")
    parser.add_argument("--base-url", help="OpenAI-compatible server (--llm needs one)")
    parser.add_argument("--concurrency", type=int, default=1, help="users in flight (--llm)")
    args = parser.parse_args()
    if args.llm and not args.base_url:
        parser.error("--llm needs --base-url: this bench never starts a server")
    settings = Settings(base_url=args.base_url) if args.llm else Settings()
    if args.llm:
        from agent.runtime.endpoint import open_generator

        with open_generator(settings) as generator:
            found = run(settings, args.users, args.k, args.seed, generator, args.concurrency)
    else:
        found = run(settings, args.users, args.k, args.seed)
    if args.json:
        json.dump(found, sys.stdout, indent=2)
        print()
    else:
        print(table(found))


if __name__ == "__main__":
    main()
