"""Which backends an eval runs on, and the refusal to publish numbers made by fakes.

An eval is real when its LLM is an OpenAI-compatible server (`ChatOpenAI`, i.e. vLLM) and its
embedder is a sentence-transformers model. Anything else (the hash embedder, the smoke model,
test doubles) is refused unless the run is marked `--smoke`, and a smoke run says so at the top
of its report."""

from __future__ import annotations

from agent.embeddings import Embedder, SentenceTransformerEmbedder
from agent.runtime.structured import StructuredGenerator


class FakeBackendError(RuntimeError):
    """A fake backend in a run that was not marked as a smoke test."""


def describe(generator: StructuredGenerator | None, embedder: Embedder) -> dict[str, str]:
    llm = "none (--no-llm)"
    if generator is not None:
        llm = f"{type(generator.chat_model).__name__}:{generator.model_name}@{generator.base_url}"
    return {"llm": llm, "embedder": f"{type(embedder).__name__}:{embedder.model_id}"}


def fakes(generator: StructuredGenerator | None, embedder: Embedder) -> list[str]:
    from langchain_openai import ChatOpenAI

    found = []
    if generator is not None and not isinstance(generator.chat_model, ChatOpenAI):
        found.append(f"LLM {type(generator.chat_model).__name__}")
    if not isinstance(embedder, SentenceTransformerEmbedder):
        found.append(f"embedder {type(embedder).__name__}")
    return found


def check_backends(
    generator: StructuredGenerator | None, embedder: Embedder, smoke: bool
) -> list[str]:
    """The fake backends in use; raises unless `smoke`."""
    found = fakes(generator, embedder)
    if found and not smoke:
        raise FakeBackendError(
            f"refusing to evaluate with fake backends ({', '.join(found)}): their numbers mean "
            "nothing. Use a real vLLM server and embedding model, or pass --smoke to test the "
            "plumbing (the report is then marked as a smoke run)."
        )
    return found
