"""Chroma as a server (`--chroma-url`, PERSONAE_CHROMA_URL) against a real `chroma run`.

Slow tests start the server (tests/chroma_server.py) and run `personae` as users do, as a
process: `index items`, `store check`, `store rebuild`, `recommend` and `forget` on a small
catalog with the packaged embedder; then the server is stopped in the middle of an index and
a rerun after a restart finishes with nothing lost or duplicated. The fast tests check that a
bad URL, no server and a server that is not Chroma 1.x (API v2) each end a command with one
line saying what to do, with no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app
from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.schemas import Item, User
from agent.store.chroma import open_client
from agent.store.profile_index import ProfileIndex
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore
from tests.chroma_server import ChromaServer, free_port, running_chroma
from tests.profile_data import build_record, event
from tests.recommend_data import CATALOG, CROWD, EXTRA_ITEMS, PROFILED, profile_users

REPO = Path(__file__).resolve().parent.parent
PERSONAE = str(Path(sys.executable).parent / "personae")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def assert_one_line_error(stderr: str, *needles: str) -> str:
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# -- one-line errors (no server process) ---------------------------------------------------


def store_check(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    runner = CliRunner()
    result = runner.invoke(app, ["store", "check", "--data-dir", str(data_dir), *args], env=env)
    if result.exception is not None:  # typer.Exit shows up as SystemExit; others are bugs
        assert isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    "url", ["localhost:8000", "http://127.0.0.1:80a", "ftp://127.0.0.1:8000", "http://"]
)
def test_a_bad_url_says_what_a_url_looks_like(tmp_path: Path, url: str) -> None:
    code, stderr = store_check(tmp_path, "--chroma-url", url)
    assert code == 1
    assert_one_line_error(stderr, repr(url), "http://HOST:PORT", "PERSONAE_CHROMA_URL")


def test_no_server_says_how_to_start_one(tmp_path: Path) -> None:
    port = free_port()
    env = {"PERSONAE_CHROMA_URL": f"http://127.0.0.1:{port}"}
    code, stderr = store_check(tmp_path, env=env)
    assert code == 1
    assert_one_line_error(
        stderr, "no Chroma server answers", "Connection refused",
        f"chroma run --path DIR --host 127.0.0.1 --port {port}",
    )  # fmt: skip


class FakeServer(BaseHTTPRequestHandler):
    """Answers GET with `routes[path]` (status, body), 404 elsewhere."""

    routes: dict[str, tuple[int, object]] = {}

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook
        status, body = self.routes.get(self.path, (404, None))
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def fake_server() -> Iterator[tuple[str, dict[str, tuple[int, object]]]]:
    routes: dict[str, tuple[int, object]] = {}
    handler = type("Routes", (FakeServer,), {"routes": routes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", routes
    server.shutdown()
    server.server_close()


BEAT = {"nanosecond heartbeat": 1}


@pytest.mark.parametrize(
    ("routes", "needles"),
    [
        ({}, ["not a Chroma server with API v2", "answered 404", "chroma run --path DIR"]),
        ({"/api/v1/heartbeat": (200, BEAT)}, ["older than 1.0", "API v1 only", "upgrade it"]),
        (
            {"/api/v2/heartbeat": (200, BEAT), "/api/v2/version": (200, "2.3.0")},
            ["version '2.3.0'", "speaks to 1.x servers", "chroma run --path DIR"],
        ),
    ],
    ids=["not-chroma", "chroma-api-v1", "chroma-2.x"],
)
def test_a_server_without_chroma_api_v2_is_named_as_such(
    tmp_path: Path,
    fake_server: tuple[str, dict[str, tuple[int, object]]],
    routes: dict[str, tuple[int, object]],
    needles: list[str],
) -> None:
    url, served = fake_server
    served.update(routes)
    code, stderr = store_check(tmp_path, "--chroma-url", url)
    assert code == 1
    assert_one_line_error(stderr, url, *needles)


# -- a real server ---------------------------------------------------------------------------


def personae(*args: str, data_dir: Path, chroma_url: str | None = None, timeout: float = 600
             ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The installed `personae` script, as a user runs it (PERSONAE_CHROMA_URL if given)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env["PERSONAE_DATA_DIR"] = str(data_dir)
    if chroma_url:
        env["PERSONAE_CHROMA_URL"] = chroma_url
    return subprocess.run(
        [PERSONAE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok_json(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    return data


def profiled_record(data_dir: Path) -> RecordStore:
    """The recommendation test catalog (17 items), its users and fake-model profiles."""
    record = build_record(data_dir)
    with record.writer() as writer:
        for item in EXTRA_ITEMS:
            writer.put_item(item)
        for user, items in CROWD.items():
            writer.put_user(User(user_id=user))
            for day, item_id in enumerate(items):
                writer.add_interaction(event(user, item_id, 4, 30 + day))
    profile_users(Settings(data_dir=data_dir, concurrency=2, max_reasks=1), record, PROFILED)
    return record


@pytest.mark.slow
def test_cli_commands_run_against_a_chroma_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record = profiled_record(data)
    with running_chroma(tmp_path) as server:
        url = server.url

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return personae(*args, "--chroma-url", url, "--json", data_dir=data)

        first = ok_json(run("index", "items"))
        assert (first["total"], first["embedded"]) == (len(CATALOG), len(CATALOG))
        assert not (data / "chroma").exists(), "the embedded store was used, not the server"
        again = ok_json(run("index", "items"))
        assert (again["embedded"], again["unchanged"]) == (0, len(CATALOG))
        checked = ok_json(run("store", "check"))
        assert checked["ok"] and checked["indexed"] == len(CATALOG)

        recommend = ("recommend", "scifi", "--no-rerank", "--k", "3", "--json")
        picks = ok_json(personae(*recommend, data_dir=data, chroma_url=url))["items"]
        assert isinstance(picks, list) and len(picks) == 3
        seen = {e.item_id for e in record.history("scifi")}
        assert not seen & {p["item_id"] for p in picks}
        assert any("dense" in p["sources"] for p in picks), picks

        # Damage the server's index behind personae's back: check finds it, rebuild repairs it.
        settings = Settings(data_dir=data, chroma_url=url)
        client = open_client(settings)
        client.get_collection("items").delete(ids=["13"])
        damaged = run("store", "check")
        assert damaged.returncode == 1 and json.loads(damaged.stdout)["missing"] == 1
        rebuilt = ok_json(run("store", "rebuild"))
        assert rebuilt["embedded"] == len(CATALOG) and rebuilt["recreated"]
        assert ok_json(run("store", "check"))["ok"]

        # forget removes the user's profile vector from the server (vectors written here).
        profiles = ProfileIndex(client, HashEmbedder())
        assert profiles.sync(ProfileStore(record).iter_latest()) == len(PROFILED)
        record.close()
        forget = ("forget", "crime", "--yes")  # forget and recommend read PERSONAE_CHROMA_URL
        gone = ok_json(personae(*forget, "--json", data_dir=data, chroma_url=url))
        assert gone["vectors"] == {"profiles": 1} and gone["user_rows"] == 1
        assert set(profiles.versions()) == set(PROFILED) - {"crime"}
        assert client.get_collection("items").count() == len(CATALOG)  # catalog data stays
        again_gone = personae(*forget, data_dir=data, chroma_url=url)
        assert again_gone.returncode == 0 and "nothing stored" in again_gone.stderr

        server.stop()
        down = personae("recommend", "scifi", "--no-rerank", data_dir=data, chroma_url=url)
        assert down.returncode == 1
        assert_one_line_error(down.stderr, "no Chroma server answers", f"--port {server.port}")


GATED_INDEX = """
import os, sys, time
from pathlib import Path
from agent.cli import app, data_cmds
from agent.embeddings import HashEmbedder
from agent.store import item_index

item_index.EMBED_CHUNK = 40
gate = os.environ.get("GATE_DIR")


class GatedEmbedder(HashEmbedder):
    calls = 0

    def embed(self, texts):
        GatedEmbedder.calls += 1
        if gate and GatedEmbedder.calls == 3:  # two chunks are in Chroma, the third is next
            Path(gate, "paused").touch()
            while not Path(gate, "go").exists():
                time.sleep(0.05)
        return super().embed(texts)


data_cmds.load_embedder = lambda settings: GatedEmbedder(64)
app(sys.argv[1:], prog_name="personae")
"""
ITEMS = 200
CHUNK = 40


def gated_index(data: Path, url: str, gate: Path | None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERSONAE_")}
    env |= {"PYTHONPATH": str(REPO), "PERSONAE_DATA_DIR": str(data)}
    if gate is not None:
        env["GATE_DIR"] = str(gate)
    command = [sys.executable, "-c", GATED_INDEX, "index", "items", "--chroma-url", url, "--json"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_server_stopped_mid_index_then_a_rerun_loses_and_duplicates_nothing(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """The index pauses after two of five chunks; the server is stopped (SIGTERM as a service
    manager does, or SIGKILL), the index goes on, fails with one line; after a restart the
    server holds exactly what it acknowledged and a rerun adds only the rest."""
    data = tmp_path / "data"
    record = RecordStore.at(data)
    with record.writer() as writer:
        for n in range(ITEMS):
            writer.put_item(Item(item_id=f"i{n}", title=f"film {n}", categories=[f"c{n % 5}"]))
    expected = {item.item_id for item in record.iter_items()}
    record.close()
    server = ChromaServer(tmp_path / "chroma-server", tmp_path / "chroma-server.log").start()
    try:
        gate = tmp_path / "gate"
        gate.mkdir()
        first = gated_index(data, server.url, gate)
        wait_for(gate / "paused", first)
        server.stop(stop)
        (gate / "go").touch()
        out, err = first.communicate(timeout=120)
        assert first.returncode == 1, (out, err)
        assert_one_line_error(err, "stopped answering", "start it again and rerun")

        server.start()
        client = open_client(Settings(data_dir=data, chroma_url=server.url))
        assert client.get_collection("items").count() == 2 * CHUNK  # what the first run wrote
        rerun = gated_index(data, server.url, None)
        out, err = rerun.communicate(timeout=300)
        report = ok_json(subprocess.CompletedProcess(rerun.args, rerun.returncode, out, err))
        assert (report["unchanged"], report["embedded"]) == (2 * CHUNK, ITEMS - 2 * CHUNK)
        collection = client.get_collection("items")
        stored = collection.get(include=[])["ids"]
        assert len(stored) == len(set(stored)) == collection.count() == ITEMS
        assert set(stored) == expected
        check = subprocess.run(
            [sys.executable, "-c", GATED_INDEX, "store", "check", "--chroma-url", server.url,
             "--json"],
            env=os.environ | {"PYTHONPATH": str(REPO), "PERSONAE_DATA_DIR": str(data)},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert ok_json(check)["ok"]
    finally:
        server.stop()
