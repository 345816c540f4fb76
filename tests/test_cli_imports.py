"""The CLI answers `--help` without the heavy libraries, and `recommend --no-rerank` without the
LLM stack: checked in a fresh interpreter (`sys.modules`), since this test process has long
imported everything."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest

from agent.cli.choices import MIRRORS
from tests.recommend_data import build_world

HEAVY = (
    "langchain", "langchain_core", "langchain_openai", "langgraph", "openai", "vllm", "torch",
    "sentence_transformers", "transformers", "chromadb", "matplotlib", "lightgbm", "scipy",
    "evals", "ray", "pyarrow", "pandas",
)  # fmt: skip
"""Top-level packages that take ~0.3-3 s each to import on these machines (the project rule's
list, and the eval harness)."""

ROOT = Path(__file__).resolve().parents[1]


def loaded_after(script: str, *, env_dir: Path | None = None) -> dict[str, Any]:
    """Run `script` in a fresh interpreter; it must print a JSON object as its last line.
    `loaded` (added here) lists the HEAVY packages it left in sys.modules."""
    probe = textwrap.dedent(script) + textwrap.dedent(
        f"""
        import json as _json, sys as _sys
        _heavy = {HEAVY!r}
        _out = globals().get("result", {{}})
        _out["loaded"] = sorted(h for h in _heavy if h in _sys.modules)
        print(_json.dumps(_out))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_dir or ROOT), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def test_help_of_every_command_loads_no_heavy_library(tmp_path: Path) -> None:
    data = loaded_after(
        """
        import contextlib, io
        import typer
        from agent.cli import app

        root = typer.main.get_command(app)
        paths = []

        def walk(command, path):
            paths.append(path)
            for name, sub in getattr(command, "commands", {}).items():
                walk(sub, [*path, name])

        walk(root, [])
        shown = {}
        for path in paths:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    app([*path, "--help"], prog_name="personae")
                except SystemExit as stop:
                    assert stop.code == 0, (path, stop.code)
            shown[" ".join(path)] = out.getvalue()
        result = {"paths": list(shown), "root": shown[""], "recommend": shown["recommend"]}
        """,
        env_dir=tmp_path,
    )
    assert data["loaded"] == [], f"--help imported {data['loaded']}"
    paths = data["paths"]
    assert isinstance(paths, list) and len(paths) > 20  # the whole tree was walked
    for command in ("recommend", "stats", "similar", "chat", "eval", "index", "profile"):
        assert command in str(data["root"]), f"{command} missing from --help"
    assert {"index models", "index items", "eval run"} <= set(paths)
    for option in ("--no-rerank", "--filter", "--k", "--base-url", "--data-dir", "--json"):
        assert option in str(data["recommend"]), f"recommend --help lacks {option}"


RECOMMEND_SCRIPT = """
    import contextlib, io, json
    from agent.cli import app, recommend_cmds
    from agent.embeddings import HashEmbedder

    recommend_cmds.load_embedder = lambda settings: HashEmbedder()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            app(["recommend", "scifi", "--no-rerank", "--k", "3", "--json",
                 "--data-dir", DATA_DIR], prog_name="personae")
        except SystemExit as stop:
            assert stop.code == 0, stop.code
    result = {"items": json.loads(out.getvalue())["items"]}
    """


def test_recommend_without_the_rerank_loads_no_llm_stack(tmp_path: Path) -> None:
    """Nor Chroma while `index items` left a vector snapshot; without one, Chroma answers
    the same."""
    from agent.store.item_snapshot import discard_snapshot

    world = build_world(tmp_path)
    folder = world.index.snapshot_folder()
    world.record.close()
    script = f"DATA_DIR = {str(tmp_path)!r}\n" + textwrap.dedent(RECOMMEND_SCRIPT)
    data = loaded_after(script, env_dir=tmp_path)
    items = data["items"]
    assert isinstance(items, list) and len(items) == 3  # it did recommend
    llm_stack = {"langchain", "langchain_core", "langchain_openai", "langgraph", "openai", "vllm"}
    assert not llm_stack & set(data["loaded"]), data["loaded"]
    assert "chromadb" not in data["loaded"]  # dense retrieval read the item snapshot
    assert folder is not None
    discard_snapshot(folder)
    from_chroma = loaded_after(script, env_dir=tmp_path)
    assert "chromadb" in from_chroma["loaded"]
    assert from_chroma["items"] == items


def test_similar_users_loads_no_llm_stack(tmp_path: Path) -> None:
    """`similar` used to import the segment module for one text helper, and with it
    LangChain and openai (3 of its 4 s)."""
    from agent.embeddings import HashEmbedder
    from agent.store.profile_index import ProfileIndex
    from agent.store.profiles import ProfileStore

    world = build_world(tmp_path)
    profiles = ProfileIndex(world.index.client, HashEmbedder())
    profiles.sync(ProfileStore(world.record).iter_latest())
    world.record.close()
    data = loaded_after(
        f"""
        import contextlib, io, json
        from agent.cli import app, segment_cmds
        from agent.embeddings import HashEmbedder

        segment_cmds.load_embedder = lambda settings: HashEmbedder()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                app(["similar", "scifi", "--json", "--data-dir", {str(tmp_path)!r}],
                    prog_name="personae")
            except SystemExit as stop:
                assert stop.code == 0, stop.code
        result = {{"similar": json.loads(out.getvalue())["similar"]}}
        """,
        env_dir=tmp_path,
    )
    assert data["similar"]  # it did answer
    llm_stack = {"langchain", "langchain_core", "langchain_openai", "langgraph", "openai", "vllm"}
    assert not llm_stack & set(data["loaded"]), data["loaded"]


@pytest.mark.parametrize("mirror", list(MIRRORS), ids=lambda m: m.__name__)
def test_option_choices_mirror_their_source_enum(mirror: type[StrEnum]) -> None:
    module, name = MIRRORS[mirror].split(":")
    source = getattr(importlib.import_module(module), name)
    assert [m.value for m in mirror] == [m.value for m in source]
    assert [m.name for m in mirror] == [m.name for m in source]
