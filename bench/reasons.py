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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent.config import Settings
from agent.profiles.copying import prompt_ngrams
from agent.prompts import load_prompt
from agent.reasons.checks import ReasonCheck, check_reason
from agent.reasons.deletion import Deletion, deletion_test
from agent.reasons.evidence import CITABLE_DRIVERS, ItemEvidence, ratings_of, shown_evidence
from agent.reasons.summary import summarize
from agent.recommend.candidates import Source
from agent.recommend.collaborative import EaseModel, fit_ease
from agent.recommend.fusion import SourceHit
from agent.recommend.reasons import retrieval_reason
from agent.schemas import Item
from agent.schemas.profile import UserProfile
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore
from evals.sampling import choose_users
from evals.splits import Stage, UserSplit, build_stage, load_histories

if TYPE_CHECKING:
    from agent.runtime.structured import StructuredGenerator

COLUMNS = ("retrieval", "llm", "llm_drafts")
NO_PROFILE = UserProfile.model_construct(interests=[])
"""For users without a stored profile (`retrieval_reason` reads its interests only)."""


def command_line() -> str:
    data_dir = os.environ.get("PERSONAE_DATA_DIR")
    env = f"PERSONAE_DATA_DIR={shlex.quote(data_dir)} " if data_dir else ""
    version = os.environ.get("PERSONAE_REASONS_PROMPT_VERSION")
    env += f"PERSONAE_REASONS_PROMPT_VERSION={shlex.quote(version)} " if version else ""
    return env + "python " + " ".join(shlex.quote(a) for a in sys.argv)


@dataclass
class Column:
    texts: list[str] = field(default_factory=list)
    checks: list[ReasonCheck] = field(default_factory=list)
    deletions: list[Deletion | None] = field(default_factory=list)


@dataclass
class Tally:
    """What the LLM stage cost and what the checks left out, over the users."""

    users: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    kept: int = 0
    missing_slots: int = 0
    uncited: int = 0
    false_claims: int = 0
    unusable: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Bench:
    settings: Settings
    ease: EaseModel
    items: dict[str, Item]
    catalog: list[str]
    seed: int
    columns: dict[str, Column] = field(default_factory=lambda: {c: Column() for c in COLUMNS})
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, column: str, user: str, split: UserSplit, evidence: ItemEvidence,
            text: str, cited: list[str]) -> None:  # fmt: skip
        found = self.columns[column]
        # names a reason may hold: its cited items' titles and the drivers the prompt showed
        names = [self.items[c].title for c in cited if c in self.items]
        names += [d.title for d in evidence.drivers[:CITABLE_DRIVERS]]
        found.checks.append(check_reason(text, cited, evidence, self.catalog, names))
        found.deletions.append(
            deletion_test(self.ease, split.prefix_positive, evidence.item_id, cited,
                          split.prior, self.seed, user_id=user)
        )  # fmt: skip
        found.texts.append(text)

    def items_of(self, ids: list[str]) -> dict[str, Item]:
        return {i: self.items[i] for i in dict.fromkeys(ids) if i in self.items}


async def llm_user(
    bench: Bench,
    generator: StructuredGenerator,
    user: str,
    split: UserSplit,
    evidence: dict[str, ItemEvidence],
    profile: UserProfile | None,
    tally: Tally,
) -> dict[str, tuple[str, list[str]]]:
    """The LLM's reasons kept for one user's shown items (what `recommend` would show)."""
    from agent.recommend.shown_reasons import reasons_for_shown

    started = time.perf_counter()
    made = await reasons_for_shown(bench.settings, generator, user, evidence, bench.catalog,
                                   profile, split.prefix, bench.items_of)  # fmt: skip
    tally.seconds += time.perf_counter() - started
    tally.users += 1
    tally.failed += made.error is not None
    if made.meta is not None:
        tally.tokens_in += made.meta.tokens_in
        tally.tokens_out += made.meta.tokens_out
    tally.kept += len(made.picks)
    tally.missing_slots += made.missing_slots
    tally.uncited += made.uncited
    tally.false_claims += made.false_claims
    tally.unusable += made.unusable
    tally.rejected += [{"user": user, "item": evidence[i].title, "reason": made.drafts[i].reason,
                        "why": why} for i, why in made.rejected.items()]  # fmt: skip
    for item_id, draft in made.drafts.items():
        bench.add("llm_drafts", user, split, evidence[item_id], draft.reason, draft.cited)
    return {i: (p.reason, p.cited) for i, p in made.picks.items()}


async def run_users(
    bench: Bench,
    chosen: Sequence[str],
    splits: dict[str, UserSplit],
    profiles: dict[str, UserProfile],
    k: int,
    generator: StructuredGenerator | None,
    concurrency: int,
    tally: Tally,
) -> None:
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(user: str) -> None:
        split = splits[user]
        history = split.prefix_positive
        titles = {e.item_id: bench.items[e.item_id].title for e in split.prefix
                  if e.item_id in bench.items}  # fmt: skip
        top = [h for h in bench.ease.recommend(history, k, split.prior) if h.item_id in bench.items]
        profile = profiles.get(user)
        shown = [h.item_id for h in top]
        evidence = shown_evidence(bench.ease, history, bench.items, shown, titles,
                                  profile=profile, ratings=ratings_of(split.prefix))  # fmt: skip
        retrieval = {}
        for rank, hit in enumerate(top, start=1):
            hits = {Source.COLLABORATIVE: SourceHit(rank, hit.score)}
            made = retrieval_reason(bench.items[hit.item_id], hits, profile or NO_PROFILE,
                                    evidence[hit.item_id], titles)  # fmt: skip
            retrieval[hit.item_id] = (made.text, made.cited)
        llm: dict[str, tuple[str, list[str]]] = {}
        if generator is not None and evidence:
            async with gate:
                llm = await llm_user(bench, generator, user, split, evidence, profile, tally)
        for item_id, (text, cited) in retrieval.items():
            bench.add("retrieval", user, split, evidence[item_id], text, cited)
            shown, by = ((text, cited), "retrieval")
            if item_id in llm:
                shown, by = llm[item_id], "llm"
            if generator is not None:
                bench.add("llm", user, split, evidence[item_id], *shown)
            if len(bench.examples) < 2 or user in bench.examples:
                bench.examples.setdefault(user, []).append(
                    {"item": evidence[item_id].title, "reason": shown[0], "cited": shown[1],
                     "by": by, "retrieval": text}
                )  # fmt: skip

    await asyncio.gather(*(one(u) for u in chosen))


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
    bench = Bench(settings, ease, items, catalog, seed)
    prompt = load_prompt("reasons", settings.reasons_prompt_version)
    grams = prompt_ngrams(prompt.id, prompt.version)
    tally = Tally()
    started = time.perf_counter()
    asyncio.run(run_users(bench, chosen, data.splits, profiles, k, generator, concurrency, tally))
    per_user_s = (time.perf_counter() - started) / max(len(chosen), 1)
    names = COLUMNS if generator is not None else COLUMNS[:1]
    columns = {
        name: summarize(c.texts, c.checks, c.deletions, grams).model_dump()
        for name, c in bench.columns.items()
        if name in names
    }
    found: dict[str, Any] = {
        "command": command_line(),
        "data_dir": str(settings.data_dir),
        "users": len(chosen),
        "profiles": len(profiles),
        "k": k,
        "seed": seed,
        "lambda": lam,
        "max_items": max_items,
        "copy_prompt": f"{prompt.id} v{prompt.version}",
        "fit_s": round(fit_s, 3),
        "seconds_per_user": round(per_user_s, 4),
        "summary": columns["retrieval"],
        "columns": columns,
        "examples": bench.examples,
    }
    if generator is not None:
        n = max(tally.users, 1)
        found["llm"] = {
            "model": generator.model_name,
            "prompt": f"{prompt.id} v{prompt.version}",
            "concurrency": concurrency,
            "users": tally.users,
            "failed_users": tally.failed,
            "tokens_in_per_user": round(tally.tokens_in / n, 1),
            "tokens_out_per_user": round(tally.tokens_out / n, 1),
            "seconds_per_user": round(tally.seconds / n, 3),
            "kept": tally.kept,
            "missing_slots": tally.missing_slots,
            "uncited": tally.uncited,
            "false_claims": tally.false_claims,
            "unusable": tally.unusable,
            "rejected": tally.rejected[:20],
        }
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
        lines += [f"  {e['item']} [{e['by']}]: {e['reason']}" for e in shown]
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
