"""Structured generation throughput: personae's async batch API vs the raw OpenAI client on
the same vLLM server, same prompts, same concurrency, same schema, in one run.

    python bench/structured_throughput.py [--requests 64] [--concurrency 16] [--rounds 3]
        [--base-url URL] [--json]

Without --base-url it starts a managed local server (default model) and reports its start
time. Rounds alternate raw/personae so machine noise hits both; the medians are compared.
personae runs with max_reasks=0 here so both sides do exactly one call per request."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass

from agent.config import Settings
from agent.prompts import RenderedPrompt, load_prompt
from agent.runtime.check import FilmSample
from agent.runtime.endpoint import Endpoint, open_endpoint
from agent.runtime.structured import Generated, StructuredGenerator
from bench.raw_client import send_raw

TITLES = [
    ("Alien", 1979), ("Toy Story", 1995), ("Heat", 1995), ("Fargo", 1996), ("Casablanca", 1942),
    ("Jaws", 1975), ("Amelie", 2001), ("Psycho", 1960), ("Up", 2009), ("Se7en", 1995),
    ("Titanic", 1997), ("Brazil", 1985), ("Clueless", 1995), ("Vertigo", 1958),
    ("Ghostbusters", 1984), ("Rocky", 1976),
]  # fmt: skip


@dataclass
class Round:
    side: str
    seconds: float
    requests: int
    valid: int
    tokens_out: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_out / self.seconds


def prompts(n: int) -> list[RenderedPrompt]:
    template = load_prompt("runtime_check")
    return [template.render(title=t, year=y) for t, y in (TITLES * (n // len(TITLES) + 1))[:n]]


async def run_raw(endpoint: Endpoint, settings: Settings, items: list[RenderedPrompt],
                  concurrency: int, max_tokens: int) -> Round:  # fmt: skip
    jobs = [(p, FilmSample) for p in items]
    raw = await send_raw(endpoint, settings, jobs, concurrency, max_tokens)
    return Round("raw", raw.seconds, raw.requests, raw.valid, raw.tokens_out)


async def run_personae(generator: StructuredGenerator, items: list[RenderedPrompt],
                       max_tokens: int) -> Round:  # fmt: skip
    started = time.perf_counter()
    results = await generator.abatch([(p, FilmSample) for p in items], max_tokens=max_tokens)
    seconds = time.perf_counter() - started
    done = [r for r in results if isinstance(r, Generated)]
    tokens = sum(r.meta.tokens_out for r in done) + sum(
        r.meta.tokens_out for r in results if not isinstance(r, Generated)
    )
    return Round("personae", seconds, len(items), len(done), tokens)


async def bench(endpoint: Endpoint, settings: Settings, args: argparse.Namespace) -> list[Round]:
    items = prompts(args.requests)
    generator = StructuredGenerator.for_endpoint(settings, endpoint.base_url, endpoint.model)
    warm = items[: args.concurrency]
    await run_raw(endpoint, settings, warm, args.concurrency, args.max_tokens)
    rounds = []
    for _ in range(args.rounds):
        rounds.append(await run_raw(endpoint, settings, items, args.concurrency, args.max_tokens))
        rounds.append(await run_personae(generator, items, args.max_tokens))
    return rounds


def summarize(rounds: list[Round], endpoint: Endpoint, args: argparse.Namespace) -> dict:
    def median(side: str, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in rounds if r.side == side)

    raw_rps, ours_rps = median("raw", "requests_per_s"), median("personae", "requests_per_s")
    return {
        "model": endpoint.model,
        "server": endpoint.base_url,
        "server_start_s": endpoint.startup_seconds,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "raw_requests_per_s": raw_rps,
        "personae_requests_per_s": ours_rps,
        "throughput_ratio": ours_rps / raw_rps,
        "raw_tokens_per_s": median("raw", "tokens_per_s"),
        "personae_tokens_per_s": median("personae", "tokens_per_s"),
        "raw_valid": median("raw", "valid"),
        "personae_valid": median("personae", "valid"),
        "rounds": [asdict(r) | {"requests_per_s": r.requests_per_s} for r in rounds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=120)
    parser.add_argument("--base-url")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings(
        concurrency=args.concurrency,
        max_reasks=0,
        **({"base_url": args.base_url} if args.base_url else {}),
    )
    with ExitStack() as stack:
        endpoint = stack.enter_context(open_endpoint(settings))
        rounds = asyncio.run(bench(endpoint, settings, args))
    summary = summarize(rounds, endpoint, args)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        return
    start = summary["server_start_s"]
    print(f"model {summary['model']} at {summary['server']}"
          + (f", server start {start:.1f} s" if start else " (existing server)"))  # fmt: skip
    print(f"{'side':<10}{'req/s':>8}{'tokens/s':>10}{'valid':>7}")
    for side in ("raw", "personae"):
        rps, tps = summary[f"{side}_requests_per_s"], summary[f"{side}_tokens_per_s"]
        print(f"{side:<10}{rps:>8.2f}{tps:>10.1f}{summary[f'{side}_valid']:>7.0f}")
    print(f"throughput ratio personae/raw: {summary['throughput_ratio']:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
