"""Code run in a fresh interpreter, to see what it imports (lazy imports are per process)."""

from __future__ import annotations

import json
import subprocess
import sys

_REPORT = (
    "\nimport json, sys\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {roots})))\n"
)


def modules_loaded_by(code: str, roots: tuple[str, ...]) -> list[str]:
    """Run `code` in a new interpreter; the modules it left loaded whose top-level package is
    one of `roots`, sorted. Fails with the child's stderr if `code` fails."""
    probe = code + _REPORT.format(roots=repr(roots))
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=180
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found
