"""`personae profile --ray` for real (slow; CI runs it): the installed CLI starts a local Ray
cluster (no --ray-address: `ray.init()` on this machine's 2 CPUs), one engine actor holds the
`tiny` model in vLLM (SmolLM2-135M, plumbing only), 16 users. The run is killed with SIGKILL
after some profiles are stored; the rerun finishes with nothing lost and nothing twice, and
every profile has the form of one written by the server path from the same data."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tenacity import wait_none

from agent.config import Settings
from agent.embeddings import load_embedder
from agent.model_prep import resolve_model
from agent.profiles.batch import BatchProfiler, FailureLog
from agent.profiles.profiler import Profiler
from agent.runtime.endpoint import Endpoint
from agent.runtime.structured import StructuredGenerator
from agent.schemas.profile import ProfileKind, UserProfile
from agent.store.chroma import open_client
from agent.store.profile_index import ProfileIndex
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore
from bench.ray_vs_server import build_users

pytestmark = pytest.mark.slow

PERSONAE = str(Path(sys.executable).parent / "personae")
USERS = [str(i) for i in range(1, 17)]
COMPARED = ["1", "2"]
"""Users the server path profiles too, to compare the two records."""
KILLED_BATCH = 4
"""Users per engine call (both runs): the first stored batch leaves three engine calls to kill
in the middle of."""
PATIENCE_S = 900.0
"""How long a condition may take on 2 busy cores before the test gives up (not a measure)."""


def tiny_env(data_dir: Path, llm_settings: Settings, batch: int) -> dict[str, str]:
    return {
        **os.environ,
        "PERSONAE_DATA_DIR": str(data_dir),
        "PERSONAE_MODEL": "tiny",
        "PERSONAE_KV_CACHE_GIB": str(llm_settings.kv_cache_gib),
        "PERSONAE_MAX_MODEL_LEN": str(llm_settings.max_model_len),
        "PERSONAE_RAY_BATCH_SIZE": str(batch),
        "COLUMNS": "200",
    }


def in_session(sid: int) -> list[str]:
    """Live processes of session `sid` (the CLI's, and every Ray process it started: Ray's
    workers change their process group, not their session), as 'pid name'."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        if int(rest[3]) == sid and rest[0] != "Z":
            found.append(f"{stat.parent.name} {name}")
    return found


def wait_for(condition: Any, what: str, timeout_s: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:.0f} s"
        time.sleep(0.2)


def end_session(sid: int) -> None:
    """SIGKILL what is left of a session this test started (Ray's agents outlive a killed
    driver by minutes)."""
    for entry in in_session(sid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(entry.split()[0]), signal.SIGKILL)


class RayRun:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.stored_at_kill = 0
        self.report: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory: pytest.TempPathFactory, llm_settings: Settings) -> Iterator[RayRun]:
    """`profile --all --ray` killed once it has stored a profile, then run again to the end."""
    run = RayRun(tmp_path_factory.mktemp("ray-profiles"))
    assert build_users(run.data_dir, len(USERS)) == USERS
    env = tiny_env(run.data_dir, llm_settings, KILLED_BATCH)
    cmd = [PERSONAE, "profile", "--all", "--ray", "--json"]
    record = RecordStore.at(run.data_dir)
    store = ProfileStore(record)
    started = time.monotonic()
    with (run.data_dir / "killed.log").open("wb") as log:
        first = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
    sessions = [first.pid]
    try:
        wait_for(
            lambda: store.count()["profiled_users"] >= 1 or first.poll() is not None,
            "first profile stored",
        )
        first.send_signal(signal.SIGKILL)
        first.wait()
        run.stored_at_kill = store.count()["profiled_users"]
        run.seconds["killed run"] = time.monotonic() - started
        # Its engine actor sees its raylet die and exits; it must not hold a core meanwhile.
        wait_for(lambda: not any("MapWorker" in p for p in in_session(first.pid)), "engine gone")
        started = time.monotonic()
        rerun = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        )  # fmt: skip
        sessions.append(rerun.pid)
        out, err = rerun.communicate(timeout=PATIENCE_S)
        run.seconds["rerun"] = time.monotonic() - started
        assert rerun.returncode == 0, err[-3000:]
        run.report = json.loads(out)
        yield run
    finally:
        for sid in sessions:
            end_session(sid)
        record.close()


def test_a_killed_ray_run_resumes_without_loss_or_duplicates(ray_run: RayRun) -> None:
    print(", ".join(f"{k} {v:.0f} s" for k, v in ray_run.seconds.items()))
    killed_log = (ray_run.data_dir / "killed.log").read_text(errors="replace")
    assert 1 <= ray_run.stored_at_kill < len(USERS), killed_log[-3000:]  # killed mid-run
    report = ray_run.report
    assert report["skipped_unchanged"] == ray_run.stored_at_kill  # stored ones are kept
    assert report["profiled"] == len(USERS) - ray_run.stored_at_kill
    assert report["failed"] == 0 and report["schema_valid_rate"] == 1.0
    record = RecordStore.at(ray_run.data_dir)
    counts = dict(
        record.conn.execute("SELECT user_id, count(*) FROM profile_versions GROUP BY user_id")
    )
    assert counts == dict.fromkeys(USERS, 1)  # no loss, no duplicate
    settings = Settings(data_dir=ray_run.data_dir)
    index = ProfileIndex(open_client(settings), load_embedder(settings))
    assert index.versions() == dict.fromkeys(USERS, 1)  # the killed run's vectors synced too
    served = resolve_model(Settings(model="tiny")).served_name
    profiles = ProfileStore(record)
    for user in USERS:
        profile = profiles.get(user)
        assert profile is not None
        history = {e.item_id for e in record.history(user)}
        cited = {i for p in (*profile.interests, *profile.dislikes) for i in p.evidence}
        assert cited <= history, (user, cited - history)
        p = profile.provenance
        assert (p.model, p.kind, p.version, p.attempts) == (
            served,
            ProfileKind.FULL,
            1,
            1 + p.reasks,
        )
        assert p.tokens_in > 0 and p.tokens_out > 0


def shape(value: Any) -> Any:
    """The JSON form of a value: keys and types, not contents."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return ["list", *sorted({json.dumps(shape(v), sort_keys=True) for v in value})]
    return type(value).__name__


def test_ray_profiles_have_the_form_of_server_path_profiles(
    ray_run: RayRun, tmp_path: Path, llm_settings: Settings, vllm_endpoint: Endpoint
) -> None:
    build_users(tmp_path, len(USERS))
    settings = llm_settings.model_copy(update={"data_dir": tmp_path})
    generator = StructuredGenerator.for_endpoint(
        settings, vllm_endpoint.base_url, vllm_endpoint.model
    )
    server = Profiler(settings, RecordStore.at(tmp_path))
    batch = BatchProfiler(server, generator, None, FailureLog(tmp_path / "f.jsonl"))
    assert batch.run(COMPARED, server.prepare_full).profiled == len(COMPARED)
    on_ray = ProfileStore(RecordStore.at(ray_run.data_dir))
    for user in COMPARED:
        a, b = on_ray.get(user), server.profiles.get(user)
        assert a is not None and b is not None
        assert UserProfile.model_validate_json(a.model_dump_json()) == a
        one, other = a.provenance, b.provenance
        for name in ("model", "prompt", "history_hash", "history_events", "version", "kind"):
            assert getattr(one, name) == getattr(other, name), name
        assert a.facts == b.facts
        same = ("interests", "dislikes")  # may be empty on either side: compared by entry
        da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
        assert shape({k: v for k, v in da.items() if k not in same}) == shape(
            {k: v for k, v in db.items() if k not in same}
        )
        for key in same:
            entries = [*da[key], *db[key]]
            assert len({json.dumps(shape(e), sort_keys=True) for e in entries}) <= 1
    # Both paths stamp a profile alike: the server path takes the Ray run's as current.
    ray_record = Profiler(settings, RecordStore.at(ray_run.data_dir))
    stamps = ray_record.profiles.latest_stamps()
    check = BatchProfiler(ray_record, generator, None, FailureLog(tmp_path / "g.jsonl"))
    assert all(check.is_current(user, stamps) for user in USERS)
    same_engine = StructuredGenerator(settings, generator.chat_model, "other", wait_none())
    other = BatchProfiler(ray_record, same_engine, None, FailureLog(tmp_path / "h.jsonl"))
    assert not any(other.is_current(user, stamps) for user in USERS)  # the model counts
