"""Profile many users: concurrent requests to vLLM, each profile stored the moment it is
ready (one transaction each), vectors upserted to Chroma in small batches, failures written
to a JSONL file while the run goes on.

Killed at any point, a rerun finishes the rest: users whose stored profile matches their
current history hash (and the same prompt and model) are skipped, and the profiles that
reached the record but not Chroma are synced to it first."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.profiles.facts import history_hash
from agent.profiles.profiler import Profiler, ProfileRequest, UnknownUserError
from agent.prompts import load_prompt
from agent.runtime.structured import Generated, StructuredGenerator, StructuredOutputError
from agent.schemas.profile import ProfileDraft, UserProfile
from agent.store.profile_index import ProfileIndex
from agent.store.profiles import LatestStamp

CHUNK_PER_SLOT = 8
"""Requests prepared ahead per concurrency slot: keeps the server busy, memory bounded."""
VECTOR_BATCH = 32


@dataclass
class BatchReport:
    requested: int = 0
    skipped_unchanged: int = 0
    skipped_older_prompt: int = 0
    """Of the skipped, profiles written with another prompt than the current one (--force)."""
    profiled: int = 0
    failed: int = 0
    synced_vectors: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 0
    reasks: int = 0
    interests_cited: int = 0
    dropped_interests: int = 0
    invalid_evidence: int = 0
    duplicate_evidence: int = 0
    wrong_side_evidence: int = 0
    claims_drafted: int = 0
    contradicted_claims: int = 0
    renamed_topics: int = 0
    grounding_scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    failures_path: str | None = None

    @property
    def users_per_s(self) -> float:
        return self.profiled / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_out / self.seconds if self.seconds else 0.0

    def add(self, profile: UserProfile) -> None:
        p, g = profile.provenance, profile.grounding
        self.profiled += 1
        self.tokens_in += p.tokens_in
        self.tokens_out += p.tokens_out
        self.attempts += p.attempts
        self.reasks += p.reasks
        self.interests_cited += len(profile.interests) + len(profile.dislikes) + g.dropped_interests
        self.dropped_interests += g.dropped_interests
        self.invalid_evidence += g.invalid_evidence
        self.duplicate_evidence += g.duplicate_evidence
        self.wrong_side_evidence += g.wrong_side_evidence
        self.claims_drafted += g.claims.claims if g.claims is not None else 0
        self.contradicted_claims += g.contradicted_claims
        self.renamed_topics += g.renamed_topics
        self.grounding_scores.append(g.score)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        scores = sorted(self.grounding_scores)
        data["grounding_scores"] = _quantiles(scores)
        calls = self.attempts + self.failed
        data |= {
            "users_per_s": round(self.users_per_s, 3),
            "tokens_per_s": round(self.tokens_per_s, 1),
            "tokens_per_user": round((self.tokens_in + self.tokens_out) / self.profiled, 1)
            if self.profiled
            else None,
            "schema_valid_rate": round(self.profiled / (self.profiled + self.failed), 4)
            if self.profiled + self.failed
            else None,
            "reask_rate": round(self.reasks / calls, 4) if calls else None,
            "dropped_interest_rate": round(self.dropped_interests / self.interests_cited, 4)
            if self.interests_cited
            else None,
        }
        return data


def _quantiles(scores: list[float]) -> dict[str, float | None]:
    if not scores:
        return {"p10": None, "p50": None, "p90": None, "mean": None}

    def at(q: float) -> float:
        return scores[min(len(scores) - 1, int(q * len(scores)))]

    return {"p10": at(0.1), "p50": at(0.5), "p90": at(0.9), "mean": sum(scores) / len(scores)}


Progress = Callable[[BatchReport], None]


class FailureLog:
    """Append-only JSONL of users that could not be profiled, opened on first failure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0

    def write(self, user_id: str, kind: str, error: str, last_raw: str | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"user_id": user_id, "kind": kind, "error": error, "last_raw": last_raw}
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        self.count += 1


def failures_path(data_dir: Path, job: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return Path(data_dir) / "failures" / f"{job}-{stamp}.jsonl"


class BatchProfiler:
    def __init__(
        self,
        profiler: Profiler,
        generator: StructuredGenerator,
        index: ProfileIndex | None,
        failures: FailureLog,
    ) -> None:
        self.profiler = profiler
        self.generator = generator
        self.index = index
        self.failures = failures
        self.report = BatchReport(failures_path=str(failures.path))
        self._pending_vectors: list[UserProfile] = []

    def is_current(self, user_id: str, stamps: dict[str, LatestStamp]) -> bool:
        """The stored profile was made from this exact history by this model. (A new prompt
        version alone does not re-profile: use --force.)"""
        stamp = stamps.get(user_id)
        if stamp is None:
            return False
        current = history_hash(self.profiler.history(user_id))
        return stamp.history_hash == current and stamp.model == self.generator.model_name

    def requests(
        self, user_ids: Sequence[str], prepare: Callable[[str], ProfileRequest], force: bool
    ) -> Iterator[ProfileRequest]:
        """Requests for users whose profile is missing or stale, prepared lazily."""
        stamps = self.profiler.profiles.latest_stamps()
        prompt = load_prompt("profile", self.profiler.settings.profile_prompt_version).hash
        for user_id in user_ids:
            if not force and self.is_current(user_id, stamps):
                self.report.skipped_unchanged += 1
                self.report.skipped_older_prompt += stamps[user_id].prompt_hash != prompt
                continue
            try:
                yield prepare(user_id)
            except UnknownUserError as err:
                self.report.failed += 1
                self.failures.write(user_id, "prepare", str(err))

    def run(
        self,
        user_ids: Sequence[str],
        prepare: Callable[[str], ProfileRequest],
        force: bool = False,
        progress: Progress | None = None,
    ) -> BatchReport:
        self.report = BatchReport(requested=len(user_ids), failures_path=str(self.failures.path))
        started = time.monotonic()
        if self.index is not None:
            self.report.synced_vectors = self.index.sync(self.profiler.profiles.iter_latest())
        chunk = max(1, self.generator.settings.concurrency * CHUNK_PER_SLOT)
        batch: list[ProfileRequest] = []
        try:
            for request in self.requests(user_ids, prepare, force):
                batch.append(request)
                if len(batch) >= chunk:
                    asyncio.run(self._run_chunk(batch, started, progress))
                    batch = []
            asyncio.run(self._run_chunk(batch, started, progress))
        finally:
            self._flush_vectors()
            self.report.seconds = time.monotonic() - started
        return self.report

    async def _run_chunk(
        self, batch: list[ProfileRequest], started: float, progress: Progress | None
    ) -> None:
        if not batch:
            return
        jobs = [(r.prompt, r.schema) for r in batch]
        max_tokens = self.generator.settings.profile_max_tokens

        def done(index: int, result: Generated[ProfileDraft] | StructuredOutputError) -> None:
            self._store(batch[index], result)
            self.report.seconds = time.monotonic() - started
            if progress is not None:
                progress(self.report)

        await self.generator.abatch(jobs, max_tokens=max_tokens, on_result=done)

    def _store(
        self, request: ProfileRequest, result: Generated[ProfileDraft] | StructuredOutputError
    ) -> None:
        if isinstance(result, StructuredOutputError):
            self.report.failed += 1
            self.report.attempts += result.meta.attempts
            self.report.reasks += result.meta.reasks
            self.failures.write(request.user_id, request.kind.value, str(result), result.last_raw)
            return
        profile = self.profiler.finish(request, result)
        self.profiler.profiles.add(profile)  # committed: from here a kill loses nothing
        self.report.add(profile)
        self._pending_vectors.append(profile)
        if len(self._pending_vectors) >= VECTOR_BATCH:
            self._flush_vectors()

    def _flush_vectors(self) -> None:
        if self.index is not None and self._pending_vectors:
            self.index.upsert(self._pending_vectors)
        self._pending_vectors = []
