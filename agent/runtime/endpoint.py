"""One way to get an OpenAI-compatible vLLM endpoint: connect to `--base-url`, or start a
managed local server for the configured model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from agent.config import Settings
from agent.model_prep import resolve_model
from agent.runtime.server import ManagedServer
from agent.runtime.structured import StructuredGenerator


class EndpointError(RuntimeError):
    """The configured server cannot be reached or does not serve the expected model."""


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    model: str
    max_model_len: int | None
    managed: bool
    startup_seconds: float | None = None
    log_path: str | None = None


def describe_server(settings: Settings, base_url: str) -> tuple[str, int | None]:
    """Ask `/v1/models` which model the server serves and its max context."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {settings.api_key}"}
    try:
        response = httpx.get(url, headers=headers, timeout=10.0)
        response.raise_for_status()
    except httpx.HTTPError as err:
        raise EndpointError(f"cannot list models at {url}: {err}") from err
    models = response.json().get("data", [])
    if not models:
        raise EndpointError(f"{url} lists no models")
    wanted = settings.served_model_name
    chosen = next((m for m in models if m["id"] == wanted), None) if wanted else models[0]
    if chosen is None:
        names = ", ".join(m["id"] for m in models)
        raise EndpointError(f"{url} does not serve {wanted!r} (it serves: {names})")
    return str(chosen["id"]), chosen.get("max_model_len")


@contextmanager
def open_endpoint(settings: Settings) -> Iterator[Endpoint]:
    """Yield a ready endpoint; a managed local server is stopped when the block exits."""
    if settings.base_url:
        name, max_len = describe_server(settings, settings.base_url)
        yield Endpoint(settings.base_url, name, max_len, managed=False)
        return
    with ManagedServer(settings, resolve_model(settings)) as server:
        name, max_len = describe_server(settings, server.base_url)
        yield Endpoint(
            server.base_url,
            name,
            max_len,
            managed=True,
            startup_seconds=server.startup_seconds,
            log_path=str(server.log_path),
        )


@contextmanager
def open_generator(settings: Settings) -> Iterator[StructuredGenerator]:
    """A `StructuredGenerator` on the configured endpoint, for the duration of the block."""
    with open_endpoint(settings) as endpoint:
        yield StructuredGenerator.for_endpoint(settings, endpoint.base_url, endpoint.model)
