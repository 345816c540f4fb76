"""Wait until an OpenAI-compatible vLLM server answers /health, for scripts/main_job.sh.

    python scripts/wait_server.py http://127.0.0.1:8765/v1 [--timeout 900] [--log FILE]

Exits 0 once healthy, 1 after the timeout (printing the end of the server's log if given)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import httpx


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    health = args.base_url.rstrip("/").removesuffix("/v1") + "/health"
    started = time.monotonic()
    while time.monotonic() - started < args.timeout:
        try:
            if httpx.get(health, timeout=2.0).status_code == 200:
                print(f"server healthy after {time.monotonic() - started:.0f} s of waiting")
                return 0
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(1.0)
    print(f"error: no healthy server at {health} after {args.timeout:.0f} s", file=sys.stderr)
    if args.log is not None and args.log.exists():
        print("".join(args.log.read_text(errors="replace").splitlines(True)[-30:]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
