"""The chat eval (issue 30): do chat answers call the right tool and say what is true?

    PERSONAE_DATA_DIR=DIR python bench/chat.py --base-url http://127.0.0.1:8011/v1 \\
        [--users 30] [--seed 0] [--modes constrained,native] [--router on|off|both] \\
        [--templates why_recommended,why_not,dislikes,like_item,filtered] \\
        [--out FILE.jsonl] [--json]

On an ingested, indexed data dir (`personae index items`, `index models`) with stored
profiles, `--users` profiled users (seeded, `choose_users`) each get the question templates of
`evals.chat_cases`, filled from their own data, each asked in a fresh session of the real chat
(`ChatSession`, tools bound to the user) on the server at `--base-url` (never a server
started here). Scores per turn and the table's columns: `evals.chat_eval`. Each turn is
appended to `--out` (default DATA_DIR/evals/chat_eval.jsonl) as it finishes; a rerun skips the
turns already there (same model, prompt, mode, router, user, template), so an interrupted run
resumes. Native tool calling needs a server started with `--tool-call-parser` and
`--enable-auto-tool-choice`; without them that mode is reported as skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from agent.chat.session import ChatSession
from agent.config import Settings
from agent.prompts import load_prompt
from agent.recommend.service import Recommender
from agent.runtime.endpoint import describe_server
from agent.runtime.structured import make_chat_model
from agent.store.chroma import open_client
from agent.store.item_index import ItemIndex
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore
from evals.chat_cases import TEMPLATES, Case, cases_for
from evals.chat_eval import ResultCache, TurnScore, report, run, to_json
from evals.sampling import choose_users
from tools.context import ToolContext

COLUMNS = [
    ("turns", "turns"), ("right_tool", "right tool"), ("args_valid", "valid args"),
    ("tool_error", "tool errors"), ("grounded", "grounded"), ("first_grounded", "1st try"),
    ("contradicts", "contradicts"), ("reasked", "re-asked"), ("replaced", "replaced"),
    ("seconds_median", "median s"), ("seconds_p90", "p90 s"), ("tokens_out_mean", "tok out"),
]  # fmt: skip


def build_cases(rec: Recommender, users: list[str], templates: list[str]) -> list[Case]:
    catalog = ToolContext(users[0], rec).catalog if users else None
    cases = []
    for user in users:
        assert catalog is not None
        cases += [c for c in cases_for(rec, catalog, user) if c.template in templates]
    return cases


def fmt(value: Any) -> str:
    if isinstance(value, float) and value <= 1.0:
        return f"{value:.0%}"
    return "-" if value is None else str(value)


def table(found: dict[str, Any]) -> Table:
    out = Table(title="chat eval (issue 30)")
    out.add_column("mode / tools")
    for _, label in COLUMNS:
        out.add_column(label, justify="right")
    for name, group in found["groups"].items():
        out.add_row(name, *(fmt(group.get(f)) for f, _ in COLUMNS), style="bold")
        for template, sub in group["by_template"].items():
            if sub["turns"]:
                out.add_row(f"  {template}", *(fmt(sub.get(f)) for f, _ in COLUMNS))
    return out


def progress(result: TurnScore) -> None:
    marks = "".join(m for m, ok in (("T", result.right_tool), ("G", result.grounded),
                                    ("!", result.contradicts)) if ok)  # fmt: skip
    tools = ",".join(result.tools)
    line = f"{result.seconds:6.1f}s {result.mode:11} {result.user_id:>5} {result.template:16}"
    print(f"{line} [{tools}] {marks:3} {result.answer[:70]!r}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--users", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="constrained,native")
    parser.add_argument("--router", choices=("on", "off", "both"), default="on")
    parser.add_argument("--templates", default=",".join(TEMPLATES))
    parser.add_argument("--out", type=Path, help="JSONL of scored turns (resumes from it)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    settings = Settings(base_url=args.base_url)
    model_name, _ = describe_server(settings, args.base_url)
    record = RecordStore.at(settings.data_dir)
    from agent.embeddings import load_embedder

    rec = Recommender(settings, record, ItemIndex(open_client(settings), load_embedder(settings)))
    profiled = [p.user_id for p in ProfileStore(record).iter_latest()]
    users = choose_users(profiled, args.users, args.seed)
    if len(users) < args.users:
        print(f"only {len(users)} profiled users (asked for {args.users})", file=sys.stderr)
    cases = build_cases(rec, users, args.templates.split(","))
    catalog = ToolContext(users[0], rec).catalog

    def make_session(user: str, mode: str, router: bool) -> ChatSession:
        chosen = settings.model_copy(update={"chat_tool_calling": mode})
        chat_model = make_chat_model(chosen, args.base_url, model_name)
        return ChatSession(chosen, ToolContext(user, rec, None, _catalog=catalog), chat_model,
                           router=router)  # fmt: skip

    routers = {"on": [True], "off": [False], "both": [True, False]}[args.router]
    prefix = f"{model_name}|{load_prompt('chat').hash[:12]}"
    cache = ResultCache(args.out or settings.data_dir / "evals" / "chat_eval.jsonl")
    results, skipped = run(cases, args.modes.split(","), routers, make_session, catalog,
                           cache, prefix, progress)  # fmt: skip
    found = {"model": model_name, "users": len(users), **report(results, skipped)}
    if args.json:
        print(to_json(found))
    else:
        Console(stderr=False).print(table(found))
        for mode, why in skipped.items():
            print(f"skipped {mode}: {why}")
    record.close()


if __name__ == "__main__":
    main()
