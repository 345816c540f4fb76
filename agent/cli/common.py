"""Options, error tuples and output shared by commands; how CLI overrides become Settings."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console, ConsoleOptions, RenderableType
from rich.markup import escape
from rich.segment import Segment

from agent.cleantext import clean_text

if TYPE_CHECKING:
    from pydantic import BaseModel

    from agent.config import Settings

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="A preset (default, small, tiny: `personae model list`), a Hugging Face id or folder.",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option("--base-url", help="Use a running vLLM server (e.g. http://gpu:8000/v1)."),
]
DataDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the record and Chroma store live.")
]
ConcurrencyOpt = Annotated[
    int | None, typer.Option("--concurrency", help="Concurrent LLM requests.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def server_errors() -> tuple[type[Exception], ...]:
    """Why no LLM endpoint could be had: the model, the server or the URL. A function, so the
    runtime modules (openai, LangChain) load only when a command meets an error:
    `except server_errors() as err:` evaluates it then."""
    from agent.model_prep import ModelNotAvailableError
    from agent.runtime.endpoint import EndpointError
    from agent.runtime.server import ServerStartError

    return (ModelNotAvailableError, EndpointError, ServerStartError)


def llm_errors() -> tuple[type[Exception], ...]:
    """`server_errors()` and a server that stopped answering."""
    from agent.runtime.structured import LLMUnavailableError

    return (*server_errors(), LLMUnavailableError)


Shown = TypeVar("Shown", bound="BaseModel")


class CleanConsole(Console):
    """A rich Console whose every piece of text goes through `clean_text` as it is rendered
    (tables, progress, logs alike): a title or a review holding U+202E, BEL or an ANSI
    escape cannot spoof what the terminal shows. Rich's own styling is added afterwards."""

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control or not segment.text:
                yield segment
            else:
                yield Segment(clean_text(segment.text), segment.style)


console = CleanConsole(stderr=True)
"""Human-facing output (tables, progress) goes to stderr so stdout stays scriptable."""


def make_settings(**overrides: Any) -> Settings:
    """Settings from env and defaults, with the CLI options that were given on top."""
    from pydantic import ValidationError

    from agent.config import Settings

    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as err:
        fail(f"invalid setting: {err}")


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def chroma_failed(err: ConnectionError) -> NoReturn:
    """End the command on a Chroma server it cannot use (`ChromaUnavailableError`, whose
    message says what to do), on one line: not wrapped at the terminal's width."""
    console.print(f"[bold red]error:[/] {escape(str(err))}", soft_wrap=True)
    raise typer.Exit(1)


def print_json(data: Any) -> None:
    """JSON on stdout; ASCII-escaped, so no control or bidi character reaches the terminal."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=True) + "\n")


def print_result(result: Shown, as_json: bool, show: Callable[[Shown], None]) -> None:
    """`result` as JSON on stdout with --json, else its human view."""
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        show(result)
