"""Grammar compile time of personae's decoding schemas, as vLLM compiles them (xgrammar, the
packaged tokenizer, the compile cache on, any_whitespace off), against the same schemas with
their string length bounds (`maxLength`, and the re-rank reason's pattern) removed.

    python bench/grammar_compile.py [--ids 50] [--repeat 2] [--json]

Why it matters: an id-citing profile schema and every generated-list re-rank schema is
distinct per user (the user's history ids and the candidate ids are enums), so vLLM compiles
one grammar per request, and the engine makes no progress on requests waiting for theirs. A
line-citing profile schema (prompt v4) is the same for every user: compiled once per server.
A length bound is what ends a small model's runaway string, and it is also what makes
compiling slow; the unbounded column shows what the rest of the schema costs. No server is
started; it uses one core.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from importlib.metadata import version
from typing import Any

import xgrammar as xgr
from pydantic import BaseModel
from transformers import AutoTokenizer

from agent.config import Settings
from agent.model_prep import resolve_model
from agent.recommend.rerank import rerank_schema
from agent.runtime.structured import decoding_schema
from agent.schemas.profile import LinedDraft, draft_schema


def unbounded(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: unbounded(v) for k, v in node.items() if k not in ("maxLength", "pattern")}
    if isinstance(node, list):
        return [unbounded(v) for v in node]
    return node


def compile_seconds(info: xgr.TokenizerInfo, schema: dict[str, Any], repeat: int) -> float:
    """Median over `repeat` fresh compilers (a compiler's cache would make the second free)."""
    times = []
    for _ in range(repeat):
        compiler = xgr.GrammarCompiler(info, max_threads=1, cache_enabled=True)
        started = time.perf_counter()
        compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=50, help="History ids in the enum.")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(Settings()).path)
    info = xgr.TokenizerInfo.from_huggingface(tokenizer)
    ids = [str(1000 + i) for i in range(args.ids)]
    schemas: dict[str, type[BaseModel]] = {
        "profile (ids, v1-v3)": draft_schema(ids),
        "profile (lines, v4+)": LinedDraft,
        "rerank (20 picks)": rerank_schema(ids[:20], ids[20:40], 20),
    }
    rows = []
    for name, model in schemas.items():
        sent = decoding_schema(model)
        rows.append(
            {
                "schema": name,
                "as_sent_s": round(compile_seconds(info, sent, args.repeat), 3),
                "unbounded_s": round(compile_seconds(info, unbounded(sent), args.repeat), 3),
            }
        )
    if args.json:
        print(json.dumps({"xgrammar": version("xgrammar"), "rows": rows}, indent=2))
        return
    for row in rows:
        print(f"{row['schema']:22} as sent {row['as_sent_s']:6.2f} s   "
              f"without length bounds {row['unbounded_s']:6.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
