"""Library notices on stderr: what `agent.*` modules log at INFO and above (a model fitted
for the first time, a stale or corrupt fit refitted, a damaged cache file) is printed as one
line each, `warning:` in front of warnings. Other libraries' logging is left as it is."""

from __future__ import annotations

import logging
import sys

from agent.cleantext import clean_text

_MARK = "_personae_notices"


class _StderrLines(logging.Handler):
    """Writes to whatever `sys.stderr` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        text = clean_text(" ".join(record.getMessage().split()))
        line = f"warning: {text}" if record.levelno >= logging.WARNING else text
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed: nowhere left to say it
            self.handleError(record)


def show_notices() -> None:
    """Print `agent.*` log records on stderr (once per process, whatever the call count)."""
    logger = logging.getLogger("agent")
    if any(getattr(h, _MARK, False) for h in logger.handlers):
        return
    handler = _StderrLines()
    setattr(handler, _MARK, True)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
