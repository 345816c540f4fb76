"""A content-addressed JSONL cache for LLM results, so an interrupted eval resumes where it
stopped and a rerun with the same inputs costs nothing.

The key hashes everything that determines the reply (model, rendered messages, schema,
sampling settings), so a changed prompt, model or history is a miss, never a stale hit. Lines
are appended and flushed as results arrive; a line cut short by a kill is ignored on load."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def cache_key(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


class JsonlCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.hits = 0
        if path.exists():
            self._load()

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the last line of a killed run
                if isinstance(row, dict) and "key" in row and "value" in row:
                    self.entries[row["key"]] = row["value"]

    def get(self, key: str) -> dict[str, Any] | None:
        value = self.entries.get(key)
        if value is not None:
            self.hits += 1
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.entries[key] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"key": key, "value": value}, default=str) + "\n")
