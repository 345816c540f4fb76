"""The pure parts of `personae profile --ray` (agent/scale), without Ray or vLLM: a user row
rebuilds the server path's request exactly, the wire form round-trips, rendering and the
engine's re-ask loop behave like the server path's, the driver stores or logs each result,
and the CLI's --ray errors are one line. The real run (Ray cluster, vLLM engine) is in
test_scale_real.py; the doubles here only feed plumbing and error paths."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tenacity import wait_none
from typer.testing import CliRunner

from agent.cli import app
from agent.config import Settings
from agent.model_prep import ResolvedModel
from agent.profiles.batch import BatchProfiler, FailureLog
from agent.profiles.pii import PiiEngineMissingError
from agent.profiles.profiler import Profiler, ProfileRequest
from agent.runtime.server import server_command
from agent.runtime.structured import (
    GenerationMeta,
    StructuredGenerator,
    StructuredOutputError,
    decoding_schema,
)
from agent.scale.engine import ENGINE_COLUMNS, EngineSpec, ProfileEngine, engine_kwargs
from agent.scale.job import RayBatchProfiler, RayProfileError, check_reachable, local_cluster_env
from agent.scale.render import ERROR_PII, ERROR_PREPARE, render_batch
from agent.scale.rows import RowProfiler, UserRow, user_row
from agent.scale.wire import WireFormatError, WireRequest, draft_args
from agent.schemas import User
from agent.schemas.profile import ProfileDraft
from evals.smoke import Filler
from tests.fakes import SchemaFiller
from tests.fresh import modules_loaded_by
from tests.profile_data import HISTORIES, add_events, build_record

MODEL = ResolvedModel(path="/models/tiny", served_name="tiny-model")


def same_request(a: ProfileRequest, b: ProfileRequest) -> None:
    assert a.prompt == b.prompt  # messages, id, version, hash
    assert a.schema.model_json_schema() == b.schema.model_json_schema()
    for name in ("user_id", "kind", "facts", "history_hash", "history_events", "version"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.history_ids == b.history_ids and a.items == b.items and a.text == b.text
    assert a.line_ids == b.line_ids and a.groups == b.groups
    assert a.group_categories == b.group_categories
    assert a.sides == b.sides and a.ratings == b.ratings


def profiled(tmp_path: Path, users: list[str]) -> Profiler:
    """A record with the fixture users, `users` profiled once on the server path (fake
    model: only the versions and the previous profile matter here)."""
    settings = Settings(data_dir=tmp_path)
    profiler = Profiler(settings, build_record(tmp_path))
    generator = StructuredGenerator(settings, SchemaFiller(), MODEL.served_name, wait_none())
    batch = BatchProfiler(profiler, generator, None, FailureLog(tmp_path / "f.jsonl"))
    assert batch.run(users, profiler.prepare_full).profiled == len(users)
    return profiler


def row_request(profiler: Profiler, user_id: str, mode: Any) -> ProfileRequest:
    """Through JSON, as a worker on another node gets it."""
    row = UserRow.model_validate_json(user_row(profiler, user_id, mode).model_dump_json())
    return RowProfiler(profiler.settings, row, profiler.newest_event()).prepare()


@pytest.mark.parametrize("user", sorted(HISTORIES))
def test_a_row_rebuilds_the_server_paths_full_request(tmp_path: Path, user: str) -> None:
    profiler = profiled(tmp_path, ["pair"])  # pair's next version is 2
    same_request(row_request(profiler, user, "full"), profiler.prepare_full(user))


def test_a_row_rebuilds_the_server_paths_update_request(tmp_path: Path) -> None:
    profiler = profiled(tmp_path, ["pair", "scifi"])
    add_events(profiler.record, "pair", [("8", 1, 30), ("3", 5, 31)])
    for user in ("pair", "scifi"):  # new events; no new events (a full profile again)
        previous = profiler.profiles.get(user)
        assert previous is not None
        expected = profiler.prepare_update(user, previous)
        got = row_request(profiler, user, "update")
        same_request(got, expected)
        assert got.version == 2


def test_an_update_row_needs_a_previous_profile(tmp_path: Path) -> None:
    profiler = Profiler(Settings(data_dir=tmp_path), build_record(tmp_path))
    with pytest.raises(ValueError, match="no profile to update"):
        user_row(profiler, "scifi", "update")


def test_a_row_answers_for_its_own_user_only(tmp_path: Path) -> None:
    profiler = Profiler(Settings(data_dir=tmp_path), build_record(tmp_path))
    row = user_row(profiler, "scifi", "full")
    with pytest.raises(LookupError, match="asked for user crime"):
        RowProfiler(profiler.settings, row, None).history("crime")


@pytest.mark.parametrize("version", [3, 4, None], ids=["ids-v3", "lines-v4", "groups-newest"])
def test_the_wire_form_round_trips_a_request(tmp_path: Path, version: int | None) -> None:
    settings = Settings(data_dir=tmp_path, profile_prompt_version=version)
    profiler = Profiler(settings, build_record(tmp_path))
    for user in sorted(HISTORIES):
        request = profiler.prepare_full(user)
        assert (request.line_ids is not None) == (version == 4)
        assert (request.groups is not None) == (version is None)
        wire = WireRequest.model_validate_json(WireRequest.of(request).model_dump_json())
        same_request(wire.request(), request)
        assert wire.messages() == [
            {"role": m.role, "content": m.content} for m in request.prompt.messages
        ]
    cold = profiler.prepare_cold_start("newcomer", "I love slow science fiction.")
    same_request(WireRequest.of(cold).request(), cold)


def test_the_wire_form_refuses_a_schema_it_cannot_rebuild() -> None:
    with pytest.raises(WireFormatError, match="not a draft_schema"):
        draft_args(ProfileDraft)


def test_render_turns_rows_into_requests_or_the_servers_failure_kinds(tmp_path: Path) -> None:
    record = build_record(tmp_path)
    with record.writer() as writer:
        writer.put_user(User(user_id="silent"))  # a user without events
    settings = Settings(data_dir=tmp_path)
    profiler = Profiler(settings, record)
    rows = [user_row(profiler, u, "full") for u in ("crime", "silent")]
    newest = profiler.newest_event()
    assert newest is not None
    batch = {"user_id": ["crime", "silent"], "row": [r.model_dump_json() for r in rows]}
    out = render_batch(batch, settings.model_dump_json(), newest.isoformat())
    assert out["user_id"] == ["crime", "silent"]
    assert out["error"][0] == "" and out["error_kind"][0] == ""
    same_request(
        WireRequest.model_validate_json(out["request"][0]).request(),
        profiler.prepare_full("crime"),
    )
    assert "555-123-4567" not in out["request"][0]  # the worker scrubs as the driver does
    assert out["request"][1] == "" and out["error_kind"][1] == ERROR_PREPARE
    assert "has no events" in out["error"][1]


# -- the engine's re-ask loop, with a scripted stand-in for vllm.LLM ------------------------


class ScriptedLLM:
    """Answers each conversation with the next reply of its user's script."""

    def __init__(self, replies: dict[str, list[str]]) -> None:
        self.replies = replies
        self.conversations: list[list[dict[str, Any]]] = []

    def chat(self, conversations: list[Any], params: list[Any], use_tqdm: bool) -> list[Any]:
        outputs = []
        for messages in conversations:
            self.conversations.append(messages)
            user = next(u for u in self.replies if f"user:{u}" in messages[0]["content"])
            text = self.replies[user].pop(0)
            completion = SimpleNamespace(text=text, token_ids=[0] * 3, finish_reason="stop")
            outputs.append(SimpleNamespace(outputs=[completion], prompt_token_ids=[0] * 10))
        return outputs


def scripted_engine(settings: Settings, llm: ScriptedLLM) -> ProfileEngine:
    engine = ProfileEngine.__new__(ProfileEngine)  # no vLLM: __init__ would load one
    engine.settings, engine.llm, engine.defaults = settings, llm, {}
    engine.sampling_params = lambda json_schema: None  # type: ignore[method-assign]
    return engine


def engine_batch(profiler: Profiler, users: list[str]) -> dict[str, list[Any]]:
    requests = []
    for user in users:
        wire = WireRequest.of(profiler.prepare_full(user))
        first = wire.prompt.messages[0]
        tagged = first.model_copy(update={"content": f"user:{user}\n{first.content}"})
        requests.append(
            wire.model_copy(
                update={"prompt": wire.prompt.model_copy(update={"messages": (tagged,)})}
            )
        )
    return {
        "user_id": users,
        "request": [r.model_dump_json() for r in requests],
        "error": [""] * len(users),
        "error_kind": [""] * len(users),
    }


def valid_reply(profiler: Profiler, user: str) -> str:
    schema = decoding_schema(profiler.prepare_full(user).schema)
    return json.dumps(Filler(schema, 0, rotate=False, word="word ").fill(schema))


def test_the_engine_re_asks_an_invalid_reply_like_the_server_path(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_reasks=1)
    profiler = Profiler(settings, build_record(tmp_path))
    llm = ScriptedLLM(
        {
            "scifi": ["not json", valid_reply(profiler, "scifi")],
            "crime": ["not json", "still not json"],
            "pair": [valid_reply(profiler, "pair")],
        }
    )
    out = scripted_engine(settings, llm)(engine_batch(profiler, ["scifi", "crime", "pair"]))
    assert set(out) == set(ENGINE_COLUMNS)
    assert out["attempts"] == [2, 2, 1] and out["reasks"] == [1, 1, 0]
    assert out["error"][0] == "" and out["error"][2] == ""
    assert out["tokens_in"] == [20, 20, 10] and out["tokens_out"] == [6, 6, 3]
    assert out["raw"][1] == "still not json" and out["error_kind"][1] == "full"
    meta = GenerationMeta(model="m", prompt=profiler.prepare_full("crime").prompt.ref, attempts=2)
    server_words = str(StructuredOutputError([], "", meta))  # the server path's message
    assert out["error"][1].startswith(server_words) and "(root)" in out["error"][1]
    re_ask = llm.conversations[3]  # round 2 starts with scifi's re-ask
    assert re_ask[-2] == {"role": "assistant", "content": "not json"}
    assert re_ask[-1]["role"] == "user" and "(root)" in re_ask[-1]["content"]


def test_the_engine_passes_rows_that_failed_to_render_through(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    batch = {"user_id": ["x"], "request": [""], "error": ["no events"], "error_kind": ["prepare"]}
    out = scripted_engine(settings, ScriptedLLM({}))(batch)
    assert out["error"] == ["no events"] and out["attempts"] == [0] and out["raw"] == [""]


def test_engine_options_match_the_local_servers_command_line(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, max_model_len=4096, seed=7, dtype="float32")
    kwargs = engine_kwargs(EngineSpec(settings=settings, model_path="/m", served_name="tiny"))
    cmd = server_command(settings, ResolvedModel(path="/m", served_name="tiny"), "h", 1)
    flag = {cmd[i]: cmd[i + 1] for i in range(len(cmd) - 1) if cmd[i].startswith("--")}
    assert kwargs["model"] == flag["--model"] and kwargs["served_model_name"] == "tiny"
    assert str(kwargs["max_model_len"]) == flag["--max-model-len"] == "4096"
    assert str(kwargs["seed"]) == flag["--seed"] and kwargs["dtype"] == flag["--dtype"]
    assert kwargs["enforce_eager"] == ("--enforce-eager" in cmd)
    assert kwargs["structured_outputs_config"] == json.loads(flag["--structured-outputs-config"])
    assert kwargs["tensor_parallel_size"] == 1 and "distributed_executor_backend" not in kwargs
    spec = EngineSpec(settings=settings, model_path="/m", served_name="t", tensor_parallel_size=4)
    assert engine_kwargs(spec)["distributed_executor_backend"] == "mp"


# -- the driver: store, log or stop on each result -------------------------------------------


def driver(tmp_path: Path) -> RayBatchProfiler:
    settings = Settings(data_dir=tmp_path)
    profiler = Profiler(settings, build_record(tmp_path))
    return RayBatchProfiler(profiler, MODEL, None, FailureLog(tmp_path / "failures.jsonl"))


def result(user: str, request: str = "", raw: str = "", **extra: Any) -> dict[str, Any]:
    row = dict.fromkeys(ENGINE_COLUMNS, 0) | {"user_id": user, "request": request, "raw": raw}
    return row | {"error": "", "error_kind": "", "latency_s": 0.5} | extra


def test_the_driver_stores_a_valid_draft_with_the_server_paths_provenance(tmp_path: Path) -> None:
    job = driver(tmp_path)
    request = job.profiler.prepare_full("scifi")
    raw = valid_reply(job.profiler, "scifi")
    job._store(
        result("scifi", WireRequest.of(request).model_dump_json(), raw, attempts=1, tokens_in=9)
    )
    stored = job.profiler.profiles.get("scifi")
    assert stored is not None and job.report.profiled == 1
    p = stored.provenance
    assert (p.model, p.prompt, p.kind, p.version) == (
        MODEL.served_name,
        request.prompt.ref,
        request.kind,
        1,
    )
    assert (p.history_hash, p.tokens_in, p.attempts) == (request.history_hash, 9, 1)
    stamps = job.profiler.profiles.latest_stamps()
    assert [r.user_id for r in job.rows(["scifi", "crime"], "full", force=False)] == ["crime"]
    assert job.report.skipped_unchanged == 1 and stamps["scifi"].model == MODEL.served_name


def test_the_driver_logs_failures_and_stops_on_a_missing_pii_engine(tmp_path: Path) -> None:
    job = driver(tmp_path)
    job._store(result("crime", error="no valid reply", error_kind="full", raw="{", attempts=3))
    request = WireRequest.of(job.profiler.prepare_full("scifi")).model_dump_json()
    job._store(result("scifi", request, raw="{}", attempts=1))  # engine and driver disagree
    lines = [json.loads(x) for x in (tmp_path / "failures.jsonl").read_text().splitlines()]
    assert [(x["user_id"], x["kind"]) for x in lines] == [("crime", "full"), ("scifi", "full")]
    assert lines[0]["last_raw"] == "{" and lines[1]["error"].startswith("driver: ")
    assert job.report.failed == 2 and job.report.attempts == 4
    assert job.profiler.profiles.get("crime") is None
    with pytest.raises(PiiEngineMissingError, match="spaCy"):
        job._store(result("x", error="spaCy pipeline missing", error_kind=ERROR_PII))


# -- the CLI ---------------------------------------------------------------------------------


def cli(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    done = CliRunner().invoke(app, [*args, "--data-dir", str(tmp_path)])
    if done.exception is not None:
        assert isinstance(done.exception, SystemExit), done.exception
    return done.exit_code, [line for line in done.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["profile", "--ray", "--user", "u", "--text", "I like films"], "not with --text"),
        (["profile", "--all", "--ray", "--base-url", "http://h:8000/v1"], "--base-url"),
        (["profile", "--all", "--ray-address", "h:6379", "--base-url", "http://h/v1"], "--ray"),
        (["update", "--ray", "--base-url", "http://h:8000/v1"], "not with --base-url"),
    ],
)
def test_ray_with_a_server_or_text_fails_with_one_line(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    build_record(tmp_path).close()
    code, lines = cli(tmp_path, *args)
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert needle in lines[0] and "leave out --ray" in lines[0]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once closed


def test_a_ray_address_nothing_answers_on_fails_at_once(tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    with pytest.raises(RayProfileError, match="no Ray cluster answers"):
        check_reachable(address)
    for bad in ("head", "head:port", ":6379"):
        with pytest.raises(RayProfileError, match="not host:port"):
            check_reachable(bad)
    check_reachable(None)
    check_reachable("auto")  # left to ray.init, which fails fast without a cluster


def test_profile_ray_at_a_dead_address_says_how_to_start_a_cluster(tmp_path: Path) -> None:
    build_record(tmp_path).close()
    port = closed_port()
    code, lines = cli(tmp_path, "profile", "--users", "scifi", "--ray-address", f"127.0.0.1:{port}")
    assert code == 1 and len(lines) == 1, lines
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in lines[0]
    assert "ray start --head" in lines[0]


def test_help_and_the_scale_modules_load_neither_ray_nor_vllm() -> None:
    code = (
        "import contextlib, io\n"
        "from agent.cli import app\n"
        "import agent.scale.job, agent.scale.engine, agent.scale.render\n"
        "for args in (['--help'], ['profile', '--help'], ['update', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            app(args, prog_name='personae')\n"
        "        except SystemExit as stop:\n"
        "            assert stop.code == 0, stop.code\n"
    )
    assert modules_loaded_by(code, ("ray", "vllm", "pyarrow", "torch")) == []


def test_a_local_cluster_runs_without_rays_memory_monitor_unless_told_otherwise() -> None:
    env: dict[str, str] = {}
    local_cluster_env(env)
    assert env == {"RAY_memory_monitor_refresh_ms": "0"}
    mine = {"RAY_memory_monitor_refresh_ms": "250"}
    local_cluster_env(mine)
    assert mine == {"RAY_memory_monitor_refresh_ms": "250"}
