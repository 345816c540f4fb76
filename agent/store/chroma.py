"""The Chroma client personae uses: embedded under data_dir unless settings.chroma_url is set.

Chroma only ever holds derived data (embeddings of items and profiles kept in the record),
so every collection can be verified and rebuilt; see `agent.store.consistency`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import chromadb
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings

from agent.config import Settings

WEDGED_MARKER = "Failed to apply logs to the hnsw segment writer"
"""What an embedded store killed mid-write raises on first use (chroma-core/chroma#7678)."""


def chroma_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "chroma"


def open_client(settings: Settings) -> ClientAPI:
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if not url.hostname:
            raise ValueError(f"chroma_url {settings.chroma_url!r} has no host")
        ssl = url.scheme == "https"
        return chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if ssl else 8000),
            ssl=ssl,
            settings=chroma_settings,
        )
    path = chroma_dir(settings.data_dir)
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def is_wedged(error: BaseException) -> bool:
    return WEDGED_MARKER in str(error)
