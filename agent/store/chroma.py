"""The Chroma client personae uses: embedded under data_dir unless settings.chroma_url is set.

Chroma only ever holds derived data (embeddings of items and profiles kept in the record),
so every collection can be verified and rebuilt; see `agent.store.consistency`.

A server (`chroma run --path DIR --host HOST --port PORT`) is checked before a client is made:
the URL must be http(s)://HOST[:PORT][/PREFIX], `GET PREFIX/api/v2/heartbeat` must answer as
Chroma does and `/api/v2/version` must be 1.x, the servers the pinned chromadb 1.5 client
speaks to. A failed check, and a server that stops answering in the middle of a command,
raise `ChromaUnavailableError`, whose message is one line saying what to do.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, cast
from urllib.parse import urlsplit

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection
from chromadb.config import Settings as ChromaSettings
from chromadb.errors import ChromaError

from agent.config import Settings
from agent.store.layout import chroma_dir

WEDGED_MARKER = "Failed to apply logs to the hnsw segment writer"
"""What an embedded store killed mid-write raises on first use (chroma-core/chroma#7678)."""
API = "/api/v2"
DEFAULT_PORTS = {"http": 8000, "https": 443}
"""Port of a URL that names none: `chroma run`'s default for http, the standard one for https."""
PROBE_TIMEOUT_S = 10.0
"""Seconds the server check waits for each answer (a host that drops packets would otherwise
hold the command for the system's connect timeout, minutes)."""
SERVER_MAJOR = "1"
"""Major version a server must report at /api/v2/version (chromadb 1.5.9's `chroma run`
reports 1.0.0)."""


class ChromaUnavailableError(ConnectionError):
    """settings.chroma_url cannot be used: not a URL, nothing answers there, not a Chroma 1.x
    server (API v2), or the server stopped answering during a command. One line, with what
    to do."""


Lost = Callable[[ChromaUnavailableError], NoReturn]


@dataclass(frozen=True)
class ServerAddress:
    url: str
    """As configured, for messages."""
    base: str
    """scheme://host:port[/prefix], without the API path."""
    host: str
    port: int
    ssl: bool

    def api(self, path: str) -> str:
        return f"{self.base}{API}/{path}"

    def start_hint(self) -> str:
        if self.host in ("localhost", "127.0.0.1", "::1"):
            return f"start one with `chroma run --path DIR --host {self.host} --port {self.port}`"
        command = f"chroma run --path DIR --host 0.0.0.0 --port {self.port}"
        return f"start one on {self.host} with `{command}`"


def server_address(url: str) -> ServerAddress:
    """Parse a chroma_url; a trailing /api/v2 is accepted and dropped."""
    bad = (
        f"chroma_url {url!r} is not a Chroma server URL: give http://HOST:PORT (e.g. "
        "http://127.0.0.1:8000) in --chroma-url or PERSONAE_CHROMA_URL"
    )
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as err:  # a port that is not a number, or out of range
        raise ChromaUnavailableError(f"{bad} ({err})") from err
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ChromaUnavailableError(bad)
    port = port or DEFAULT_PORTS[parts.scheme]
    host = parts.hostname
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    prefix = parts.path.rstrip("/").removesuffix(API)
    base = f"{parts.scheme}://{netloc}{prefix}"
    return ServerAddress(url, base, host, port, parts.scheme == "https")


def check_server(address: ServerAddress, timeout: float = PROBE_TIMEOUT_S) -> str:
    """The version of the Chroma server at `address`; raises ChromaUnavailableError unless
    it is a 1.x server (API v2) answering there."""
    url = address.url
    try:
        with httpx.Client(timeout=timeout) as http:
            beat = http.get(address.api("heartbeat"))
            if not _is_heartbeat(beat):
                raise ChromaUnavailableError(_not_chroma(address, beat, http))
            version = _json(http.get(address.api("version")))
    except httpx.ConnectError as err:
        raise ChromaUnavailableError(
            f"no Chroma server answers at {url} ({_one_line(err)}): {address.start_hint()}, "
            "or fix --chroma-url / PERSONAE_CHROMA_URL"
        ) from err
    except httpx.TimeoutException as err:
        raise ChromaUnavailableError(
            f"{url} did not answer within {timeout:g} s ({type(err).__name__}): check that "
            f"the host is reachable and a Chroma server runs there, or {address.start_hint()}"
        ) from err
    except httpx.TransportError as err:  # reset, protocol error, proxy error
        raise ChromaUnavailableError(
            f"{url}: no usable answer ({type(err).__name__}: {_one_line(err)}): is it a "
            f"Chroma server? {address.start_hint()}"
        ) from err
    except httpx.InvalidURL as err:
        raise ChromaUnavailableError(f"chroma_url {url!r} is not a valid URL ({err})") from err
    if not isinstance(version, str) or version.split(".")[0] != SERVER_MAJOR:
        raise ChromaUnavailableError(
            f"{url}: Chroma server version {version!r}, but personae's client (chromadb "
            f"{chromadb.__version__}) speaks to {SERVER_MAJOR}.x servers: {address.start_hint()} "
            "from personae's environment"
        )
    return version


def _json(response: httpx.Response) -> Any:
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _is_heartbeat(response: httpx.Response) -> bool:
    body = _json(response)
    return isinstance(body, dict) and "nanosecond heartbeat" in body


def _not_chroma(address: ServerAddress, beat: httpx.Response, http: httpx.Client) -> str:
    answered = f"GET {API}/heartbeat answered {beat.status_code}"
    if _is_heartbeat(http.get(f"{address.base}/api/v1/heartbeat")):
        return (
            f"{address.url} is a Chroma server older than 1.0 (API v1 only; {answered}): "
            f"personae needs chromadb 1.x (API v2): upgrade it, or {address.start_hint()}"
        )
    return (
        f"{address.url} is not a Chroma server with API v2 (chromadb 1.x; {answered}): "
        f"fix --chroma-url / PERSONAE_CHROMA_URL, or {address.start_hint()}"
    )


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def open_client(settings: Settings, on_lost: Lost | None = None) -> ClientAPI:
    """The embedded store under data_dir, or a checked client of settings.chroma_url whose
    calls raise ChromaUnavailableError if the server stops answering. `on_lost` is called
    with that error first (the CLI ends the command there with its one line)."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.chroma_url:
        address = server_address(settings.chroma_url)
        check_server(address)
        try:
            client = chromadb.HttpClient(
                host=address.base, port=address.port, ssl=address.ssl, settings=chroma_settings
            )
        except (ValueError, ChromaError) as err:  # gone since the check, or refused us
            raise ChromaUnavailableError(
                f"{address.url}: the Chroma client could not start ({_one_line(err)}); "
                f"check the server, or {address.start_hint()}"
            ) from err
        return cast(ClientAPI, _Guarded(client, _reporter(address, on_lost)))
    path = chroma_dir(settings.data_dir)
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def _reporter(address: ServerAddress, on_lost: Lost | None) -> Callable[[Exception], NoReturn]:
    def lost(err: Exception) -> NoReturn:
        error = ChromaUnavailableError(
            f"the Chroma server at {address.url} stopped answering ({type(err).__name__}: "
            f"{_one_line(err)}): start it again and rerun the command (`index items` embeds "
            "only what the index lacks; `forget` finishes what it began)"
        )
        if on_lost is not None:
            on_lost(error)
        raise error from err

    return lost


class _Guarded:
    """A chromadb client or collection whose calls turn a transport failure (refused, reset,
    timed out: `httpx.TransportError`) into ChromaUnavailableError; the collections it returns
    are guarded too. chromadb lets raw httpx errors out of every call but its constructor."""

    def __init__(self, target: object, lost: Callable[[Exception], NoReturn]) -> None:
        self._target = target
        self._lost = lost

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                result = value(*args, **kwargs)
            except httpx.TransportError as err:
                self._lost(err)
            return self._wrap(result)

        return guarded

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, Collection):
            return _Guarded(result, self._lost)
        if isinstance(result, list) and any(isinstance(r, Collection) for r in result):
            return [self._wrap(r) for r in result]
        return result

    def __repr__(self) -> str:
        return f"guarded {self._target!r}"


def is_wedged(error: BaseException) -> bool:
    return WEDGED_MARKER in str(error)
