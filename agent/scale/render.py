"""Prompt rendering on Ray workers: the `map_batches` function between the user rows and the
engines. Each row becomes a `WireRequest` (prompt, schema arguments, everything the driver
needs to ground the reply), or an error the driver logs as the server path would."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.config import Settings

ERROR_PREPARE = "prepare"
"""The user has no events (the server path logs the same kind)."""
ERROR_PII = "pii"
"""The PII scrub's engine is missing on the worker: the driver stops the run with it."""

RESULT_COLUMNS = ("user_id", "request", "error", "error_kind")


def render_batch(batch: dict[str, Any], settings_json: str, newest: str) -> dict[str, list[Any]]:
    """Rows (`user_id`, `row`: a `UserRow` as JSON) to requests. `newest` is the ISO time of
    the store's newest event ('' when empty)."""
    from agent.profiles import scrub
    from agent.profiles.pii import PiiEngineMissingError
    from agent.profiles.profiler import UnknownUserError
    from agent.scale.rows import RowProfiler, UserRow
    from agent.scale.wire import WireRequest

    settings = Settings.model_validate_json(settings_json)
    scrub.configure(settings.scrub_mode, settings.scrub_pipeline)  # the driver's, not env's
    moment = datetime.fromisoformat(newest) if newest else None
    out: dict[str, list[Any]] = {name: [] for name in RESULT_COLUMNS}
    for user_id, raw in zip(batch["user_id"], batch["row"], strict=True):
        request, error, kind = "", "", ""
        try:
            row = UserRow.model_validate_json(raw)
            request = WireRequest.of(RowProfiler(settings, row, moment).prepare()).model_dump_json()
        except UnknownUserError as err:
            error, kind = str(err), ERROR_PREPARE
        except PiiEngineMissingError as err:
            error, kind = str(err), ERROR_PII
        out["user_id"].append(str(user_id))
        out["request"].append(request)
        out["error"].append(error)
        out["error_kind"].append(kind)
    return out
