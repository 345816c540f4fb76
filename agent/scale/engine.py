"""The engine actor: one in-process `vllm.LLM` per Ray actor, vLLM's offline pattern, set up
with the options the local server gets (`agent.runtime.server`): same model folder and
served name, context length, seed, dtype rule, eager mode, compact JSON grammar, KV-cache
size and environment. Each reply is decoded under the user's JSON schema
(`SamplingParams(structured_outputs=StructuredOutputsParams(json=...))`) and validated; an
invalid one is sent back with its problems up to `max_reasks` times, with the same `reask`
prompt the server path uses, so a profile's attempts and re-asks mean the same on both."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.config import Settings
from agent.prompts import PromptRef

ENGINE_COLUMNS = (
    "user_id", "request", "error", "error_kind", "raw", "tokens_in", "tokens_out",
    "attempts", "reasks", "latency_s",
)  # fmt: skip


class EngineSpec(BaseModel):
    """What the driver tells every engine actor (it travels as JSON)."""

    settings: Settings
    model_path: str
    served_name: str
    tensor_parallel_size: int = 1


def engine_kwargs(spec: EngineSpec) -> dict[str, Any]:
    """`vllm.LLM` arguments equal to the local server's command line (`server_command`)."""
    from agent.runtime.server import server_dtype

    settings = spec.settings
    kwargs: dict[str, Any] = {
        "model": spec.model_path,
        "served_model_name": spec.served_name,
        "max_model_len": settings.max_model_len,
        "seed": settings.seed,
        "dtype": server_dtype(settings.dtype),  # decided on the node that runs the engine
        "enforce_eager": settings.enforce_eager,
        "tensor_parallel_size": spec.tensor_parallel_size,
    }
    if settings.compact_json:
        kwargs["structured_outputs_config"] = {
            "backend": "xgrammar",
            "disable_any_whitespace": True,
        }
    if spec.tensor_parallel_size > 1:
        # The actor already holds the GPUs (Ray set CUDA_VISIBLE_DEVICES to them): vLLM's
        # own Ray executor would ask the cluster for more. Not run here (no GPU).
        kwargs["distributed_executor_backend"] = "mp"
    return kwargs


def engine_env(settings: Settings) -> dict[str, str]:
    """Environment the engine needs, set before vLLM is imported: the server's (KV-cache
    size, step timeout, no usage stats), and the engine core in this process.

    In-process because vLLM's own layout (engine core and worker processes, as under the
    server) outlived the actor here: after `ray.shutdown()` a `VLLM::Worker` was still running
    30 s later, and a killed driver would leave one per engine. In-process, the actor is the
    whole engine; its OpenMP threads are the CPUs the actor reserves (Ray sets
    OMP_NUM_THREADS from `num_cpus`), where the server binds all cores but one."""
    from agent.runtime.server import server_env

    wanted = {k: v for k, v in server_env(settings).items() if os.environ.get(k) != v}
    wanted.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return wanted


@dataclass
class _Talk:
    """One user's generation in progress: messages so far and what it cost."""

    index: int
    kind: str
    prompt: PromptRef
    schema: type[BaseModel]
    json_schema: dict[str, Any]
    messages: list[dict[str, Any]]
    started: float
    raw: str = ""
    problems: list[str] = field(default_factory=list)
    done: bool = False
    ok: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 0
    reasks: int = 0
    latency_s: float = 0.0

    def failure(self) -> str:
        """What `StructuredOutputError` says on the server path."""
        return (
            f"prompt {self.prompt.id} v{self.prompt.version}: no valid reply after "
            f"{self.attempts} attempt(s): {'; '.join(self.problems[:5])}"
        )


class ProfileEngine:
    """Ray Data callable class (`map_batches(ProfileEngine, ...)`): rows with a rendered
    `request` in, the same rows plus the last raw reply and its costs out."""

    def __init__(self, spec_json: str) -> None:
        spec = EngineSpec.model_validate_json(spec_json)
        for key, value in engine_env(spec.settings).items():
            os.environ.setdefault(key, value)
        from vllm import LLM

        self.settings = spec.settings
        self.llm = LLM(**engine_kwargs(spec))
        # The server starts every request from the model's generation_config defaults.
        self.defaults = dict(self.llm.model_config.get_diff_sampling_param())

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        from agent.runtime.structured import decoding_schema
        from agent.scale.wire import WireRequest

        out: dict[str, list[Any]] = {name: [] for name in ENGINE_COLUMNS}
        talks: list[_Talk] = []
        started = time.monotonic()
        for i, (request, error) in enumerate(zip(batch["request"], batch["error"], strict=True)):
            if not error:
                wire = WireRequest.model_validate_json(request)
                schema = wire.schema_class()
                talks.append(
                    _Talk(
                        i,
                        wire.kind.value,
                        wire.prompt.ref,
                        schema,
                        decoding_schema(schema),
                        wire.messages(),
                        started,
                    )  # fmt: skip
                )
        self.generate(talks)
        by_index = {talk.index: talk for talk in talks}
        for i, user_id in enumerate(batch["user_id"]):
            talk = by_index.get(i)
            error = str(batch["error"][i])
            kind = str(batch["error_kind"][i])
            if talk is not None and not talk.ok:
                error, kind = talk.failure(), talk.kind
            values: list[Any] = [str(user_id), str(batch["request"][i]), error, kind]
            if talk is None:
                values += ["", 0, 0, 0, 0, 0.0]
            else:
                values += [
                    talk.raw, talk.tokens_in, talk.tokens_out, talk.attempts, talk.reasks,
                    round(talk.latency_s, 3),
                ]  # fmt: skip
            for name, value in zip(ENGINE_COLUMNS, values, strict=True):
                out[name].append(value)
        return out

    def generate(self, talks: list[_Talk]) -> None:
        """All talks decode together; the ones that need a re-ask go round again."""
        pending = [t for t in talks if not t.done]
        while pending:
            params = [self.sampling_params(t.json_schema) for t in pending]
            conversations: Any = [t.messages for t in pending]  # OpenAI-style messages
            outputs = self.llm.chat(conversations, params, use_tqdm=False)
            for talk, output in zip(pending, outputs, strict=True):
                self.take(talk, output)
            pending = [t for t in pending if not t.done]

    def sampling_params(self, json_schema: dict[str, Any]) -> Any:
        """What `ChatOpenAI` asks the server for, on top of the generation_config defaults."""
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        s = self.settings
        return SamplingParams.from_optional(
            **{
                **self.defaults,
                "temperature": s.temperature,
                "seed": s.seed,
                "frequency_penalty": s.frequency_penalty,
                "max_tokens": s.profile_max_tokens,
                "structured_outputs": StructuredOutputsParams(json=json_schema),
            }
        )

    def take(self, talk: _Talk, output: Any) -> None:
        """Record one reply: done when valid or out of re-asks, else queue the re-ask."""
        from agent.prompts import load_prompt
        from agent.runtime.structured import CUT_OFF, validation_problems

        completion = output.outputs[0]
        talk.attempts += 1
        talk.tokens_in += len(output.prompt_token_ids or ())
        talk.tokens_out += len(completion.token_ids)
        talk.latency_s = time.monotonic() - talk.started
        talk.raw = completion.text
        try:
            talk.schema.model_validate_json(talk.raw)
            talk.done = talk.ok = True
            return
        except ValidationError as err:
            problems = validation_problems(err)
        if completion.finish_reason == "length":
            problems = [CUT_OFF, *problems]
        talk.problems = problems
        if talk.reasks >= self.settings.max_reasks:
            talk.done = True
            return
        talk.reasks += 1
        reask = load_prompt("reask", 1).render(problems=problems).messages
        talk.messages = [
            *talk.messages,
            {"role": "assistant", "content": talk.raw},
            *({"role": m.role, "content": m.content} for m in reask),
        ]
