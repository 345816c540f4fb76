"""The heavy entry points commands call, imported on first call instead of at import.

`personae --help` must not pay for LangChain, openai, vLLM, torch, sentence-transformers or
Chroma (seconds on 2 cores), nor for the record's pydantic schemas (~0.2 s CPU), so command
modules import from here, and these functions import
the real thing when a command runs. Command modules keep them as module attributes, so tests
replace them there (`monkeypatch.setattr(recommend_cmds, "load_embedder", ...)`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

    from agent.config import Settings
    from agent.embeddings import Embedder
    from agent.runtime.endpoint import Endpoint
    from agent.runtime.structured import StructuredGenerator
    from agent.store.record import RecordStore


def record_at(data_dir: Path) -> RecordStore:
    """The system of record under data_dir (its module loads the pydantic schemas)."""
    from agent.store.record import RecordStore

    return RecordStore.at(data_dir)


def load_embedder(settings: Settings) -> Embedder:
    """The configured embedder (sentence-transformers loads on its first `embed`)."""
    from agent.embeddings import load_embedder as load

    return load(settings)


def open_client(settings: Settings) -> ClientAPI:
    """The Chroma client (embedded under data_dir, or settings.chroma_url). A server that
    cannot be used, now or later in the command, ends the command with its one-line error."""
    from agent.cli.common import chroma_failed
    from agent.store.chroma import ChromaUnavailableError
    from agent.store.chroma import open_client as open_chroma

    try:
        return open_chroma(settings, on_lost=chroma_failed)
    except ChromaUnavailableError as err:
        chroma_failed(err)


@contextmanager
def open_generator(settings: Settings) -> Iterator[StructuredGenerator]:
    """A structured generator on the configured LLM endpoint (a managed local server lives
    for the block)."""
    from agent.runtime.endpoint import open_generator as open_llm

    with open_llm(settings) as generator:
        yield generator


@contextmanager
def open_endpoint(settings: Settings) -> Iterator[Endpoint]:
    from agent.runtime.endpoint import open_endpoint as open_llm_endpoint

    with open_llm_endpoint(settings) as endpoint:
        yield endpoint
