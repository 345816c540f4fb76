"""A real Chroma server for tests: `chroma run` (the CLI chromadb installs beside this Python)
on a free port of 127.0.0.1, in its own process group, which `stop` ends as a whole.

`stop` then `start` again serves the same folder on the same port, as a restarted server."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.proc import pids_in_group

START_TIMEOUT_S = 60.0
"""Seconds to wait for the first heartbeat (about 1 s here, idle or not)."""
STOP_TIMEOUT_S = 20.0
"""Seconds a stopped server may take to exit before its group gets SIGKILL."""


def chroma_executable() -> str:
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.is_file() else shutil.which("chroma")
    assert found, "no `chroma` executable: is chromadb installed?"
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ChromaServer:
    def __init__(self, path: Path, log: Path, port: int | None = None) -> None:
        self.path = path
        self.log = log
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT_S) -> ChromaServer:
        assert self.process is None, "already running"
        command = [chroma_executable(), "run", "--path", str(self.path)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not self._beats():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop(signal.SIGKILL)
                raise AssertionError(f"chroma run did not start: {self.log_tail()}")
            time.sleep(0.2)
        return self

    def _beats(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/v2/heartbeat", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send `sig` to the server's group, wait for it (SIGKILL after STOP_TIMEOUT_S) and
        check that nothing of the group is left."""
        if self.process is None:
            return
        group = self.process.pid
        try:
            os.killpg(group, sig)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self.process = None
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pids_in_group(group) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pids_in_group(group), f"chroma run left processes: {self.log_tail()}"

    def log_tail(self, chars: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@contextmanager
def running_chroma(folder: Path) -> Iterator[ChromaServer]:
    """A server storing under folder/chroma-server, logging to folder/chroma-server.log."""
    server = ChromaServer(folder / "chroma-server", folder / "chroma-server.log").start()
    try:
        yield server
    finally:
        server.stop()
