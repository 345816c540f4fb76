"""Benchmark the chat agent: tool-call validity and turn latency over scripted questions.

    PYTHONPATH=. python bench/chat.py --base-url http://127.0.0.1:8011/v1 [--questions 20]
        [--start 0] [--users scifi,crime,injector,pair] [--json]

Builds the small test world of tests/recommend_data.py in a temp dir (hash embedder,
SchemaFiller profiles: plumbing-grade data, so this measures the agent loop, not answer
quality), then asks each question in a fresh session (one turn, no memory) on the given server.

Reports: tool calls made, valid tool calls (known tool, arguments validate against its schema)
and their rate, tool calls that returned a result (not an error message), turns with at least
one valid call, turns that ended in an error, answers cut off, cited ids kept and dropped,
median and p90 turn latency, model calls and output tokens per turn.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent.chat.session import ChatSession, Turn
from agent.runtime.endpoint import describe_server
from agent.runtime.structured import make_chat_model
from tests.recommend_data import PROFILED, build_world
from tools.context import ToolContext

QUESTIONS = [
    "Why did you recommend Star Wars?",
    "What do you know about me?",
    "Show me something like my favourites but lighter.",
    "Why not Titanic?",
    "What did I rate highest?",
    "Recommend me a comedy.",
    "Which of my movies are sci-fi?",
    "Why did you recommend Jaws?",
    "Is there anything like Blade Runner?",
    "What do people like me enjoy?",
    "Why would I like Casablanca?",
    "What are my least favourite movies?",
    "Recommend something from the 1990s.",
    "Have I seen Fargo?",
    "Why not Scream?",
    "What kind of movies do I dislike?",
    "Show my last three movies.",
    "Recommend a drama without romance.",
    "Why did you recommend Pulp Fiction?",
    "Summarize my taste in one sentence.",
]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def summarize(turns: list[Turn]) -> dict[str, Any]:
    calls = [c for t in turns for c in t.tool_calls]
    valid = sum(c.valid for c in calls)
    latency = [t.latency_s for t in turns]
    return {
        "turns": len(turns),
        "tool_calls": len(calls),
        "valid_tool_calls": valid,
        "tool_call_validity": round(valid / len(calls), 4) if calls else None,
        "tool_calls_ok": sum(c.ok for c in calls),
        "turns_with_valid_call": sum(any(c.valid for c in t.tool_calls) for t in turns),
        "turns_with_error": sum(t.error is not None for t in turns),
        "turns_stopped_at_limit": sum(t.stopped is not None for t in turns),
        "answers_truncated": sum(t.truncated for t in turns),
        "cited_kept": sum(len(t.cited) for t in turns),
        "cited_dropped": sum(len(t.dropped_citations) for t in turns),
        "latency_median_s": round(statistics.median(latency), 2) if latency else None,
        "latency_p90_s": round(quantile(latency, 0.9), 2),
        "model_calls_per_turn": round(statistics.fmean(t.model_calls for t in turns), 2),
        "tokens_out_per_turn": round(statistics.fmean(t.tokens_out for t in turns), 1),
        "tools_used": sorted({c.name for c in calls}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--questions", type=int, default=len(QUESTIONS))
    parser.add_argument("--start", type=int, default=0, help="Skip the first N questions.")
    parser.add_argument("--users", default=",".join(PROFILED))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    users = args.users.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp))
        settings = world.settings.model_copy(update={"base_url": args.base_url})
        model_name, _ = describe_server(settings, args.base_url)
        turns: list[Turn] = []
        chosen = QUESTIONS[args.start : args.start + args.questions]
        for n, question in enumerate(chosen, start=args.start):
            user = users[n % len(users)]
            chat_model = make_chat_model(settings, args.base_url, model_name)
            session = ChatSession(settings, ToolContext(user, world.recommender()), chat_model)
            turn = session.ask(question)
            turns.append(turn)
            calls = ", ".join(f"{c.name}{'' if c.valid else '!'}" for c in turn.tool_calls)
            print(f"{turn.latency_s:6.1f}s {user:9} {question!r}: [{calls}] "
                  f"{(turn.error or turn.answer)[:70]!r}", file=sys.stderr)  # fmt: skip
        world.record.close()
    report = {"model": model_name, "settings": _chat_settings(settings), **summarize(turns)}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:24} {value}")


def _chat_settings(settings: Any) -> dict[str, Any]:
    return {k: v for k, v in settings.model_dump().items() if k.startswith("chat_")}


if __name__ == "__main__":
    main()
