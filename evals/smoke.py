"""The `--smoke` LLM: answers every structured request with a small valid object built from
the JSON schema it was sent, choosing enum values by a hash of the prompt (deterministic and
input-dependent, never random). It proves the eval's plumbing in seconds without a server; its
numbers mean nothing, and the report says so.

The test fakes (tests/fakes.py) are built from these pieces: the package cannot import from
tests/, so the shared plumbing lives here."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult

from agent.config import Settings
from agent.runtime.structured import StructuredGenerator

SMOKE_MODEL = "smoke-schema-filler"


class ReplyChatModel(BaseChatModel):
    """A chat model that answers in-process: subclasses write `_reply` (and `_areply` when the
    async path must differ) instead of LangChain's pair of `_generate` signatures."""

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        raise NotImplementedError

    async def _areply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        return self._reply(messages, kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._reply(messages, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return await self._areply(messages, kwargs)


def prompt_text(messages: Sequence[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


def chat_result(content: str, tokens_in: int, tokens_out: int) -> ChatResult:
    usage = UsageMetadata(
        input_tokens=tokens_in, output_tokens=tokens_out, total_tokens=tokens_in + tokens_out
    )
    message = AIMessage(content=content, usage_metadata=usage)
    return ChatResult(generations=[ChatGeneration(message=message)])


def label_probe_result(prompt: str, top: int) -> ChatResult:
    """A one-token reply with `top` log-probs over the letters A-Z, each letter's value a
    hash of (prompt, letter): what a label probe reads, deterministic and input-dependent."""

    def logprob(letter: str) -> float:
        digest = hashlib.blake2b(f"{prompt}|{letter}".encode(), digest_size=4).digest()
        return -round(int.from_bytes(digest, "big") / 2**32 * 10, 4)

    ranked = sorted((logprob(c), c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")[::-1][:top]
    entries = [{"token": c, "logprob": v, "bytes": list(c.encode())} for v, c in ranked]
    usage = UsageMetadata(input_tokens=len(prompt) // 4, output_tokens=1,
                          total_tokens=len(prompt) // 4 + 1)  # fmt: skip
    first = entries[0]
    message = AIMessage(
        content=str(first["token"]),
        usage_metadata=usage,
        response_metadata={"logprobs": {"content": [first | {"top_logprobs": entries}]}},
    )
    return ChatResult(generations=[ChatGeneration(message=message)])


class SmokeChatModel(ReplyChatModel):
    @property
    def _llm_type(self) -> str:
        return "smoke"

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        prompt = prompt_text(messages)
        if "response_format" not in kwargs and kwargs.get("logprobs"):
            return label_probe_result(prompt, int(kwargs.get("top_logprobs") or 1))
        schema = kwargs["response_format"]["json_schema"]["schema"]
        content = json.dumps(self.filler(schema, prompt).fill(schema))
        return chat_result(content, len(prompt) // 4, len(content) // 4)

    def filler(self, schema: dict[str, Any], prompt: str) -> Filler:
        seed = int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=4).digest(), "big")
        return Filler(schema, seed)


class Filler:
    """Walks a JSON schema. With `rotate`, each enum node answers its values in turn starting
    at `seed`, so an array of enum values gets distinct values (a ranking of distinct
    candidates); without, it always answers `values[seed]` (0 first, -1 last). Strings are
    `word`, repeated up to any `minLength`."""

    def __init__(
        self, root: dict[str, Any], seed: int, *, rotate: bool = True, word: str = "smoke"
    ) -> None:
        self.root = root
        self.seed = seed
        self.rotate = rotate
        self.word = word
        self.used: dict[int, int] = {}

    def fill(self, node: dict[str, Any]) -> Any:
        if "$ref" in node:
            return self.fill(self.root["$defs"][node["$ref"].split("/")[-1]])
        if "anyOf" in node:
            return self.fill(node["anyOf"][0])
        if "enum" in node:
            return self.enum_value(node)
        if "const" in node:
            return node["const"]
        kind = node.get("type")
        if kind == "object":
            required = node.get("required", list(node.get("properties", {})))
            return {k: self.fill(node["properties"][k]) for k in required}
        if kind == "array":
            return [self.fill(node["items"]) for _ in range(max(1, node.get("minItems", 0)))]
        if kind == "string":
            return self.word * max(1, math.ceil(node.get("minLength", 0) / len(self.word)))
        if kind in ("number", "integer"):
            return node.get("minimum", 0)
        if kind == "boolean":
            return True
        raise ValueError(f"schema node the smoke model cannot fill: {node}")

    def enum_value(self, node: dict[str, Any]) -> Any:
        values = node["enum"]
        turn = self.used.get(id(node), 0)
        if self.rotate:
            self.used[id(node)] = turn + 1
        return values[(self.seed + turn) % len(values)]


def smoke_generator(settings: Settings) -> StructuredGenerator:
    return StructuredGenerator(settings, SmokeChatModel(), SMOKE_MODEL, base_url="(smoke)")
