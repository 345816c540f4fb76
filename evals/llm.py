"""The two LLM stages of an eval: profiles from the training prefix, and re-ranks of candidate
lists. Requests are built by the profile and recommend packages (`Profiler.prepare_full` with
the prefix as history, `prepare_rerank`), sent through the `StructuredGenerator`, and cached
(see `evals.cache`): nothing here is stored in the user's record or profile index, because
these profiles describe a truncated history."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from agent.profiles.profiler import Profiler, ProfileRequest
from agent.prompts import PromptRef, RenderedPrompt
from agent.recommend.rerank import RerankOutcome, RerankRequest, arerank
from agent.recommend.scored import ScoreRequest, aggregate_scores
from agent.runtime.label_probe import LabelProbe, ProbeResult
from agent.runtime.structured import (
    Generated,
    GenerationMeta,
    StructuredGenerator,
    StructuredOutputError,
    decoding_schema,
)
from agent.schemas.profile import ProfileDraft, UserProfile
from evals.cache import JsonlCache, cache_key

Advance = Callable[[], None]


class ProfileResult(BaseModel):
    user_id: str
    profile: UserProfile | None = None
    error: str | None = None
    meta: GenerationMeta
    cached: bool = False


class PickRecord(BaseModel):
    reason: str
    cited: list[str]


class RerankResult(BaseModel):
    user_id: str
    shown: list[str]
    """The candidate order of the first prompt (LLMRank: shuffled; two-stage: retrieval)."""
    picks_requested: int
    llm_ranks: dict[str, int]
    picks: dict[str, PickRecord]
    runs: int
    failed_runs: int
    errors: list[str]
    prompt: PromptRef | None
    tokens_in: int
    tokens_out: int
    attempts: int
    reasks: int
    latency_s: float
    dropped: int
    mode: str = "generate"
    scores: dict[str, float] = {}
    """Scored mode: mean label log-probability per candidate."""
    missing_labels: int = 0
    cached: bool = False

    @property
    def valid(self) -> bool:
        return bool(self.llm_ranks)


@dataclass
class StageStats:
    """Wall time of the requests actually sent (cache hits cost nothing)."""

    computed: int = 0
    cached: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)


def sampling(generator: StructuredGenerator) -> dict[str, object]:
    s = generator.settings
    return {
        "model": generator.model_name,
        "temperature": s.temperature,
        "seed": s.seed,
        "frequency_penalty": s.frequency_penalty,
        "max_reasks": s.max_reasks,
    }


def prompt_payload(prompt: RenderedPrompt) -> list[dict[str, str]]:
    return [m.model_dump() for m in prompt.messages]


class ProbeRecord(BaseModel):
    """One cached label probe (one prompt of a scored re-rank)."""

    logprobs: dict[str, float]
    floor: float
    tokens_in: int
    latency_s: float


class LLMStages:
    def __init__(
        self, generator: StructuredGenerator, cache: JsonlCache, probe: LabelProbe | None = None
    ) -> None:
        self.generator = generator
        self.probe = probe
        self.cache = cache
        self.profile_stats = StageStats()
        self.rerank_stats = StageStats()

    # -- profiles ----------------------------------------------------------------------------

    def profile_key(self, request: ProfileRequest, max_tokens: int) -> str:
        return cache_key(
            {
                "stage": "profile",
                **sampling(self.generator),
                "messages": prompt_payload(request.prompt),
                "schema": decoding_schema(request.schema),
                "max_tokens": max_tokens,
            }
        )

    def profiles(
        self, profiler: Profiler, requests: Mapping[str, ProfileRequest], advance: Advance
    ) -> dict[str, ProfileResult]:
        max_tokens = self.generator.settings.profile_max_tokens
        results: dict[str, ProfileResult] = {}
        todo: list[tuple[str, ProfileRequest, str]] = []
        for user_id, request in requests.items():
            key = self.profile_key(request, max_tokens)
            hit = self.cache.get(key)
            if hit is not None:
                results[user_id] = ProfileResult.model_validate(hit | {"cached": True})
                self.profile_stats.cached += 1
                advance()
            else:
                todo.append((user_id, request, key))
        if todo:
            started = time.monotonic()
            asyncio.run(self._profile_batch(profiler, todo, results, max_tokens, advance))
            self.profile_stats.seconds += time.monotonic() - started
        return results

    async def _profile_batch(
        self,
        profiler: Profiler,
        todo: list[tuple[str, ProfileRequest, str]],
        results: dict[str, ProfileResult],
        max_tokens: int,
        advance: Advance,
    ) -> None:
        jobs = [(request.prompt, request.schema) for _, request, _ in todo]

        def done(index: int, result: Generated[ProfileDraft] | StructuredOutputError) -> None:
            user_id, request, key = todo[index]
            if isinstance(result, StructuredOutputError):
                made = ProfileResult(user_id=user_id, error=str(result), meta=result.meta)
            else:
                profile = profiler.finish(request, result)
                made = ProfileResult(user_id=user_id, profile=profile, meta=result.meta)
            self.cache.put(key, made.model_dump(mode="json", exclude={"cached"}))
            results[user_id] = made
            self.profile_stats.computed += 1
            self.profile_stats.latencies.append(made.meta.latency_s)
            advance()

        await self.generator.abatch(jobs, max_tokens=max_tokens, on_result=done)

    # -- re-rank -----------------------------------------------------------------------------

    def rerank_key(self, request: RerankRequest) -> str:
        return cache_key(
            {
                "stage": "rerank",
                **sampling(self.generator),
                "prompts": [prompt_payload(p) for p in request.prompts],
                "schema": decoding_schema(request.schema),
                "max_tokens": request.max_tokens,
                "reask_repeats": request.reask_repeats,
            }
        )

    def reranks(
        self, requests: Mapping[str, RerankRequest], advance: Advance
    ) -> dict[str, RerankResult]:
        results: dict[str, RerankResult] = {}
        todo: list[tuple[str, RerankRequest, str]] = []
        for user_id, request in requests.items():
            key = self.rerank_key(request)
            hit = self.cache.get(key)
            if hit is not None:
                results[user_id] = RerankResult.model_validate(hit | {"cached": True})
                self.rerank_stats.cached += 1
                advance()
            else:
                todo.append((user_id, request, key))
        if todo:
            started = time.monotonic()
            asyncio.run(self._rerank_all(todo, results, advance))
            self.rerank_stats.seconds += time.monotonic() - started
        return results

    async def _rerank_all(
        self,
        todo: list[tuple[str, RerankRequest, str]],
        results: dict[str, RerankResult],
        advance: Advance,
    ) -> None:
        semaphore = asyncio.Semaphore(self.generator.settings.concurrency)

        async def one(user_id: str, request: RerankRequest, key: str) -> None:
            async with semaphore:
                outcome = await arerank(self.generator, request)
            made = to_result(user_id, request, outcome)
            self.cache.put(key, made.model_dump(mode="json", exclude={"cached"}))
            results[user_id] = made
            self.rerank_stats.computed += 1
            self.rerank_stats.latencies.append(made.latency_s)
            advance()

        try:
            async with asyncio.TaskGroup() as group:
                for user_id, request, key in todo:
                    group.create_task(one(user_id, request, key))
        except ExceptionGroup as failed:  # e.g. the server went away: raise it plainly
            raise failed.exceptions[0] from failed

    # -- scored re-rank ----------------------------------------------------------------------

    def probe_key(self, prompt: RenderedPrompt, labels: list[str], top: int) -> str:
        """Per prompt, not per user: S = 1 reuses the first order of an S = 3 run."""
        return cache_key(
            {
                "stage": "label-probe",
                "model": self.generator.model_name,
                "messages": prompt_payload(prompt),
                "labels": labels,
                "top_logprobs": top,
            }
        )

    def scored(
        self, requests: Mapping[str, ScoreRequest], advance: Advance
    ) -> dict[str, RerankResult]:
        if self.probe is None:
            raise RuntimeError("scored re-rank needs a label probe")
        results: dict[str, RerankResult] = {}
        started = time.monotonic()
        computed = asyncio.run(self._score_all(self.probe, requests, results, advance))
        if computed:
            self.rerank_stats.seconds += time.monotonic() - started
        return results

    async def _score_all(
        self,
        probe: LabelProbe,
        requests: Mapping[str, ScoreRequest],
        results: dict[str, RerankResult],
        advance: Advance,
    ) -> int:
        semaphore = asyncio.Semaphore(self.generator.settings.concurrency)
        computed = 0

        async def one_probe(prompt: RenderedPrompt, labels: list[str]) -> tuple[ProbeResult, bool]:
            key = self.probe_key(prompt, labels, probe.top_logprobs)
            hit = self.cache.get(key)
            if hit is not None:
                return ProbeResult(**ProbeRecord.model_validate(hit).model_dump()), True
            async with semaphore:
                made = await probe.aprobe(prompt, labels)
            record = ProbeRecord(
                logprobs=made.logprobs,
                floor=made.floor,
                tokens_in=made.tokens_in,
                latency_s=round(made.latency_s, 3),
            )
            self.cache.put(key, record.model_dump(mode="json"))
            return made, False

        async def one(user_id: str, request: ScoreRequest) -> None:
            nonlocal computed
            # the first order alone, then the rest: they reuse its prefix from vLLM's cache
            # (requests in flight together cannot share blocks not yet computed)
            first = await one_probe(request.prompts[0], request.labels)
            rest = await asyncio.gather(
                *(one_probe(p, request.labels) for p in request.prompts[1:])
            )
            found = [first, *rest]
            outcome = aggregate_scores(request, [probe for probe, _ in found])
            cached = all(hit for _, hit in found)
            results[user_id] = scored_result(user_id, request, outcome, cached)
            if cached:
                self.rerank_stats.cached += 1
            else:
                computed += 1
                self.rerank_stats.computed += 1
                self.rerank_stats.latencies.append(outcome.latency_s)
            advance()

        try:
            async with asyncio.TaskGroup() as group:
                for user_id, request in requests.items():
                    group.create_task(one(user_id, request))
        except ExceptionGroup as failed:  # e.g. the server went away: raise it plainly
            raise failed.exceptions[0] from failed
        return computed


def scored_result(
    user_id: str, request: ScoreRequest, outcome: RerankOutcome, cached: bool
) -> RerankResult:
    return RerankResult(
        user_id=user_id, shown=request.orders[0], picks_requested=len(request.candidates),
        llm_ranks=outcome.llm_ranks, picks={}, runs=outcome.runs, failed_runs=0, errors=[],
        prompt=outcome.prompt, tokens_in=outcome.tokens_in, tokens_out=outcome.tokens_out,
        attempts=outcome.attempts, reasks=0, latency_s=round(outcome.latency_s, 3), dropped=0,
        mode="scored", scores=outcome.scores, missing_labels=outcome.missing_labels,
        cached=cached,
    )  # fmt: skip


def to_result(user_id: str, request: RerankRequest, outcome: RerankOutcome) -> RerankResult:
    return RerankResult(
        user_id=user_id,
        shown=request.orders[0],
        picks_requested=request.picks,
        llm_ranks=outcome.llm_ranks,
        picks={i: PickRecord(reason=p.reason, cited=p.cited) for i, p in outcome.picks.items()},
        runs=outcome.runs,
        failed_runs=outcome.failed_runs,
        errors=outcome.errors,
        prompt=outcome.prompt,
        tokens_in=outcome.tokens_in,
        tokens_out=outcome.tokens_out,
        attempts=outcome.attempts,
        reasks=outcome.reasks,
        latency_s=round(outcome.latency_s, 3),
        dropped=outcome.dropped,
    )
