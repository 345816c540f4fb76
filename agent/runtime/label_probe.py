"""Next-token log-probabilities of one-token labels: LlamaRec's verbalizer, without fine-tuning.

A prompt ends by asking for one label; the server answers with `max_tokens=1` and the top
log-probabilities of that first token. That is one prefill per prompt: no decoding, no grammar
to compile. A label that is not among the returned top tokens has a log-probability below all
of them; `LabelProbe` reports it as missing and gives the lowest returned value as its upper
bound (`floor`).

Labels must be one token each for the served model, or the first token of a label would be
scored instead of the label: `check_labels` asks the server's `/tokenize` endpoint."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from agent.config import Settings
from agent.prompts import RenderedPrompt
from agent.runtime.structured import (
    TRANSPORT_ERRORS,
    LLMUnavailableError,
    StructuredGenerator,
    to_langchain,
)

LABELS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
"""One-token in the Qwen2.5 and SmolLM2 tokenizers (checked per server by
`check_labels`). More candidates than labels are not scored."""


@dataclass
class ProbeResult:
    logprobs: dict[str, float]
    """Log-probability of each label found among the top tokens (variants such as " A" are
    added to "A")."""
    floor: float
    """The lowest log-probability returned: an upper bound for every missing label."""
    tokens_in: int = 0
    latency_s: float = 0.0

    def of(self, label: str) -> float:
        return self.logprobs.get(label, self.floor)


@dataclass
class LabelProbe:
    """Sends probe prompts to an OpenAI-compatible vLLM server through LangChain's ChatOpenAI
    (`logprobs=True`, `top_logprobs`, `max_tokens=1`)."""

    settings: Settings
    model_factory: Callable[[], BaseChatModel]
    model_name: str
    base_url: str
    top_logprobs: int = 20
    _loop_model: tuple[asyncio.AbstractEventLoop, BaseChatModel] | None = field(
        default=None, repr=False
    )

    async def aprobe(self, prompt: RenderedPrompt, labels: Sequence[str]) -> ProbeResult:
        model = self._model().bind(
            logprobs=True, top_logprobs=self.top_logprobs, max_tokens=1, temperature=0.0
        )
        started = time.monotonic()
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.settings.transport_retries + 1),
                wait=wait_exponential_jitter(multiplier=0.5, max=10.0),
                retry=retry_if_exception_type(TRANSPORT_ERRORS),
                reraise=True,
            ):
                with attempt:
                    reply = await model.ainvoke(to_langchain(prompt.messages))
        except TRANSPORT_ERRORS as err:
            raise LLMUnavailableError(
                f"LLM server {self.base_url} failed a label probe ({type(err).__name__}: {err}); "
                "is it running? (personae serve / --base-url)"
            ) from err
        if not isinstance(reply, AIMessage):
            raise TypeError(f"chat model returned {type(reply).__name__}, expected AIMessage")
        result = read_label_logprobs(reply.response_metadata.get("logprobs"), labels)
        usage: dict[str, Any] = dict(reply.usage_metadata or {})
        result.tokens_in = int(usage.get("input_tokens", 0))
        result.latency_s = time.monotonic() - started
        return result

    def _model(self) -> BaseChatModel:
        """One chat model per event loop: its async HTTP client cannot cross loops."""
        loop = asyncio.get_running_loop()
        if self._loop_model is None or self._loop_model[0] is not loop:
            self._loop_model = (loop, self.model_factory())
        return self._loop_model[1]


class ProbeFormatError(RuntimeError):
    """The server's reply carried no top log-probabilities (e.g. logprobs unsupported)."""


def read_label_logprobs(logprobs: Any, labels: Sequence[str]) -> ProbeResult:
    """The labels' log-probabilities from the first token's `top_logprobs` of a chat reply."""
    try:
        top = logprobs["content"][0]["top_logprobs"]
    except (TypeError, KeyError, IndexError) as err:
        raise ProbeFormatError(
            f"the reply has no top_logprobs for its first token ({err!r}): does the server "
            "support `logprobs`? (vLLM: up to --max-logprobs, default 20)"
        ) from err
    wanted = set(labels)
    found: dict[str, float] = {}
    values = [float(entry["logprob"]) for entry in top]
    for entry in top:
        token = str(entry["token"]).strip()
        if token in wanted:
            found[token] = logaddexp(found.get(token), float(entry["logprob"]))
    return ProbeResult(logprobs=found, floor=min(values) if values else -math.inf)


def logaddexp(a: float | None, b: float) -> float:
    if a is None:
        return b
    high = max(a, b)
    return high + math.log(math.exp(a - high) + math.exp(b - high))


def tokenize_url(base_url: str) -> str:
    """vLLM serves `/tokenize` beside `/v1`, not under it."""
    root = base_url.rstrip("/")
    return (root[: -len("/v1")] if root.endswith("/v1") else root) + "/tokenize"


def multi_token_labels(
    base_url: str, model: str, labels: Sequence[str], timeout: float = 30.0
) -> list[str]:
    """The labels that are NOT one token for the served model (empty: all are)."""
    bad: list[str] = []
    with httpx.Client(timeout=timeout) as client:
        for label in labels:
            reply = client.post(
                tokenize_url(base_url),
                json={"model": model, "prompt": label, "add_special_tokens": False},
            )
            reply.raise_for_status()
            if int(reply.json()["count"]) != 1:
                bad.append(label)
    return bad


def probe_for(generator: StructuredGenerator) -> LabelProbe:
    """A probe on the generator's server and model (a fresh chat model per event loop when
    the generator has a factory; in-process test models are shared)."""
    chat_model = generator.chat_model
    return LabelProbe(
        settings=generator.settings,
        model_factory=generator.model_factory or (lambda: chat_model),
        model_name=generator.model_name,
        base_url=generator.base_url,
        top_logprobs=generator.settings.rerank_top_logprobs,
    )


def check_labels(generator: StructuredGenerator, labels: Sequence[str]) -> None:
    """Raise `LabelTokenError` unless every label is one token for the served model (asked of
    the server's `/tokenize`; in-process models are not asked)."""
    if not generator.base_url.startswith(("http://", "https://")):
        return
    try:
        bad = multi_token_labels(generator.base_url, generator.model_name, labels)
    except (httpx.HTTPError, KeyError, ValueError) as err:
        raise LabelTokenError(
            f"cannot check the labels with {tokenize_url(generator.base_url)} ({err}); the "
            "scored re-rank needs a vLLM server (or use --rerank-mode generate)"
        ) from err
    if bad:
        raise LabelTokenError(
            f"labels {bad} are more than one token for {generator.model_name}: the scored "
            "re-rank would score their first token only; use --rerank-mode generate"
        )


class LabelTokenError(RuntimeError):
    """The served model's tokenizer splits a label, or the tokenizer cannot be asked."""
