"""Versioned prompt templates from the `prompts/` package.

A template file is `prompts/<id>.v<version>.toml` with `id`, `version`, `description` and a list
of `[[messages]]` (`role`, `content`), rendered with Jinja `StrictUndefined`: a missing variable
is an error, never an empty string. The sha256 of the file is the prompt's hash; stored results
record id, version and hash. A released template is never edited in place
(tests/prompt_lock.json)."""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import tomllib
from functools import cache
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field

PROMPTS_PACKAGE = "prompts"
_FILE_NAME = re.compile(r"^(?P<id>[a-z0-9_]+)\.v(?P<version>\d+)\.toml$")


class PromptError(ValueError):
    """A template is missing, malformed, or rendered with missing variables."""


class PromptRef(BaseModel):
    """Which prompt produced something: stored with every LLM-made result."""

    model_config = ConfigDict(frozen=True)

    id: str
    version: int
    hash: str


class PromptMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class PromptTemplate(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    version: int = Field(ge=1)
    description: str = ""
    cites: Literal["ids", "lines", "groups"] = "ids"
    """How the reply cites the history: by item id (a per-user enum in the schema), by the
    number of the line shown (one schema for every user: `schemas.profile.LinedDraft`), or by
    naming groups of liked and disliked items (`schemas.profile.GroupedDraft`)."""
    messages: tuple[PromptMessage, ...] = Field(min_length=1)
    hash: str

    @property
    def ref(self) -> PromptRef:
        return PromptRef(id=self.id, version=self.version, hash=self.hash)

    def render(self, **variables: Any) -> RenderedPrompt:
        env = _jinja_env()
        try:
            messages = tuple(
                PromptMessage(role=m.role, content=env.from_string(m.content).render(**variables))
                for m in self.messages
            )
        except jinja2.UndefinedError as err:
            raise PromptError(f"prompt {self.id} v{self.version}: {err.message}") from err
        return RenderedPrompt(ref=self.ref, messages=messages)


class RenderedPrompt(BaseModel):
    """Messages ready to send, with the reference of the template that made them."""

    model_config = ConfigDict(frozen=True)

    ref: PromptRef
    messages: tuple[PromptMessage, ...]


@cache
def _jinja_env() -> jinja2.Environment:
    return jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )


def prompt_files() -> dict[tuple[str, int], bytes]:
    """Every template file in the package, keyed by (id, version)."""
    found: dict[tuple[str, int], bytes] = {}
    for entry in importlib.resources.files(PROMPTS_PACKAGE).iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found[(match["id"], int(match["version"]))] = entry.read_bytes()
    return found


def parse_template(name: str, raw: bytes) -> PromptTemplate:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
        template = PromptTemplate(**data, hash=hashlib.sha256(raw).hexdigest())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, TypeError, ValueError) as err:
        raise PromptError(f"prompts/{name}: {err}") from err
    match = _FILE_NAME.match(name)
    if not match or (match["id"], int(match["version"])) != (template.id, template.version):
        raise PromptError(f"prompts/{name}: id/version inside do not match the file name")
    return template


def load_prompt(prompt_id: str, version: int | None = None) -> PromptTemplate:
    """The template `prompt_id` at `version` (default: its highest version)."""
    files = prompt_files()
    versions = sorted(v for (pid, v) in files if pid == prompt_id)
    if not versions:
        raise PromptError(f"no prompt named {prompt_id!r} in {PROMPTS_PACKAGE}/")
    chosen = versions[-1] if version is None else version
    if chosen not in versions:
        raise PromptError(f"prompt {prompt_id!r} has versions {versions}, not {chosen}")
    return parse_template(f"{prompt_id}.v{chosen}.toml", files[(prompt_id, chosen)])
