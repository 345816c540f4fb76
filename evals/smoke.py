"""The `--smoke` LLM: answers every structured request with a small valid object built from
the JSON schema it was sent, choosing enum values by a hash of the prompt (deterministic and
input-dependent, never random). It proves the eval's plumbing in seconds without a server; its
numbers mean nothing, and the report says so."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from agent.config import Settings
from agent.runtime.structured import StructuredGenerator

SMOKE_MODEL = "smoke-schema-filler"


class SmokeChatModel(BaseChatModel):
    @property
    def _llm_type(self) -> str:
        return "smoke"

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> ChatResult:
        prompt = "\n".join(str(m.content) for m in messages)
        seed = int.from_bytes(hashlib.blake2b(prompt.encode(), digest_size=4).digest(), "big")
        schema = kwargs["response_format"]["json_schema"]["schema"]
        content = json.dumps(Filler(schema, seed).fill(schema))
        usage = {"input_tokens": len(prompt) // 4, "output_tokens": len(content) // 4}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        message = AIMessage(content=content, usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])

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
        return self._reply(messages, kwargs)


class Filler:
    """Walks a JSON schema. Arrays of enum values get distinct values (a ranking of distinct
    candidates), in an order rotated by the prompt hash."""

    def __init__(self, root: dict[str, Any], seed: int) -> None:
        self.root = root
        self.seed = seed
        self.used: dict[int, int] = {}

    def fill(self, node: dict[str, Any]) -> Any:
        if "$ref" in node:
            return self.fill(self.root["$defs"][node["$ref"].split("/")[-1]])
        if "anyOf" in node:
            return self.fill(node["anyOf"][0])
        if "enum" in node:
            values = node["enum"]
            turn = self.used.get(id(node), 0)
            self.used[id(node)] = turn + 1
            return values[(self.seed + turn) % len(values)]
        if "const" in node:
            return node["const"]
        kind = node.get("type")
        if kind == "object":
            required = node.get("required", list(node.get("properties", {})))
            return {k: self.fill(node["properties"][k]) for k in required}
        if kind == "array":
            return [self.fill(node["items"]) for _ in range(max(1, node.get("minItems", 0)))]
        if kind == "string":
            return "smoke"
        if kind in ("number", "integer"):
            return node.get("minimum", 0)
        if kind == "boolean":
            return True
        raise ValueError(f"schema node the smoke model cannot fill: {node}")


def smoke_generator(settings: Settings) -> StructuredGenerator:
    return StructuredGenerator(settings, SmokeChatModel(), SMOKE_MODEL, base_url="(smoke)")
