"""`personae model ...`: prepare and inspect the LLM personae runs."""

from __future__ import annotations

from typing import Annotated

import typer

from agent.cli.common import ModelOpt, console, fail, make_settings, print_json
from agent.config import DEFAULT_MODEL
from agent.model_prep import (
    ModelNotAvailableError,
    default_model_dir,
    is_prepared,
    prepare_default_model,
    resolve_model,
    verify_model_folder,
)

model_app = typer.Typer(help="Prepare and inspect the LLM.", no_args_is_help=True)


@model_app.command("prepare")
def prepare(
    model: ModelOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Convert again even if done.")] = False,
) -> None:
    """Make the configured model loadable by vLLM.

    The default (packaged SmolLM2-135M-Instruct GGUF) is converted once into a Hugging Face
    folder under the cache directory; later runs skip it. A local folder is verified by
    loading its config and tokenizer; a hub id is left for vLLM to download."""
    settings = make_settings(model=model)
    try:
        if settings.model == DEFAULT_MODEL:
            target = default_model_dir(settings)
            if is_prepared(target) and not force:
                console.print(f"[green]default model ready[/] in {target}")
                return
            console.print("converting the packaged SmolLM2-135M-Instruct GGUF (about a minute)")
            folder = prepare_default_model(settings, force=force)
            console.print(f"[green]default model ready[/] in {folder}")
            return
        resolved = resolve_model(settings)
        if resolved.path.startswith("/"):
            from pathlib import Path

            verify_model_folder(Path(resolved.path))
            console.print(f"[green]model folder loads[/]: {resolved.path}")
        else:
            console.print(f"{resolved.path} is a hub id: vLLM downloads it when it starts")
    except ModelNotAvailableError as err:
        fail(str(err))


@model_app.command("info")
def info(model: ModelOpt = None) -> None:
    """Print what the configured model resolves to (JSON)."""
    settings = make_settings(model=model)
    try:
        resolved = resolve_model(settings)
    except ModelNotAvailableError as err:
        fail(str(err))
    print_json(
        {"model": settings.model, "path": resolved.path, "served_name": resolved.served_name}
    )


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")
