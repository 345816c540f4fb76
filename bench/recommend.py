"""Benchmark `personae recommend` on a prepared data dir (ingested, indexed, profiled).

    PERSONAE_DATA_DIR=DIR python bench/recommend.py [--users 20] [--k 10] [--rerank]
        [--base-url http://127.0.0.1:8011/v1] [--rounds 3] [--json]
    PERSONAE_DATA_DIR=DIR python bench/recommend.py --ranker [--candidates 200] [--users 50]

`--ranker` (needs `personae rank fit`, no profiles): the learned ranker scoring exactly
`--candidates` candidates for one user, features included (every source's catalog-wide scores
for the user, the feature matrix, LightGBM), against the fusion path over the same sources'
lists (EASE top, popularity top, weighted RRF; no Chroma query on either side), p50/p95.

Reports, per user: recommend latency p50/p95 with retrieval alone (profile lookup, dense query,
EASE, popularity, fusion, reasons) and, with --rerank, including the LLM re-rank; candidates
retrieved per second (every source's list, and fused); and, paired in the same loop on the
same query vector, the raw Chroma query alone and the raw embed + query, with the ratio of
personae's retrieval time to each. Model fitting/loading happens once in a warm-up and is
reported separately.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from contextlib import ExitStack
from typing import Any

import numpy as np

from agent.config import Settings
from agent.embeddings import SentenceTransformerEmbedder
from agent.recommend.dense import profile_query_text
from agent.recommend.service import Recommender
from agent.runtime.endpoint import open_generator
from agent.store.chroma import open_client
from agent.store.item_index import ItemIndex
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def ms(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(quantile(values, 0.5) * 1000, 2),
        "p95_ms": round(quantile(values, 0.95) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else 0.0,
    }


def raw_query(index: ItemIndex, rec: Recommender, user: str) -> tuple[float, float]:
    """(embed + query seconds, query-only seconds) for the same request the dense source
    makes: same text, same n, no filter."""
    profile = rec.profile_of(user)
    history = rec.record.history(user)
    wanted = min(
        rec.settings.retrieve_depth + len({e.item_id for e in history}), rec.catalog_size()
    )
    collection = index.get_collection()
    assert collection is not None
    started = time.perf_counter()
    vector = np.asarray(index.embedder.embed([profile_query_text(profile)]))
    embedded = time.perf_counter()
    collection.query(query_embeddings=vector, n_results=wanted, include=["metadatas", "distances"])
    done = time.perf_counter()
    return done - started, done - embedded


def bench_retrieval(rec: Recommender, users: list[str], k: int, rounds: int) -> dict[str, Any]:
    totals, raw_full, raw_query_only, sources, fused = [], [], [], 0, 0
    chroma_in_dense = []
    for _ in range(rounds):
        for user in users:
            started = time.perf_counter()
            result = rec.recommend(user, k, rerank_with_llm=False)
            totals.append(time.perf_counter() - started)
            chroma_in_dense.append(result.timings["dense_s"])
            retrieval = rec.retrieve(user)
            sources += sum(len(v) for v in retrieval.lists.values())
            fused += len(retrieval.fused)
            full, query_only = raw_query(rec.index, rec, user)
            raw_full.append(full)
            raw_query_only.append(query_only)
    seconds = sum(totals)
    return {
        "users": len(users),
        "rounds": rounds,
        "recommend_no_rerank": ms(totals),
        "dense_source": ms(chroma_in_dense),
        "raw_embed_and_chroma_query": ms(raw_full),
        "raw_chroma_query": ms(raw_query_only),
        "ratio_vs_raw_query_p50": round(quantile(totals, 0.5) / quantile(raw_query_only, 0.5), 2),
        "ratio_vs_raw_embed_query_p50": round(quantile(totals, 0.5) / quantile(raw_full, 0.5), 2),
        "source_candidates_per_s": round(sources / seconds, 1),
        "fused_candidates_per_s": round(fused / seconds, 1),
        "recommends_per_s": round(len(totals) / seconds, 2),
    }


async def bench_rerank(rec: Recommender, users: list[str], k: int) -> dict[str, Any]:
    latencies, rerank_s, failed, reranked, tokens = [], [], 0, 0, 0
    for user in users:
        started = time.perf_counter()
        result = await rec.arecommend(user, k)
        latencies.append(time.perf_counter() - started)
        rerank_s.append(result.timings.get("rerank_s", 0.0))
        summary = result.rerank
        if summary is not None:
            failed += summary.failed_runs
            tokens += summary.tokens_out
        reranked += result.reranked
    return {
        "users": len(users),
        "recommend_with_rerank": ms(latencies),
        "rerank_only": ms(rerank_s),
        "reranked_users": reranked,
        "failed_runs": failed,
        "tokens_out_per_user": round(tokens / len(users), 1) if users else 0.0,
    }


def bench_ranker(settings: Settings, record: RecordStore, users: int, candidates: int,
                 rounds: int) -> dict[str, Any]:  # fmt: skip
    """Ranker scoring of `candidates` items per user vs fusion, same users, same loop."""
    from agent.rank.features import feature_matrix, user_scores
    from agent.rank.serve import ServingRanker
    from agent.recommend.fusion import fuse

    started = time.perf_counter()
    ranker = ServingRanker.load(settings.data_dir)
    if ranker is None:
        sys.exit(f"no ranker in {settings.data_dir}: run `personae rank fit` first")
    load_s = time.perf_counter() - started
    from agent.embeddings import load_embedder

    index = ItemIndex(open_client(settings), load_embedder(settings))  # not queried here
    rec = Recommender(settings, record, index, use_ranker=False)
    ease, popularity = rec.collaborative(), rec.popularity()
    sources, model = ranker.sources, ranker.model
    ids = record.user_ids()[:users]
    histories = {u: record.history(u) for u in ids}
    scoring, scores_only, fusion = [], [], []
    for _ in range(rounds):
        for user in ids:
            history = histories[user]
            t0 = time.perf_counter()
            scored = user_scores(sources, sources.user(user, history))
            t1 = time.perf_counter()
            rows, _ = ranker.candidates(scored, (), None)
            rows = rows[:candidates]
            model.score(feature_matrix(sources, scored, rows, model.features))
            t2 = time.perf_counter()
            seen = {e.item_id for e in history}
            positive = list(dict.fromkeys(e.item_id for e in history))
            lists = {
                "collaborative": ease.recommend(positive, candidates, seen),
                "popularity": popularity.top(candidates, seen),
            }
            fuse(lists, rec.weights(), k=settings.fusion_rrf_k, exclude=seen)
            t3 = time.perf_counter()
            scoring.append(t2 - t0)
            scores_only.append(t1 - t0)
            fusion.append(t3 - t2)
    return {
        "users": len(ids),
        "rounds": rounds,
        "candidates": candidates,
        "load_s": round(load_s, 3),
        "ranker_scoring": ms(scoring),
        "of_which_source_scores": ms(scores_only),
        "fusion_path": ms(fusion),
        "ratio_p50": round(quantile(scoring, 0.5) / max(quantile(fusion, 0.5), 1e-9), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="Profiled users to run (first N).")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="Retrieval rounds over the users.")
    parser.add_argument("--rerank", action="store_true", help="Also time the LLM re-rank.")
    parser.add_argument("--rerank-users", type=int, default=5)
    parser.add_argument("--base-url")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--ranker", action="store_true", help="Bench the learned ranker only.")
    parser.add_argument("--candidates", type=int, default=200)
    args = parser.parse_args()
    settings = Settings(**({"base_url": args.base_url} if args.base_url else {}))
    if args.ranker:
        with RecordStore.at(settings.data_dir) as record:
            found = bench_ranker(settings, record, args.users, args.candidates, args.rounds)
        if args.json:
            json.dump(found, sys.stdout, indent=2)
            sys.stdout.write("\n")
            return
        print(f"ranker vs fusion, {found['users']} users x {found['rounds']} rounds, "
              f"{found['candidates']} candidates (load {found['load_s']} s)")  # fmt: skip
        for key in ("ranker_scoring", "of_which_source_scores", "fusion_path"):
            print(
                f"{key:<26}p50 {found[key]['p50_ms']:>8.2f} ms  p95 {found[key]['p95_ms']:>8.2f} ms"
            )
        print(f"ranker / fusion (p50): {found['ratio_p50']}x")
        return
    report: dict[str, Any] = {"data_dir": str(settings.data_dir), "k": args.k}
    with ExitStack() as stack:
        record = stack.enter_context(RecordStore.at(settings.data_dir))
        users = [p.user_id for p in ProfileStore(record).iter_latest()][: args.users]
        if not users:
            sys.exit(f"no profiles in {settings.data_dir}: run `personae profile` first")
        index = ItemIndex(
            open_client(settings), SentenceTransformerEmbedder(settings.embedding_model)
        )
        rec = Recommender(settings, record, index)
        started = time.perf_counter()
        rec.recommend(users[0], args.k, rerank_with_llm=False)  # fit/load models, load embedder
        report["warmup_s"] = round(time.perf_counter() - started, 3)
        report["collaborative_refitted"] = rec.refitted
        report["retrieval"] = bench_retrieval(rec, users, args.k, args.rounds)
        if args.rerank:
            rec.generator = stack.enter_context(open_generator(settings))
            report["model"] = rec.generator.model_name
            report["rerank"] = asyncio.run(bench_rerank(rec, users[: args.rerank_users], args.k))
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    show(report)


def show(report: dict[str, Any]) -> None:
    r = report["retrieval"]
    print(
        f"data {report['data_dir']}: {r['users']} users x {r['rounds']} rounds, k={report['k']}"
        f"; warm-up (models, embedder) {report['warmup_s']:.2f} s"
    )
    print(f"{'what':<34}{'p50 ms':>9}{'p95 ms':>9}")
    rows = [
        ("recommend, retrieval only", r["recommend_no_rerank"]),
        ("  of which dense source", r["dense_source"]),
        ("raw embed + Chroma query", r["raw_embed_and_chroma_query"]),
        ("raw Chroma query", r["raw_chroma_query"]),
    ]
    if "rerank" in report:
        rows += [
            ("recommend with LLM re-rank", report["rerank"]["recommend_with_rerank"]),
            ("  of which re-rank", report["rerank"]["rerank_only"]),
        ]
    for name, stats in rows:
        print(f"{name:<34}{stats['p50_ms']:>9.2f}{stats['p95_ms']:>9.2f}")
    print(
        f"retrieval / raw Chroma query (p50): {r['ratio_vs_raw_query_p50']:.2f}x; "
        f"/ raw embed + query: {r['ratio_vs_raw_embed_query_p50']:.2f}x"
    )
    print(
        f"candidates/s: {r['source_candidates_per_s']:.0f} from sources, "
        f"{r['fused_candidates_per_s']:.0f} fused; {r['recommends_per_s']:.1f} recommends/s"
    )
    if "rerank" in report:
        rr = report["rerank"]
        print(
            f"re-rank ({report['model']}): {rr['reranked_users']}/{rr['users']} users re-ranked, "
            f"{rr['failed_runs']} failed runs, {rr['tokens_out_per_user']} tokens out/user"
        )


if __name__ == "__main__":
    main()
