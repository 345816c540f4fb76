"""Benchmark ingest and the item index on this machine.

    python bench/ingest_index.py [--synthetic-items 100000] [--queries 200] [--json]

Reports: ingest rows/s and peak RSS (MovieLens-100K from the recbole package, then a larger
synthetic csv to show memory does not grow with rows); items embedded+indexed per second by
`ItemIndex.refresh` against raw sentence-transformers `encode` + raw Chroma `add` of the same
items in the same run (goal: ratio >= 0.9); Chroma top-50 query latency p50/p95 with and
without a `where` filter at the ML-100K catalog and at N synthetic items.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import Settings
from agent.ingest import Format, read_rows
from agent.ingest.movielens100k import sample_dir
from agent.ingest.pipeline import IngestOptions, ingest
from agent.ingest.tabular import TabularOptions
from agent.store.chroma import open_client
from agent.store.item_index import ItemIndex, item_document, item_metadata
from agent.store.record import RecordStore

TOP_K = 50
FILTER = {"categories": {"$contains": "Drama"}}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_ingest(work: Path, synthetic_rows: int) -> dict[str, Any]:
    base = peak_rss_mb()
    store = RecordStore.at(work / "data")
    report = ingest(
        store, read_rows(Format.MOVIELENS_100K, [sample_dir()]), "ml-100k", [], IngestOptions()
    )
    after_ml = peak_rss_mb()
    csv_path = work / "synthetic.csv"
    with csv_path.open("w") as out:
        out.write("user_id,item_id,timestamp,rating\n")
        for i in range(synthetic_rows):
            out.write(f"s{i % 5000},{1 + i % 1682},{1700000000 + i},{1 + i % 5}\n")
    synthetic = ingest(
        store,
        read_rows(Format.CSV, [csv_path], options=TabularOptions()),
        "csv",
        [],
        IngestOptions(),
    )
    store.close()
    return {
        "ml100k_rows": report.rows_read,
        "ml100k_rows_per_s": round(report.rows_per_second),
        "synthetic_rows": synthetic.rows_read,
        "synthetic_rows_per_s": round(synthetic.rows_per_second),
        "rss_before_mb": round(base, 1),
        "peak_rss_after_ml100k_mb": round(after_ml, 1),
        "peak_rss_after_synthetic_mb": round(peak_rss_mb(), 1),
    }


def bench_index(work: Path, rounds: int) -> tuple[dict[str, Any], ItemIndex]:
    """Ours vs raw on the same 1,682 items. Each round times both back to back (alternating
    which goes first), so load from other processes hits both; the ratio is the median of
    the per-round ratios."""
    from agent.embeddings import SentenceTransformerEmbedder

    store = RecordStore.at(work / "data")
    items = list(store.iter_items())
    embedder = SentenceTransformerEmbedder("default")
    embedder.embed(["warm up the model"] * 8)
    ours_s: list[float] = []
    raw_s: list[float] = []
    index: ItemIndex | None = None
    for round_no in range(rounds):
        if round_no % 2:
            raw_s.append(_raw_encode_add(work / f"raw{round_no}", embedder, items))
        index = ItemIndex(open_client(Settings(data_dir=work / f"ours{round_no}")), embedder)
        started = time.perf_counter()
        report = index.refresh(items)
        ours_s.append(time.perf_counter() - started)
        assert report.embedded == len(items)
        if not round_no % 2:
            raw_s.append(_raw_encode_add(work / f"raw{round_no}", embedder, items))
    assert index is not None
    ratios = [raw / ours for ours, raw in zip(ours_s, raw_s, strict=True)]
    return {
        "items": len(items),
        "ours_items_per_s": [round(len(items) / s, 1) for s in ours_s],
        "raw_items_per_s": [round(len(items) / s, 1) for s in raw_s],
        "ratio": round(statistics.median(ratios), 3),
        "ratio_per_round": [round(r, 3) for r in ratios],
    }, index


def _raw_encode_add(path: Path, embedder: Any, items: list[Any]) -> float:
    import chromadb

    client = chromadb.PersistentClient(path=str(path))
    collection = client.create_collection(
        "raw", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    started = time.perf_counter()
    documents = [item_document(item) for item in items]
    vectors = embedder.model.encode(
        documents, batch_size=embedder.batch_size, normalize_embeddings=True
    )
    batch = client.get_max_batch_size()
    for start in range(0, len(items), batch):
        part = items[start : start + batch]
        collection.add(
            ids=[item.item_id for item in part],
            embeddings=vectors[start : start + batch],
            metadatas=[item_metadata(item) for item in part],
            documents=documents[start : start + batch],
        )
    return time.perf_counter() - started


def latency(collection: Any, queries: np.ndarray, where: dict[str, Any] | None) -> dict[str, float]:
    times = []
    for vector in queries:
        started = time.perf_counter()
        collection.query(query_embeddings=vector[None, :], n_results=TOP_K, where=where)
        times.append((time.perf_counter() - started) * 1000)
    cuts = statistics.quantiles(times, n=20)
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(cuts[18], 2)}


def bench_queries(collection: Any, n: int, seed: int) -> dict[str, Any]:
    stored = collection.get(limit=n, include=["embeddings"])
    rng = np.random.default_rng(seed)
    base = np.asarray(stored["embeddings"], dtype=np.float32)
    queries = base[rng.integers(0, len(base), n)] + rng.normal(0, 0.01, (n, base.shape[1]))
    return {
        "items": collection.count(),
        "unfiltered": latency(collection, queries, None),
        "filtered": latency(collection, queries, FILTER),
    }


def synthetic_collection(work: Path, n: int, dim: int, seed: int) -> tuple[Any, float]:
    import chromadb

    client = chromadb.PersistentClient(path=str(work / "synthetic"))
    collection = client.create_collection(
        "synthetic", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
    )
    rng = np.random.default_rng(seed)
    genres = ["Drama", "Comedy", "Action", "Thriller", "Romance", "Horror", "Sci-Fi", "War"]
    batch = client.get_max_batch_size()
    started = time.perf_counter()
    for start in range(0, n, batch):
        size = min(batch, n - start)
        vectors = rng.normal(size=(size, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        metadatas: list[Mapping[str, Any]] = [
            {
                "categories": [str(g) for g in rng.choice(genres, size=2, replace=False)],
                "year": int(1950 + rng.integers(0, 75)),
            }
            for _ in range(size)
        ]
        ids = [f"s{start + i}" for i in range(size)]
        collection.add(ids=ids, embeddings=vectors, metadatas=metadatas)
    return collection, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-items", type=int, default=100_000)
    parser.add_argument("--synthetic-rows", type=int, default=400_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        work = Path(tmp)
        results: dict[str, Any] = {"ingest": bench_ingest(work, args.synthetic_rows)}
        results["index"], index = bench_index(work, args.rounds)
        collection = index.get_collection()
        results["query_ml100k"] = bench_queries(collection, args.queries, args.seed)
        synthetic, add_s = synthetic_collection(work, args.synthetic_items, 384, args.seed)
        results["query_synthetic"] = bench_queries(synthetic, args.queries, args.seed)
        results["query_synthetic"]["add_seconds"] = round(add_s, 1)
    print_table(results)
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")


def print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="personae ingest + item index benchmark", show_header=False)
    ing, idx = results["ingest"], results["index"]
    table.add_row("ingest ML-100K", f"{ing['ml100k_rows']:,} rows, {ing['ml100k_rows_per_s']:,}/s")
    table.add_row(
        "ingest synthetic csv", f"{ing['synthetic_rows']:,} rows, {ing['synthetic_rows_per_s']:,}/s"
    )
    table.add_row(
        "peak RSS (MB)",
        f"start {ing['rss_before_mb']}, after ML-100K {ing['peak_rss_after_ml100k_mb']}, "
        f"after synthetic {ing['peak_rss_after_synthetic_mb']}",
    )
    table.add_row(
        "embed+index items/s",
        f"ours {idx['ours_items_per_s']}, raw encode+add {idx['raw_items_per_s']}; "
        f"ratio (median of rounds) {idx['ratio']} (goal >= 0.9)",
    )
    for key, label in (("query_ml100k", "ML-100K"), ("query_synthetic", "synthetic")):
        q = results[key]
        table.add_row(
            f"top-{TOP_K} query, {label} ({q['items']:,} items)",
            f"p50/p95 {q['unfiltered']['p50_ms']}/{q['unfiltered']['p95_ms']} ms; "
            f"where {FILTER}: {q['filtered']['p50_ms']}/{q['filtered']['p95_ms']} ms",
        )
    Console(stderr=True).print(table)


if __name__ == "__main__":
    main()
