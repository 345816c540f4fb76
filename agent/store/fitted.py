"""Fitted models kept on disk with the record state they were fitted on.

A model fitted from the interactions (EASE, popularity, a sequential model, the ranker) is
saved under `data_dir` next to a small JSON file saying what it was fitted on. The next
process loads it instead of fitting again while the record is unchanged, and refits (and
saves) when it changed. A stale or corrupt file is never trusted silently: it is refitted with
one warning line (logger `agent.store.fitted`, which the CLI prints on stderr).

API:

- `RecordState` / `record_state(record, where)`: the interactions' count, the id of the latest
  event added and a digest of aggregates over all events (ids, times, attributes, item count),
  so deleted or edited events count as changes too. One aggregate query, no Python scan.
- `Artifact(name, folder, suffix, save, load, label, events)`: how one kind of model is
  written and read, and (`events`, an SQL condition) which interactions it is fitted on.
  `save(model, path)` writes exactly one file; `load(path)` reads it back and may raise
  anything on a bad file (it is caught here only as `CORRUPT_ERRORS`, see below).
- `load_or_fit(record, data_dir, artifact, params, fit)` -> `Fitted`: the model for the
  record's current state and these `params` (JSON-able values, e.g. `{"lambda": 100.0}`),
  loaded when current, else `fit()`, saved and returned. `Fitted.refitted` says whether it was
  fitted by this call; `Fitted.reason` says why ("no saved fit", "record changed: ...",
  "parameters changed", "corrupt: ...").
- `status(record, data_dir, artifact, params)` -> the same reason without fitting (None:
  current), for `personae index models` and tests.
- `TunedBlend`, `save_tuned_blend`, `load_tuned_blend`: the LLM rank's blend weight that
  `eval tune-blend` chose on validation, per model (served name) and re-rank mode, in
  `data_dir/models/rerank_blend.json`. A chosen setting rather than a fit: it records the
  eval's data hash and date but is not refitted when the record changes.

Layout: `data_dir/<folder>/<name>.json` (the state) and `<name>-<key>.<suffix>` (the model),
`key` a hash of the state and params. The JSON names the model file and its sha256 and is
written last (atomic replace), so a killed save leaves either the old pair or a model file that
nothing points to; older model files are removed after a save. Within one process a loaded
model is kept in memory by key: asking twice returns the same object.

Two processes refitting different states at once: the last JSON written wins and the other
process's model file may be removed; the next load then refits with a "corrupt" warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from agent.store.record import RecordStore

FORMAT = 1
"""Version of the JSON state file; another version is treated as stale."""

CORRUPT_ERRORS: tuple[type[Exception], ...] = (
    OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile,
)  # fmt: skip
"""What reading a damaged model file raises (numpy, json, pickle-free torch, LightGBM text):
caught, reported and refitted. Anything else is a bug and propagates."""

log = logging.getLogger(__name__)

Model = TypeVar("Model")


@dataclass(frozen=True)
class RecordState:
    interactions: int
    latest_id: int
    """Id of the latest event added (ids only grow)."""
    digest: str
    """Aggregates of every event (id and time sums, attribute lengths) and the item count."""

    def describe(self) -> str:
        return f"{self.interactions:,} interactions, latest event {self.latest_id}"


def record_state(record: RecordStore, where: str | None = None) -> RecordState:
    """The state of the interactions (those matching the SQL condition `where`, if given)."""
    row = record.conn.execute(
        "SELECT count(*), coalesce(max(id), 0), total(id), total(ts_ms), "
        "total(length(attributes)), (SELECT count(*) FROM items) FROM interactions"
        + (f" WHERE {where}" if where else "")
    ).fetchone()
    digest = hashlib.sha256(repr(tuple(row)).encode()).hexdigest()[:16]
    return RecordState(int(row[0]), int(row[1]), digest)


@dataclass(frozen=True)
class Artifact(Generic[Model]):
    name: str
    """File stem, e.g. "ease"."""
    folder: str
    """Under data_dir, e.g. "models/collaborative"."""
    suffix: str
    """Model file suffix with its dot, e.g. ".npz"."""
    save: Callable[[Model, Path], None]
    load: Callable[[Path], Model]
    label: str = ""
    """What messages call it, e.g. "collaborative model (EASE)"; default: `name`."""
    events: str | None = None
    """SQL condition on `interactions` selecting the events the model is fitted on, when not
    all (e.g. "event_type != 'feedback'"): other events then do not make it stale."""

    def __str__(self) -> str:
        return self.label or self.name


@dataclass
class Fitted(Generic[Model]):
    model: Model
    refitted: bool
    reason: str | None
    """Why it was fitted by this call (None: loaded, or taken from memory)."""
    key: str
    state: RecordState
    seconds: float
    """Time to load or fit and save."""


def fit_key(state: RecordState, params: Mapping[str, Any]) -> str:
    payload = json.dumps([asdict(state), dict(params)], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


_MEMO: dict[tuple[Path, str], tuple[str, Any]] = {}


def _state_path(data_dir: Path, artifact: Artifact[Any]) -> Path:
    return Path(data_dir) / artifact.folder / f"{artifact.name}.json"


def _read_state(path: Path) -> dict[str, Any] | str:
    """The saved state, or why there is none that can be used."""
    if not path.exists():
        return "no saved fit"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return f"corrupt: {path.name}: {err}"
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        return f"corrupt: {path.name}: not a format-{FORMAT} state file"
    return saved


def _stale_reason(saved: dict[str, Any], state: RecordState, params: Mapping[str, Any]) -> str:
    before = saved.get("state") or {}
    if before != asdict(state):
        was = RecordState(**before).describe() if set(before) == {*asdict(state)} else "?"
        return f"record changed since the fit ({was} -> {state.describe()})"
    if saved.get("params") != json.loads(json.dumps(dict(params), default=str)):
        return f"parameters changed ({saved.get('params')} -> {dict(params)})"
    return "saved under another key"


def status(
    record: RecordStore, data_dir: Path, artifact: Artifact[Any], params: Mapping[str, Any]
) -> str | None:
    """Why `load_or_fit` would fit now (None: the saved model is current). Does not read the
    model file itself, so corruption inside it shows only when it is loaded."""
    state = record_state(record, artifact.events)
    saved = _read_state(_state_path(data_dir, artifact))
    if isinstance(saved, str):
        return saved
    if saved.get("key") != fit_key(state, params):
        return _stale_reason(saved, state, params)
    folder = _state_path(data_dir, artifact).parent
    if not (folder / str(saved.get("file"))).is_file():
        return f"corrupt: {saved.get('file')} is missing"
    return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Unusable(Exception):
    """The saved model file cannot be used (its message says why)."""


def _load_saved(folder: Path, artifact: Artifact[Model], saved: dict[str, Any]) -> Model:
    name = str(saved.get("file"))
    path = folder / name
    if not path.is_file():
        raise _Unusable(f"corrupt: {name} is missing")
    if _sha256(path) != saved.get("sha256"):
        raise _Unusable(f"corrupt: {name} does not match its sha256")
    try:
        return artifact.load(path)
    except CORRUPT_ERRORS as err:
        raise _Unusable(f"corrupt: {name}: {type(err).__name__}: {err}") from err


def load_or_fit(
    record: RecordStore,
    data_dir: Path,
    artifact: Artifact[Model],
    params: Mapping[str, Any],
    fit: Callable[[], Model],
) -> Fitted[Model]:
    """The model for the record's current state and `params`: from memory, from disk, or
    fitted now and saved (see the module docstring)."""
    started = time.perf_counter()
    state = record_state(record, artifact.events)
    key = fit_key(state, params)
    state_path = _state_path(data_dir, artifact)
    memo = _MEMO.get((state_path, artifact.name))
    if memo is not None and memo[0] == key:
        return Fitted(cast(Model, memo[1]), False, None, key, state, 0.0)
    saved = _read_state(state_path)
    reason: str
    if isinstance(saved, str):
        reason = saved
    elif saved.get("key") != key:
        reason = _stale_reason(saved, state, params)
    else:
        try:
            loaded = _load_saved(state_path.parent, artifact, saved)
        except _Unusable as err:
            reason = str(err)
        else:
            _MEMO[(state_path, artifact.name)] = (key, loaded)
            return Fitted(loaded, False, None, key, state, time.perf_counter() - started)
    if reason == "no saved fit":
        log.info("%s: fitting (no saved fit yet)", artifact)
    else:
        log.warning("%s: refitting: %s", artifact, reason)
    model = fit()
    save(data_dir, artifact, model, key, state, params)
    _MEMO[(state_path, artifact.name)] = (key, model)
    return Fitted(model, True, reason, key, state, time.perf_counter() - started)


def save(
    data_dir: Path,
    artifact: Artifact[Model],
    model: Model,
    key: str,
    state: RecordState,
    params: Mapping[str, Any],
) -> Path:
    """Write the model file, then its state file (the commit point), then drop older files."""
    state_path = _state_path(data_dir, artifact)
    folder = state_path.parent
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{artifact.name}-{key}{artifact.suffix}"
    tmp = folder / f".{name}.{os.getpid()}.tmp{artifact.suffix}"
    artifact.save(model, tmp)
    sha = _sha256(tmp)
    tmp.replace(folder / name)
    saved = {
        "format": FORMAT,
        "name": artifact.name,
        "key": key,
        "file": name,
        "sha256": sha,
        "state": asdict(state),
        "params": json.loads(json.dumps(dict(params), default=str)),
        "fitted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    tmp_state = folder / f".{state_path.name}.{os.getpid()}.tmp"
    tmp_state.write_text(json.dumps(saved, indent=1) + "\n")
    tmp_state.replace(state_path)
    for old in folder.glob(f"{artifact.name}-*{artifact.suffix}"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / name


def forget_memo() -> None:
    """Drop the in-process copies (tests that damage files on disk)."""
    _MEMO.clear()


# -- tuned settings --------------------------------------------------------------------------

TUNED_BLEND = "models/rerank_blend.json"
"""Under data_dir: the LLM blend weights `eval tune-blend` chose, one per model and re-rank
mode."""


@dataclass(frozen=True)
class TunedBlend:
    """The LLM rank's weight in the fusion order, as `eval tune-blend` chose it on the
    validation split for one model (the served name) and re-rank mode."""

    weight: float
    model: str
    mode: str
    """Re-rank mode the LLM ranks came from ("scored" or "generate")."""
    metric: str
    users: int
    protocol: str
    tuned_at: str
    shuffles: int | None = None
    data_hash: str | None = None
    """The eval's hash of the interactions and catalog it was tuned on."""
    run_dir: str | None = None
    mean: float | None = None
    """The metric at the chosen weight (x100), and at weight 0 below."""
    mean_at_zero: float | None = None


def tuned_blend_path(data_dir: Path) -> Path:
    return Path(data_dir) / TUNED_BLEND


def _read_tuned(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise ValueError(f"not a format-{FORMAT} file")
        entries = saved["weights"]
        if not isinstance(entries, list):
            raise ValueError("'weights' is not a list")
        return [e for e in entries if isinstance(e, dict)]
    except (OSError, ValueError, KeyError) as err:
        log.warning("tuned blend weights: ignoring %s (%s)", path, err)
        return []


def load_tuned_blend(data_dir: Path, model: str, mode: str) -> TunedBlend | None:
    """The weight tuned for this model and re-rank mode (None: never tuned for them). A
    damaged file is ignored with one warning."""
    path = tuned_blend_path(data_dir)
    for entry in _read_tuned(path):
        if entry.get("model") == model and entry.get("mode") == mode:
            try:
                return TunedBlend(**entry)
            except TypeError as err:
                log.warning("tuned blend weights: ignoring an entry of %s (%s)", path, err)
    return None


def save_tuned_blend(data_dir: Path, tuned: TunedBlend) -> Path:
    """Store `tuned`, replacing an earlier weight for the same model and mode (atomic
    replace of the file)."""
    path = tuned_blend_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = [e for e in _read_tuned(path)
            if (e.get("model"), e.get("mode")) != (tuned.model, tuned.mode)]  # fmt: skip
    body = {"format": FORMAT, "weights": [*kept, asdict(tuned)]}
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(body, indent=1) + "\n")
    tmp.replace(path)
    return path
