"""Options shared by commands, and how CLI overrides become a Settings object."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from agent.config import Settings

ModelOpt = Annotated[
    str | None,
    typer.Option("--model", help="'default' (packaged SmolLM2), a Hugging Face id or a folder."),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="Use a running vLLM server (e.g. http://gpu:8000/v1)."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the record and Chroma store live.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

console = Console(stderr=True)
"""Human-facing output (tables, progress) goes to stderr so stdout stays scriptable."""


def make_settings(**overrides: Any) -> Settings:
    """Settings from env and defaults, with the CLI options that were given on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as err:
        fail(f"invalid setting: {err}")


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
