"""The local vLLM command line: dtype choice and the settings that reach the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import Settings
from agent.model_prep import ResolvedModel
from agent.runtime.server import server_command, server_dtype


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n")
    return path


@pytest.mark.skipif(Path("/dev/nvidia0").exists(), reason="GPU host: 'auto' is left to vLLM")
def test_auto_is_float32_on_a_cpu_that_only_emulates_bf16(tmp_path: Path) -> None:
    assert server_dtype("auto", cpuinfo(tmp_path, "fma")) == "float32"


def test_auto_is_left_to_vllm_on_a_cpu_with_native_bf16(tmp_path: Path) -> None:
    assert server_dtype("auto", cpuinfo(tmp_path, "avx512f avx512_bf16")) == "auto"
    assert server_dtype("auto", cpuinfo(tmp_path, "amx_bf16")) == "auto"


def test_explicit_dtype_and_unreadable_cpuinfo_pass_through(tmp_path: Path) -> None:
    assert server_dtype("bfloat16", cpuinfo(tmp_path, "fma")) == "bfloat16"
    assert server_dtype("auto", tmp_path / "missing") == "auto"


def test_command_carries_dtype_eager_and_extra_args(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dtype="float16", server_args=["--max-num-seqs", "8"])
    model = ResolvedModel(path="/m", served_name="m")
    cmd = server_command(settings, model, "127.0.0.1", 9)
    assert cmd[cmd.index("--dtype") + 1] == "float16"
    assert "--enforce-eager" in cmd and cmd[-2:] == ["--max-num-seqs", "8"]
