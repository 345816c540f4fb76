"""What this machine's CPU can do natively, read from /proc/cpuinfo (Linux x86)."""

from __future__ import annotations

from pathlib import Path

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """True when the CPU has AVX512-BF16 or AMX, False when it lists flags without them,
    None when it cannot tell (no /proc/cpuinfo, or no flags line: not x86 Linux)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    if "flags" not in text:
        return None
    return any(flag in text for flag in BF16_FLAGS)
