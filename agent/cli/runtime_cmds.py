"""`personae serve` and `personae runtime check`."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from agent.cli.common import (
    BaseUrlOpt,
    JsonOpt,
    ModelOpt,
    console,
    fail,
    make_settings,
    print_json,
    server_errors,
)

if TYPE_CHECKING:
    from agent.runtime.check import RuntimeReport

runtime_app = typer.Typer(help="Check the LLM runtime.", no_args_is_help=True)

KvCacheOpt = Annotated[
    int | None, typer.Option("--kv-cache-gib", help="CPU KV-cache size in GiB (local server).")
]
EagerOpt = Annotated[
    bool | None,
    typer.Option("--eager/--no-eager", help="Skip graph capture (fast start on CPU)."),
]
MaxLenOpt = Annotated[int | None, typer.Option("--max-model-len", help="Max context length.")]


def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    kv_cache_gib: KvCacheOpt = None,
    eager: EagerOpt = None,
    max_model_len: MaxLenOpt = None,
) -> None:
    """Run vLLM's OpenAI-compatible server for the configured model in the foreground.

    Other personae commands can then use it with --base-url http://HOST:PORT/v1.
    Stop it with Ctrl-C."""
    from agent.model_prep import ModelNotAvailableError, resolve_model
    from agent.runtime.server import server_command, server_env

    settings = make_settings(
        model=model, kv_cache_gib=kv_cache_gib, enforce_eager=eager, max_model_len=max_model_len
    )
    try:
        resolved = resolve_model(settings)
    except ModelNotAvailableError as err:
        fail(str(err))
    cmd = server_command(settings, resolved, host, port)
    console.print(f"serving [bold]{resolved.served_name}[/] at http://{host}:{port}/v1")
    console.print("[dim]" + " ".join(cmd) + "[/]")
    sys.stderr.flush()
    os.execve(sys.executable, cmd, server_env(settings))  # vLLM handles Ctrl-C itself


@runtime_app.command("check")
def check(
    model: ModelOpt = None,
    base_url: BaseUrlOpt = None,
    kv_cache_gib: KvCacheOpt = None,
    eager: EagerOpt = None,
    max_model_len: MaxLenOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Start (or reach) the server and print which server, model, max context and one
    structured sample with its latency."""
    settings = make_settings(
        model=model,
        base_url=base_url,
        kv_cache_gib=kv_cache_gib,
        enforce_eager=eager,
        max_model_len=max_model_len,
    )
    if not settings.base_url:
        console.print("starting a local vLLM server (CPU: about 30-90 s)...")
    from agent.runtime.check import run_check
    from agent.runtime.structured import StructuredOutputError

    try:
        report = run_check(settings)
    except server_errors() as err:
        fail(str(err))
    except StructuredOutputError as err:
        fail(f"{err}\nlast reply: {err.last_raw[:500]}")
    if json_output:
        print_json(report.model_dump(mode="json"))
    else:
        console.print(report_table(report))


def report_table(report: RuntimeReport) -> Table:
    table = Table(title="personae runtime check", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    server = f"{report.base_url} ({'managed local' if report.managed else 'existing'})"
    table.add_row("server", server)
    if report.server_start_s is not None:
        table.add_row("server start", f"{report.server_start_s:.1f} s (log: {report.server_log})")
    table.add_row("model", report.model)
    table.add_row("max context", str(report.max_model_len))
    table.add_row("prompt", f"{report.meta.prompt.id} v{report.meta.prompt.version}")
    table.add_row("sample", report.sample.model_dump_json(indent=1))
    table.add_row("latency", f"{report.meta.latency_s:.2f} s")
    table.add_row("tokens in/out", f"{report.meta.tokens_in}/{report.meta.tokens_out}")
    table.add_row("attempts", f"{report.meta.attempts} (re-asks {report.meta.reasks})")
    return table


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(runtime_app, name="runtime")
