"""Batch profiling on Ray Data vs the server path, same users, same model, in one run.

    PYTHONPATH=. .venv/bin/python bench/ray_vs_server.py [--model tiny] [--users 16]
        [--batch 16] [--order server,ray] [--json]

Both sides are the installed `personae` command, run the way a user runs it, each on its own
copy of one record (`--users` users, 3 to 6 films each of the test catalog, drawn with a
fixed seed), with the same settings (model, context length, KV cache, seed):

- **server**: `personae profile --all` starts its local vLLM server, sends the users at
  `--concurrency BATCH`, stops the server;
- **ray**: `personae profile --all --ray` starts a local Ray cluster (`ray.init()`, all
  CPUs), one engine actor with an in-process `vllm.LLM`, `ray_batch_size=BATCH`.

Reported for each: the command's wall time and users/s over it (what a user waits for:
server start or Ray start and engine load included), the report's own users/s (server: the
batch only, the server already up; ray: Ray start and engine load included, since they
happen inside the run), the CPU seconds of the command and everything it started, and the
ratio ray / server of users/s over the wall time. One run of each, in `--order`: on a
machine that runs other jobs, read the CPU seconds beside the wall times.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def build_users(data_dir: Path, count: int = 16, seed: int = 17) -> list[str]:
    """`count` users with 3 to 6 films each of `tests.profile_data.ITEMS`; their ids."""
    from agent.schemas import User
    from agent.store.record import RecordStore
    from tests.profile_data import ITEMS, event

    draw = random.Random(seed)
    users = [str(i) for i in range(1, count + 1)]
    record = RecordStore.at(data_dir)
    with record.writer() as writer:
        for item in ITEMS:
            writer.put_item(item)
        for user in users:
            writer.put_user(User(user_id=user))
            films = draw.sample([i.item_id for i in ITEMS], draw.randint(3, 6))
            for day, film in enumerate(films):
                writer.add_interaction(event(user, film, float(draw.randint(1, 5)), day))
    record.close()
    return users


@dataclass
class Side:
    name: str
    wall_s: float
    cpu_s: float
    profiled: int
    failed: int
    report_users_per_s: float
    tokens_out: int

    @property
    def users_per_s(self) -> float:
        return self.profiled / self.wall_s if self.wall_s else 0.0


def run_side(name: str, data_dir: Path, env: dict[str, str]) -> Side:
    personae = Path(sys.executable).parent / "personae"
    cmd = [str(personae), "profile", "--all", "--json", *(["--ray"] if name == "ray" else [])]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        cmd, env={**env, "PERSONAE_DATA_DIR": str(data_dir)}, capture_output=True, text=True
    )
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{name}: {' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Side(
        name=name,
        wall_s=round(wall, 1),
        cpu_s=round(cpu, 1),
        profiled=int(report["profiled"]),
        failed=int(report["failed"]),
        report_users_per_s=float(report["users_per_s"]),
        tokens_out=int(report["tokens_out"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16, help="concurrency / ray_batch_size")
    parser.add_argument("--order", default="server,ray")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    order = [s.strip() for s in args.order.split(",")]
    if sorted(order) != ["ray", "server"]:
        raise SystemExit("--order is server,ray or ray,server")
    env = {
        **os.environ,
        "PERSONAE_MODEL": args.model,
        "PERSONAE_KV_CACHE_GIB": "1",
        "PERSONAE_MAX_MODEL_LEN": "4096",
        "PERSONAE_CONCURRENCY": str(args.batch),
        "PERSONAE_RAY_BATCH_SIZE": str(args.batch),
        "PERSONAE_STARTUP_TIMEOUT": os.environ.get("PERSONAE_STARTUP_TIMEOUT", "900"),
    }
    sides: dict[str, Side] = {}
    with tempfile.TemporaryDirectory(prefix="ray-vs-server-") as tmp:
        for name in order:
            data_dir = Path(tmp) / name
            build_users(data_dir, args.users)
            print(f"[bench] {name}: profiling {args.users} users ...", file=sys.stderr)
            sides[name] = run_side(name, data_dir, env)
    ratio = sides["ray"].users_per_s / sides["server"].users_per_s
    if args.json:
        data = {
            name: asdict(side) | {"users_per_s": round(side.users_per_s, 4)}
            for name, side in sides.items()
        }
        print(json.dumps({"model": args.model, "users": args.users, "ratio": ratio, **data}))
        return
    print(f"model {args.model}, {args.users} users, batch/concurrency {args.batch}, {order}")
    print("| path | wall s | users/s (wall) | users/s (report) | CPU s | profiled | failed |")
    print("|---|---|---|---|---|---|---|")
    for side in sides.values():
        print(
            f"| {side.name} | {side.wall_s:.1f} | {side.users_per_s:.3f} | "
            f"{side.report_users_per_s:.3f} | {side.cpu_s:.1f} | {side.profiled} | "
            f"{side.failed} |"
        )
    print(f"ratio ray / server (users/s over the wall time): {ratio:.2f}")


if __name__ == "__main__":
    main()
