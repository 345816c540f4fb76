"""Where the stores live under `data_dir`, and the collection names. Light on purpose (no
chromadb): commands that only read a snapshot find it without importing Chroma."""

from __future__ import annotations

from pathlib import Path

ITEMS_COLLECTION = "items"
PROFILES_COLLECTION = "profiles"


def chroma_dir(data_dir: Path) -> Path:
    """The embedded Chroma store's persist directory."""
    return Path(data_dir) / "chroma"
