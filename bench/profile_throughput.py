"""Batch profiling throughput: personae's batch profiler vs the same prompts sent raw to the
same vLLM server at the same concurrency, in one run; and the effect of vLLM prefix caching.

    python bench/profile_throughput.py [--users 16] [--concurrency 16] [--rounds 2]
        [--prefix-caching both|on] [--base-url URL] [--json]

ML-100K is ingested into a temporary data dir and `--users` users are drawn with a fixed seed.

- personae side: the whole batch path of `personae profile` (prompt building, constrained
  request, validation, grounding, one record transaction per profile, profile embedding
  upserted to Chroma), with `force` so nothing is skipped.
- raw side: the exact rendered prompts, the same response_format, max_tokens, temperature,
  seed and frequency penalty, sent with the OpenAI client through a semaphore of the same
  size; it only parses the JSON.

Both sides run with max_reasks=0, so each user costs exactly one call.

The server caches compiled grammars (one for every user with prompt v4, whose evidence is line
numbers; one per user with v3, whose evidence enum lists that user's items) and, with prefix
caching, prompt prefixes. A side that ran second would find both warm. So:

1. **cold**: one personae pass over users the server has never seen. This is what a real run
   gets.
2. **ratio**: rounds alternate raw/personae over the same users, with warm caches on both
   sides. The ratio isolates what personae adds on the client.
3. **prefix caching** (`--prefix-caching both`, local server only): a second managed server
   with `--no-enable-prefix-caching` runs the same cold pass. The hit rate comes from vLLM's
   /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from agent.config import Settings
from agent.embeddings import load_embedder
from agent.ingest import Format, read_rows
from agent.ingest.movielens100k import sample_dir
from agent.ingest.pipeline import IngestOptions, ingest
from agent.profiles.batch import BatchProfiler, FailureLog
from agent.profiles.profiler import Profiler, ProfileRequest
from agent.runtime.endpoint import Endpoint, open_endpoint
from agent.runtime.structured import StructuredGenerator
from agent.store.chroma import open_client
from agent.store.profile_index import ProfileIndex
from agent.store.record import RecordStore
from bench.raw_client import send_raw


@dataclass
class Pass:
    side: str
    seconds: float
    users: int
    valid: int
    tokens_out: int
    prefix_hit_rate: float | None = None

    @property
    def users_per_s(self) -> float:
        return self.users / self.seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"users_per_s": round(self.users_per_s, 4)}


def prepare_data(work: Path, users: int, seed: int) -> tuple[Settings, list[str]]:
    settings = Settings(data_dir=work / "data")
    with RecordStore.at(settings.data_dir) as record:
        rows = read_rows(Format.MOVIELENS_100K, [sample_dir()])
        ingest(record, rows, "ml-100k", [], IngestOptions())
        every = record.user_ids()
    return settings, sorted(random.Random(seed).sample(every, users), key=int)


def prefix_counters(endpoint: Endpoint) -> tuple[float, float]:
    """(hits, queries) of vLLM's prefix cache, in tokens, from the server's /metrics."""
    root = endpoint.base_url.removesuffix("/").removesuffix("/v1")
    text = httpx.get(f"{root}/metrics", timeout=30).text
    found = {"hits": 0.0, "queries": 0.0}
    for line in text.splitlines():
        for key in found:
            if line.startswith(f"vllm:prefix_cache_{key}_total"):
                found[key] += float(line.rsplit(" ", 1)[1])
    return found["hits"], found["queries"]


def hit_rate(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    queries = after[1] - before[1]
    return round((after[0] - before[0]) / queries, 4) if queries else None


def run_raw(
    endpoint: Endpoint, settings: Settings, requests: list[ProfileRequest], concurrency: int
) -> Pass:
    jobs = [(r.prompt, r.schema) for r in requests]
    raw = asyncio.run(send_raw(endpoint, settings, jobs, concurrency, settings.profile_max_tokens))
    return Pass("raw", raw.seconds, raw.requests, raw.valid, raw.tokens_out)


def run_personae(
    endpoint: Endpoint, settings: Settings, users: list[str], index: ProfileIndex, side: str
) -> Pass:
    generator = StructuredGenerator.for_endpoint(settings, endpoint.base_url, endpoint.model)
    with RecordStore.at(settings.data_dir) as record:
        profiler = Profiler(settings, record)
        failures = FailureLog(settings.data_dir / "failures" / "bench.jsonl")
        batch = BatchProfiler(profiler, generator, index, failures)
        started = time.perf_counter()
        report = batch.run(users, profiler.prepare_full, force=True)
        seconds = time.perf_counter() - started
    return Pass(side, seconds, len(users), report.profiled, report.tokens_out)


def measure_server(
    settings: Settings, users: list[str], index: ProfileIndex, args: argparse.Namespace
) -> dict[str, Any]:
    """Cold personae pass, then alternating warm rounds, on one server."""
    with open_endpoint(settings) as endpoint:
        before = prefix_counters(endpoint)
        cold = run_personae(endpoint, settings, users, index, "personae-cold")
        cold.prefix_hit_rate = hit_rate(before, prefix_counters(endpoint))
        result: dict[str, Any] = {
            "server_start_s": endpoint.startup_seconds,
            "cold": cold.to_dict(),
        }
        if args.rounds == 0:
            return result
        with RecordStore.at(settings.data_dir) as record:
            requests = [Profiler(settings, record).prepare_full(u) for u in users]
        rounds: list[Pass] = []
        for _ in range(args.rounds):
            rounds.append(run_raw(endpoint, settings, requests, args.concurrency))
            rounds.append(run_personae(endpoint, settings, users, index, "personae"))
    raw = statistics.median(r.users_per_s for r in rounds if r.side == "raw")
    ours = statistics.median(r.users_per_s for r in rounds if r.side == "personae")
    return result | {
        "raw_users_per_s": round(raw, 4),
        "personae_users_per_s": round(ours, 4),
        "throughput_ratio": round(ours / raw, 3),
        "rounds": [r.to_dict() for r in rounds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prefix-caching", choices=["both", "on"], default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-url")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp:
        base, users = prepare_data(Path(tmp), args.users, args.seed)
        common = {"data_dir": base.data_dir, "concurrency": args.concurrency, "max_reasks": 0}
        on = Settings(**common, **({"base_url": args.base_url} if args.base_url else {}))
        index = ProfileIndex(open_client(on), load_embedder(on))
        summary: dict[str, Any] = {
            "users": len(users),
            "concurrency": args.concurrency,
            "max_tokens": on.profile_max_tokens,
            "prefix_caching_on": measure_server(on, users, index, args),
        }
        if args.prefix_caching == "both" and not args.base_url:
            off = Settings(**common, server_args=["--no-enable-prefix-caching"])
            summary["prefix_caching_off"] = measure_server(
                off, users, index, argparse.Namespace(**{**vars(args), "rounds": 0})
            )
    report(summary, args.json)


def report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        json.dump(summary, sys.stdout, indent=2)
        return
    on = summary["prefix_caching_on"]
    print(f"{summary['users']} ML-100K users, concurrency {summary['concurrency']}")
    if "throughput_ratio" in on:
        print(f"warm: raw {on['raw_users_per_s']:.4f} users/s, personae "
              f"{on['personae_users_per_s']:.4f} users/s, ratio {on['throughput_ratio']:.3f} "
              "(goal >= 0.9)")  # fmt: skip
    for name in ("prefix_caching_on", "prefix_caching_off"):
        if name in summary:
            cold = summary[name]["cold"]
            print(f"cold pass, {name.replace('_', ' ')}: {cold['users_per_s']:.4f} users/s, "
                  f"{cold['valid']}/{cold['users']} valid, prefix hit rate "
                  f"{cold['prefix_hit_rate']}")  # fmt: skip


if __name__ == "__main__":
    main()
