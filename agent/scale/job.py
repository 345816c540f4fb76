"""The driver of a Ray profiling run: users out of the record into a Ray Dataset, prompts
rendered by workers, drafts decoded by engine actors, and every draft back here, where it is
validated, grounded and stored by the one writer of the record, as `BatchProfiler` does:
one transaction per profile, vectors upserted in batches, failures in a JSONL file.

Killed at any point, a rerun finishes the rest: users whose stored profile matches their
history (and model) are skipped, and profiles that reached the record but not Chroma are
synced first. Users go through in windows of `ray_window` (one Dataset each), which bounds
what the driver and the object store hold; each window loads the engines again."""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, cast

from pydantic import ValidationError

from agent.config import Settings
from agent.model_prep import ResolvedModel
from agent.profiles.batch import VECTOR_BATCH, BatchReport, FailureLog
from agent.profiles.pii import PiiEngineMissingError
from agent.profiles.profiler import Profiler
from agent.runtime.structured import Generated, GenerationMeta
from agent.scale.render import ERROR_PII
from agent.scale.rows import Mode, UserRow, user_row
from agent.scale.wire import WireRequest
from agent.schemas.profile import ProfileDraft, UserProfile
from agent.store.profile_index import ProfileIndex

RENDER_CPUS = 1.0
REACH_TIMEOUT_S = 5.0


class RayProfileError(RuntimeError):
    """The Ray cluster could not be joined, or a worker or engine failed."""


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Join the cluster at `address`, or start a local one (unless this process already
    joined one, e.g. a test's `ray.init`); leave it afterwards if joined here."""
    import ray

    if ray.is_initialized():
        yield
        return
    check_reachable(address)
    if address is None:
        local_cluster_env(os.environ)
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except (ConnectionError, ValueError, RuntimeError) as err:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise RayProfileError(
            f"cannot start or join {where}: {_first_lines(str(err), 1)} "
            "(start one with `ray start --head`)"
        ) from err
    try:
        yield
    finally:
        ray.shutdown()


def local_cluster_env(env: MutableMapping[str, str]) -> None:
    """Settings of the Ray cluster started for one run on this machine (a user's own cluster
    is theirs to configure): no Ray memory monitor. It counts every process of the machine,
    and beside other jobs it killed the engine actor seven times in a row here ("killed due to
    memory pressure (OOM)"), each kill retried without end by Ray, so the run never finished.
    The engine's memory is fixed (weights and KV cache); should the machine truly run out,
    the kernel's OOM killer takes Ray's workers first (Ray gives them oom_score_adj 1000)."""
    env.setdefault("RAY_memory_monitor_refresh_ms", "0")


def check_reachable(address: str | None, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """A `host:port` (or `ray://host:port`) that nothing answers on fails here, in seconds:
    `ray.init` itself keeps retrying such an address for minutes (seen here: over 5, with
    one warning line every 5 s)."""
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayProfileError(
            f"--ray-address {address!r} is not host:port (e.g. head-node:6379) or 'auto'"
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as err:
        raise RayProfileError(
            f"no Ray cluster answers at {address} ({err.strerror or err}): start one with "
            "`ray start --head --port PORT` on the head node, or leave out --ray-address "
            "for a local one"
        ) from err


def quiet_ray_data() -> None:
    """No Ray Data progress lines every 10 s on stderr: the CLI shows its own progress."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)


def check_resources(settings: Settings) -> None:
    """An engine the cluster has no room for would wait forever: say so instead."""
    import ray

    total = ray.cluster_resources()
    for name, per_engine, setting in (
        ("CPU", settings.ray_engine_cpus, "ray_engine_cpus"),
        ("GPU", settings.ray_engine_gpus, "ray_engine_gpus"),
    ):
        have = float(total.get(name, 0.0))
        if per_engine > have:
            raise RayProfileError(
                f"{setting}={per_engine} but the Ray cluster has {have:g} {name}(s) in all: "
                f"lower PERSONAE_{setting.upper()} or add nodes with `ray start --address`"
            )


class RayBatchProfiler:
    def __init__(
        self,
        profiler: Profiler,
        model: ResolvedModel,
        index: ProfileIndex | None,
        failures: FailureLog,
    ) -> None:
        self.profiler = profiler
        self.settings: Settings = profiler.settings
        self.model = model
        self.index = index
        self.failures = failures
        self.report = BatchReport(failures_path=str(failures.path))
        self._pending_vectors: list[UserProfile] = []

    def rows(self, user_ids: Sequence[str], mode: Mode, force: bool) -> Iterator[UserRow]:
        """Rows for users whose profile is missing or stale (`BatchProfiler.is_current`)."""
        stamps = self.profiler.profiles.latest_stamps()
        for user_id in user_ids:
            row = user_row(self.profiler, user_id, mode)
            stamp = stamps.get(user_id)
            if (
                not force
                and stamp is not None
                and stamp.history_hash == row.history_hash
                and stamp.model == self.model.served_name
            ):
                self.report.skipped_unchanged += 1
                continue
            yield row

    def run(
        self,
        user_ids: Sequence[str],
        mode: Mode = "full",
        force: bool = False,
        progress: Callable[[BatchReport], None] | None = None,
    ) -> BatchReport:
        self.report = BatchReport(requested=len(user_ids), failures_path=str(self.failures.path))
        started = time.monotonic()
        if self.index is not None:
            self.report.synced_vectors = self.index.sync(self.profiler.profiles.iter_latest())
        window: list[UserRow] = []
        try:
            with self.session():
                check_resources(self.settings)
                for row in self.rows(user_ids, mode, force):
                    window.append(row)
                    if len(window) >= self.settings.ray_window:
                        self._run_window(window, started, progress)
                        window = []
                self._run_window(window, started, progress)
        finally:
            self._flush_vectors()
            self.report.seconds = time.monotonic() - started
        return self.report

    def _run_window(
        self,
        window: list[UserRow],
        started: float,
        progress: Callable[[BatchReport], None] | None,
    ) -> None:
        if not window:
            return
        from ray.data.exceptions import SystemException
        from ray.exceptions import RayError

        try:
            for result in self.dataset(window).iter_rows():
                self._store(result)
                self.report.seconds = time.monotonic() - started
                if progress is not None:
                    progress(self.report)
        except (RayError, SystemException) as err:
            raise RayProfileError(_first_lines(str(err))) from err

    def session(self) -> AbstractContextManager[None]:
        return ray_session(self.settings.ray_address)

    def inputs(self, window: list[UserRow]) -> tuple[list[dict[str, str]], dict[str, str], str]:
        """The Dataset's items, the render function's arguments, the engines' spec (JSON)."""
        from agent.scale.engine import EngineSpec

        s = self.settings
        newest = self.profiler.newest_event()
        items = [{"user_id": r.user_id, "row": r.model_dump_json()} for r in window]
        render = {
            "settings_json": s.model_dump_json(),
            "newest": newest.isoformat() if newest else "",
        }
        spec = EngineSpec(
            settings=s,
            model_path=self.model.path,
            served_name=self.model.served_name,
            tensor_parallel_size=max(1, s.ray_engine_gpus),
        )
        return items, render, spec.model_dump_json()

    def dataset(self, window: list[UserRow]) -> Any:
        """users -> rendered requests -> drafts. Ray Data fuses the two `map_batches` into
        one operator (seen in its plan: `MapBatches(render_batch)->MapBatches(ProfileEngine)`),
        so each engine actor renders the batch it then decodes: no extra object transfer,
        and rendering (milliseconds) never waits for a free CPU."""
        import ray

        from agent.scale.engine import ProfileEngine
        from agent.scale.render import render_batch

        quiet_ray_data()
        s = self.settings
        items, render, spec = self.inputs(window)
        blocks = max(1, math.ceil(len(items) / s.ray_batch_size))
        return (
            ray.data.from_items(items, override_num_blocks=blocks)
            .map_batches(
                cast(Any, render_batch),  # Ray's stubs want numpy batches; rows are str
                fn_kwargs=render,
                batch_size=s.ray_batch_size,
                num_cpus=RENDER_CPUS,
            )
            .map_batches(
                ProfileEngine,
                fn_constructor_kwargs={"spec_json": spec},
                batch_size=s.ray_batch_size,
                compute=ray.data.ActorPoolStrategy(size=s.ray_engines),
                num_cpus=s.ray_engine_cpus,
                num_gpus=s.ray_engine_gpus or None,
            )
        )

    def _store(self, result: dict[str, Any]) -> None:
        user_id, error = str(result["user_id"]), str(result["error"])
        kind = str(result["error_kind"])
        if kind == ERROR_PII:
            raise PiiEngineMissingError(error)
        attempts, reasks = int(result["attempts"]), int(result["reasks"])
        raw = str(result["raw"])
        if error:
            self._fail(user_id, kind, error, raw, attempts, reasks)
            return
        wire = WireRequest.model_validate_json(str(result["request"]))
        request = wire.request()
        try:
            draft = request.schema.model_validate_json(raw)
        except ValidationError as err:  # the engine validated it: only if the two disagree
            self._fail(user_id, wire.kind.value, f"driver: {err}", raw, attempts, reasks)
            return
        meta = GenerationMeta(
            model=self.model.served_name,
            prompt=request.prompt.ref,
            tokens_in=int(result["tokens_in"]),
            tokens_out=int(result["tokens_out"]),
            latency_s=float(result["latency_s"]),
            attempts=attempts,
            reasks=reasks,
        )
        profile = self.profiler.finish(request, Generated[ProfileDraft](value=draft, meta=meta))
        self.profiler.profiles.add(profile)  # committed: from here a kill loses nothing
        self.report.add(profile)
        self._pending_vectors.append(profile)
        if len(self._pending_vectors) >= VECTOR_BATCH:
            self._flush_vectors()

    def _fail(
        self, user_id: str, kind: str, error: str, raw: str, attempts: int, reasks: int
    ) -> None:
        self.report.failed += 1
        self.report.attempts += attempts
        self.report.reasks += reasks
        self.failures.write(user_id, kind, error, raw or None)

    def _flush_vectors(self) -> None:
        if self.index is not None and self._pending_vectors:
            self.index.upsert(self._pending_vectors)
        self._pending_vectors = []


def _first_lines(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[:lines])
