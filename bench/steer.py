"""Steerability: do recommendations follow a user's own profile edits (issue 31)?

    PERSONAE_DATA_DIR=/work/evaldata python bench/steer.py [--users 60] [--control 30]
        [--k 10] [--seed 0] [--workdir /tmp/personae-steer] [--ranker] [--json]

Works on a COPY of the data dir (the record through SQLite's backup API, the Chroma folder
copied; eval outputs left out), never on the data dir itself. Users without a profile get a
pure `edit` version first (facts only, no LLM), so no LLM is needed; users with an LLM profile
keep it. Recommendations are `recommend --no-rerank`'s (no LLM), by fusion unless `--ranker`
(a fitted ranker's order, when one is fitted for the data).

Per edited user (picked at random among users with at least 20 ratings):
- dislike: the category filling the largest part of their top k (at least 20%) is added as a
  dislike (`profile edit --add-dislike`); its share of the new top k (target <= 10%);
- restore: the dislike removed (`--remove`), the top k must equal the first one exactly;
- interest: the category with the most candidates outside the top k, among those filling at
  most 10% of it, is added as an interest; its share must rise; removed again, restored;
- never: the disliked category as `--never`: its share must be 0; `--allow-again` restores.
Control users (`--control`, never edited) are recommended before and after all the edits:
their lists must be unchanged (accuracy invariance without a metric: same lists, same NDCG).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.profiles.edits import (
    EditRequest,
    ProfileEdits,
    apply_edit,
    blank_profile,
    edit_version,
)
from agent.recommend.service import Recommender
from agent.store.profiles import ProfileStore
from agent.store.record import DB_NAME, RecordStore

MIN_RATINGS = 20
MIN_SHARE = 0.2
TARGET_SHARE = 0.1

Top = list[tuple[str, tuple[str, ...]]]


def copy_data_dir(source: Path, workdir: Path) -> None:
    """A consistent copy: the record through the backup API (safe while another process
    writes it), the Chroma folder as files; `evals/` and failure logs are left out."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    src = sqlite3.connect(f"file:{source / DB_NAME}?mode=ro", uri=True)
    dst = sqlite3.connect(workdir / DB_NAME)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    for entry in source.iterdir():
        if entry.is_dir() and entry.name not in {"evals", "failures"}:
            shutil.copytree(entry, workdir / entry.name)


def recommender(settings: Settings, record: RecordStore, use_ranker: bool) -> Recommender:
    from agent.cli.recommend_cmds import item_vectors
    from agent.embeddings import load_embedder
    from agent.store.query_vectors import CachedEmbedder, cache_folder

    embedder = CachedEmbedder(load_embedder(settings), cache_folder(settings.data_dir))
    return Recommender(settings, record, item_vectors(settings, embedder), use_ranker=use_ranker)


def share(top: Top, category: str) -> float:
    return sum(category in cats for _, cats in top) / len(top) if top else 0.0


class Bench:
    def __init__(self, rec: Recommender, k: int) -> None:
        self.rec, self.k = rec, k
        self.seconds: list[float] = []

    def top(self, user: str) -> Top:
        started = time.perf_counter()
        result = self.rec.recommend(user, k=self.k, rerank_with_llm=False)
        self.seconds.append(time.perf_counter() - started)
        return [(r.item_id, tuple(r.categories)) for r in result.items]

    def edit(self, user: str, **request: list[str]) -> None:
        apply_edit(self.rec.record, user, EditRequest(**request))

    def interest_category(self, user: str, top: Top, avoid: str) -> str | None:
        """The category most present among the candidates outside the top k, of those
        filling at most `TARGET_SHARE` of it (3 candidates at least)."""
        shown = {i for i, _ in top}
        pool = Counter(
            c
            for f in self.rec.retrieve(user).fused
            if f.item_id not in shown
            for c in self.rec.item_meta[f.item_id].categories
        )
        fits = [(n, c) for c, n in pool.items()
                if c != avoid and n >= 3 and share(top, c) <= TARGET_SHARE]  # fmt: skip
        return max(fits, key=lambda nc: (nc[0], nc[1]))[1] if fits else None

    def run_user(self, user: str) -> dict[str, Any] | None:
        base = self.top(user)
        counts = Counter(c for _, cats in base for c in cats)
        if not counts:
            return None
        disliked, _ = max(counts.items(), key=lambda cn: (cn[1], cn[0]))
        if share(base, disliked) < MIN_SHARE:
            return None
        row: dict[str, Any] = {"user": user, "disliked": disliked,
                               "dislike_before": share(base, disliked)}  # fmt: skip
        self.edit(user, add_dislikes=[disliked])
        row["dislike_after"] = share(self.top(user), disliked)
        self.edit(user, remove=[disliked])
        row["dislike_restored"] = self.top(user) == base
        liked = self.interest_category(user, base, disliked)
        row["liked"] = liked
        if liked is not None:
            row["interest_before"] = share(base, liked)
            self.edit(user, add_interests=[liked])
            row["interest_after"] = share(self.top(user), liked)
            self.edit(user, remove=[liked])
            row["interest_restored"] = self.top(user) == base
        self.edit(user, never=[disliked])
        row["never_after"] = share(self.top(user), disliked)
        self.edit(user, allow_again=[disliked])
        row["never_restored"] = self.top(user) == base
        return row


def ensure_profiles(record: RecordStore, users: list[str]) -> int:
    """A pure `edit` version (facts only) for each user without a profile; how many."""
    store, written = ProfileStore(record), 0
    for user in users:
        if store.get(user) is None:
            blank = blank_profile(record, user)
            if blank is not None:
                store.add(edit_version(None, ProfileEdits(), 1, blank))
                written += 1
    return written


def summarize(rows: list[dict[str, Any]], controls: dict[str, bool], seconds: list[float],
              skipped: int) -> dict[str, Any]:  # fmt: skip
    def mean(key: str, among: list[dict[str, Any]]) -> float | None:
        values = [r[key] for r in among if r.get(key) is not None]
        return round(statistics.fmean(values), 4) if values else None

    liked = [r for r in rows if r.get("liked")]
    return {
        "users_edited": len(rows),
        "users_skipped": skipped,
        "dislike_share_before": mean("dislike_before", rows),
        "dislike_share_after": mean("dislike_after", rows),
        "dislike_users_at_target": sum(r["dislike_after"] <= TARGET_SHARE for r in rows),
        "dislike_restored": sum(r["dislike_restored"] for r in rows),
        "interest_users": len(liked),
        "interest_share_before": mean("interest_before", liked),
        "interest_share_after": mean("interest_after", liked),
        "interest_users_rising": sum(r["interest_after"] > r["interest_before"] for r in liked),
        "interest_restored": sum(r["interest_restored"] for r in liked),
        "never_share_after": mean("never_after", rows),
        "never_restored": sum(r["never_restored"] for r in rows),
        "control_users": len(controls),
        "control_unchanged": sum(controls.values()),
        "recommend_p50_s": round(statistics.median(seconds), 3) if seconds else None,
    }


def table(summary: dict[str, Any], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    s, n = summary, summary["users_edited"]
    grid = Table(title=title)
    for name in ("measure", "before", "after", "users"):
        grid.add_column(name)
    grid.add_row(
        "dislike: its share of the top k",
        f"{s['dislike_share_before']:.1%}",
        f"{s['dislike_share_after']:.1%}",
        f"{s['dislike_users_at_target']}/{n} at <= {TARGET_SHARE:.0%}",
    )
    grid.add_row("dislike removed: list restored exactly", "", "", f"{s['dislike_restored']}/{n}")
    grid.add_row(
        "interest: its share of the top k",
        f"{s['interest_share_before']:.1%}",
        f"{s['interest_share_after']:.1%}",
        f"{s['interest_users_rising']}/{s['interest_users']} rising",
    )
    grid.add_row(
        "interest removed: list restored exactly",
        "",
        "",
        f"{s['interest_restored']}/{s['interest_users']}",
    )
    grid.add_row(
        "never: the category's share",
        f"{s['dislike_share_before']:.1%}",
        f"{s['never_share_after']:.1%}",
        "",
    )
    grid.add_row("allow-again: list restored exactly", "", "", f"{s['never_restored']}/{n}")
    grid.add_row("unedited users: list unchanged", "", "",
                 f"{s['control_unchanged']}/{s['control_users']}")  # fmt: skip
    Console(stderr=True).print(grid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=60, help="Users to edit.")
    parser.add_argument("--control", type=int, default=30, help="Users never edited.")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/personae-steer"))
    parser.add_argument("--ranker", action="store_true", help="Use a fitted ranker's order.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    source = Settings().data_dir
    if args.workdir.resolve() == source.resolve():
        parser.error("--workdir must not be the data dir: the bench edits profiles")
    started = time.perf_counter()
    copy_data_dir(source, args.workdir)
    settings = Settings(data_dir=args.workdir)
    with RecordStore.at(args.workdir) as record:
        rows_of = record.conn.execute(
            "SELECT user_id FROM interactions WHERE rating IS NOT NULL GROUP BY user_id"
            " HAVING count(*) >= ? ORDER BY user_id", (MIN_RATINGS,)
        ).fetchall()  # fmt: skip
        users = random.Random(args.seed).sample([r[0] for r in rows_of], len(rows_of))
        edited, controls = users[: args.users * 2], users[args.users * 2 :][: args.control]
        blanks = ensure_profiles(record, edited + controls)
        rec = recommender(settings, record, args.ranker)
        bench = Bench(rec, args.k)
        before = {u: bench.top(u) for u in controls}
        rows: list[dict[str, Any]] = []
        skipped = 0
        for user in edited:  # twice as many drawn: some fill no category to 20%
            if len(rows) == args.users:
                break
            row = bench.run_user(user)
            if row is None:
                skipped += 1
            else:
                rows.append(row)
                if len(rows) % 10 == 0:
                    print(f"{len(rows)} users edited", file=sys.stderr, flush=True)
        unchanged = {u: bench.top(u) == before[u] for u in controls}
        ordering = "ranker" if rec.ranker() is not None else "fusion"
    summary = summarize(rows, unchanged, bench.seconds, skipped)
    summary |= {"k": args.k, "seed": args.seed, "ordering": ordering, "blank_profiles": blanks,
                "steer_strength": settings.steer_strength, "source": str(source),
                "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    title = (f"steerability, {summary['users_edited']} users, top {args.k}, {ordering}, "
             f"steer_strength {settings.steer_strength}")  # fmt: skip
    table(summary, title)
    if args.json:
        print(json.dumps({"summary": summary, "users": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
