"""What a run was made from, so anyone can reproduce it or tell two runs apart: code (git
commit and whether the tree was dirty), model and embedder, prompt versions and hashes, seeds,
every setting, and a hash of the data."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.prompts import PromptRef, load_prompt

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ("profile", "rerank", "reask")


class Manifest(BaseModel):
    run_id: str
    created_at: datetime
    git_commit: str | None
    git_dirty: bool | None
    python: str
    backends: dict[str, str]
    smoke: bool
    fakes: list[str]
    prompts: dict[str, PromptRef]
    seeds: dict[str, int]
    data_hash: str
    data: dict[str, Any]
    options: dict[str, Any]
    settings: dict[str, Any]


def git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def prompt_refs() -> dict[str, PromptRef]:
    return {pid: load_prompt(pid).ref for pid in PROMPTS}


def make_manifest(run_id: str, **fields: Any) -> Manifest:
    status = git("status", "--porcelain")
    return Manifest(
        run_id=run_id,
        created_at=datetime.now(UTC),
        git_commit=git("rev-parse", "HEAD"),
        git_dirty=bool(status) if status is not None else None,
        python=platform.python_version(),
        prompts=prompt_refs(),
        **fields,
    )
