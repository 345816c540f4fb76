"""Explanation quality (issue 29): reasons for each user's top K, written by the code
`recommend` runs, held against the evidence they cite. Used by `eval run --reasons K` and by
bench/reasons.py.

For each user, the top K unseen items of EASE fitted on the stage's training prefix (the
eval's own fit: no held-out event of any user) get their evidence from the user's training
prefix only (`agent.reasons.evidence`: drivers, ratings, recency, decade, popularity) and
three columns of reasons, each checked the same way (faithfulness, the deletion test,
false claims, variety; `agent.reasons.summary`):

- `retrieval`: the no-LLM reason `recommend --no-rerank` shows (`retrieval_reason`);
- `llm`: what `recommend` shows with the LLM: its reason where the checks kept it, the
  retrieval reason elsewhere (`shown_reasons.reasons_for_shown`);
- `llm_drafts`: every decoded LLM reason, before the checks.

In the eval, the LLM's replies go through the run's cache (`CachedGenerator`), so an
interrupted run resumes and a rerun costs nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from agent.profiles.copying import prompt_ngrams
from agent.prompts import RenderedPrompt, load_prompt
from agent.reasons.checks import ReasonCheck, check_reason
from agent.reasons.deletion import Deletion, deletion_test
from agent.reasons.evidence import CITABLE_DRIVERS, ItemEvidence, shown_evidence, user_facts
from agent.reasons.summary import ReasonsSummary, summarize
from agent.recommend.candidates import Source
from agent.recommend.collaborative import EaseModel
from agent.recommend.fusion import SourceHit
from agent.recommend.reasons import Phrasing, retrieval_reason
from agent.runtime.structured import (
    Check,
    Generated,
    GenerationMeta,
    StructuredGenerator,
    StructuredOutputError,
    decoding_schema,
)
from agent.schemas import Item
from agent.schemas.profile import UserProfile
from evals.cache import JsonlCache, cache_key
from evals.llm import StageStats, prompt_payload, sampling
from evals.splits import UserSplit

if TYPE_CHECKING:
    from evals.llm import ProfileResult
    from evals.prepare import Prepared
    from evals.runner import Runner
    from evals.systems import System

COLUMNS = ("retrieval", "llm", "llm_drafts")
EXAMPLE_USERS = 2
PER_USER = "reasons.jsonl"
T = TypeVar("T", bound=BaseModel)


@dataclass
class Column:
    texts: list[str] = field(default_factory=list)
    checks: list[ReasonCheck] = field(default_factory=list)
    deletions: list[Deletion | None] = field(default_factory=list)


@dataclass
class Tally:
    """What the LLM stage cost and what the checks left out, over the users."""

    users: int = 0
    failed: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    kept: int = 0
    missing_slots: int = 0
    uncited: int = 0
    false_claims: int = 0
    unusable: int = 0
    rejected: list[dict[str, str]] = field(default_factory=list)


class ShownReason(BaseModel):
    item_id: str
    title: str
    by: str
    reason: str
    cited: list[str]
    retrieval: str
    """The no-LLM reason (the same as `reason` when `by` is "retrieval")."""


class UserReasons(BaseModel):
    user_id: str
    reasons: list[ShownReason]
    evidence: list[ItemEvidence]


class ReasonsReport(BaseModel):
    """One run's reasons side by side: the summary of each column, what the LLM cost and
    what its checks left out, and the first users' reasons to read."""

    users: int
    k: int
    profiles: int
    copy_prompt: str
    columns: dict[str, ReasonsSummary]
    llm: dict[str, Any] | None = None
    examples: dict[str, list[dict[str, Any]]] = {}


@dataclass
class ReasonsRun:
    """The reasons of a run's users, checked as they are made."""

    ease: EaseModel
    items: dict[str, Item]
    catalog: list[str]
    seed: int
    columns: dict[str, Column] = field(default_factory=lambda: {c: Column() for c in COLUMNS})
    tally: Tally = field(default_factory=Tally)
    users: dict[str, UserReasons] = field(default_factory=dict)

    def add(self, column: str, user: str, split: UserSplit, evidence: ItemEvidence,
            text: str, cited: list[str]) -> None:  # fmt: skip
        found = self.columns[column]
        # names a reason may hold: its cited items' titles and the drivers the prompt showed
        names = [self.items[c].title for c in cited if c in self.items]
        names += [d.title for d in evidence.drivers[:CITABLE_DRIVERS]]
        found.checks.append(check_reason(text, cited, evidence, self.catalog, names))
        found.deletions.append(
            deletion_test(self.ease, split.prefix_positive, evidence.item_id, cited,
                          split.prior, self.seed, user_id=user)
        )  # fmt: skip
        found.texts.append(text)

    def items_of(self, ids: list[str]) -> dict[str, Item]:
        return {i: self.items[i] for i in dict.fromkeys(ids) if i in self.items}

    def evidence(
        self, split: UserSplit, k: int, profile: UserProfile | None
    ) -> dict[str, ItemEvidence]:
        """The user's top `k` unseen items by EASE with their evidence, all from the training
        prefix (`split.prefix`): nothing at or after the held-out target."""
        history = split.prefix_positive
        titles = {e.item_id: self.items[e.item_id].title for e in split.prefix
                  if e.item_id in self.items}  # fmt: skip
        top = [h.item_id for h in self.ease.recommend(history, k, split.prior)
               if h.item_id in self.items]  # fmt: skip
        facts = user_facts(split.prefix, self.items)
        return shown_evidence(self.ease, history, self.items, top, titles,
                              profile=profile, facts=facts)  # fmt: skip

    def report(
        self,
        k: int,
        profiles: int,
        copy_prompt: str,
        grams: frozenset[tuple[str, ...]],
        llm: dict[str, Any] | None,
    ) -> ReasonsReport:
        names = COLUMNS if llm is not None else COLUMNS[:1]
        columns = {n: summarize(c.texts, c.checks, c.deletions, grams)
                   for n, c in self.columns.items() if n in names}  # fmt: skip
        examples = {u: [r.model_dump(exclude={"item_id"}) for r in made.reasons]
                    for u, made in list(self.users.items())[:EXAMPLE_USERS]}  # fmt: skip
        return ReasonsReport(users=len(self.users), k=k, profiles=profiles,
                             copy_prompt=copy_prompt, columns=columns, llm=llm,
                             examples=examples)  # fmt: skip


async def llm_user(
    run: ReasonsRun,
    generator: StructuredGenerator,
    user: str,
    split: UserSplit,
    evidence: dict[str, ItemEvidence],
    profile: UserProfile | None,
) -> dict[str, tuple[str, list[str]]]:
    """The LLM's reasons kept for one user's shown items (what `recommend` would show)."""
    from agent.recommend.shown_reasons import reasons_for_shown

    tally = run.tally
    started = time.perf_counter()
    made = await reasons_for_shown(generator.settings, generator, user, evidence, run.catalog,
                                   profile, split.prefix, run.items_of)  # fmt: skip
    tally.seconds += time.perf_counter() - started
    tally.users += 1
    tally.failed += made.error is not None
    if made.meta is not None:
        tally.tokens_in += made.meta.tokens_in
        tally.tokens_out += made.meta.tokens_out
    tally.kept += len(made.picks)
    tally.missing_slots += made.missing_slots
    tally.uncited += made.uncited
    tally.false_claims += made.false_claims
    tally.unusable += made.unusable
    tally.rejected += [{"user": user, "item": evidence[i].title, "reason": made.drafts[i].reason,
                        "why": why} for i, why in made.rejected.items()]  # fmt: skip
    for item_id, draft in made.drafts.items():
        run.add("llm_drafts", user, split, evidence[item_id], draft.reason, draft.cited)
    return {i: (p.reason, p.cited) for i, p in made.picks.items()}


async def run_users(
    run: ReasonsRun,
    chosen: Sequence[str],
    splits: dict[str, UserSplit],
    profiles: dict[str, UserProfile],
    k: int,
    generator: StructuredGenerator | None,
    concurrency: int,
) -> None:
    """Every chosen user's reasons into `run`, in the order chosen (users run concurrently,
    at most `concurrency` LLM requests in flight)."""
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(user: str) -> UserReasons:
        split = splits[user]
        profile = profiles.get(user)
        evidence = run.evidence(split, k, profile)
        titles = {e.item_id: run.items[e.item_id].title for e in split.prefix
                  if e.item_id in run.items}  # fmt: skip
        retrieval = {}
        phrasing = Phrasing()
        for rank, (item_id, found) in enumerate(evidence.items(), start=1):
            hits: dict[str, SourceHit] = {Source.COLLABORATIVE: SourceHit(rank, found.score or 0)}
            made = retrieval_reason(run.items[item_id], hits, profile, found,
                                    titles, phrasing=phrasing)  # fmt: skip
            retrieval[item_id] = (made.text, made.cited)
        llm: dict[str, tuple[str, list[str]]] = {}
        if generator is not None and evidence:
            async with gate:
                llm = await llm_user(run, generator, user, split, evidence, profile)
        shown = []
        for item_id, (text, cited) in retrieval.items():
            run.add("retrieval", user, split, evidence[item_id], text, cited)
            said, by = ((text, cited), "retrieval")
            if item_id in llm:
                said, by = llm[item_id], "llm"
            if generator is not None:
                run.add("llm", user, split, evidence[item_id], *said)
            shown.append(ShownReason(item_id=item_id, title=evidence[item_id].title, by=by,
                                     reason=said[0], cited=said[1], retrieval=text))  # fmt: skip
        return UserReasons(user_id=user, reasons=shown, evidence=list(evidence.values()))

    made = await asyncio.gather(*(one(u) for u in chosen))
    run.users |= {m.user_id: m for m in made}


def llm_figures(run: ReasonsRun, generator: StructuredGenerator, prompt: str,
                concurrency: int) -> dict[str, Any]:  # fmt: skip
    tally, n = run.tally, max(run.tally.users, 1)
    return {
        "model": generator.model_name,
        "prompt": prompt,
        "concurrency": concurrency,
        "users": tally.users,
        "failed_users": tally.failed,
        "tokens_in_per_user": round(tally.tokens_in / n, 1),
        "tokens_out_per_user": round(tally.tokens_out / n, 1),
        "seconds_per_user": round(tally.seconds / n, 3),
        "kept": tally.kept,
        "missing_slots": tally.missing_slots,
        "uncited": tally.uncited,
        "false_claims": tally.false_claims,
        "unusable": tally.unusable,
        "rejected": tally.rejected[:20],
    }


def reasons_prompt(version: int | None) -> tuple[str, frozenset[tuple[str, ...]]]:
    """The reasons prompt's name and the 4-word sequences of its fixed text (example-copy)."""
    prompt = load_prompt("reasons", version)
    return f"{prompt.id} v{prompt.version}", prompt_ngrams(prompt.id, prompt.version)


# -- the eval's stage ---------------------------------------------------------------------------


class CachedGenerator(StructuredGenerator):
    """The generator with every structured reply kept in the eval's cache: a request seen
    before (same model, sampling, messages, schema, max tokens) is answered from it, a reply
    that stayed invalid included. Nothing else of the generator changes."""

    def __init__(self, inner: StructuredGenerator, cache: JsonlCache, stats: StageStats) -> None:
        super().__init__(inner.settings, inner.chat_model, inner.model_name,
                         inner.retry_wait, inner.base_url)  # fmt: skip
        self.inner = inner
        self.cache = cache
        self.stats = stats

    def key(self, prompt: RenderedPrompt, schema: type[BaseModel], max_tokens: int | None) -> str:
        return cache_key({"stage": "reasons", **sampling(self.inner),
                          "messages": prompt_payload(prompt),
                          "schema": decoding_schema(schema), "max_tokens": max_tokens})  # fmt: skip

    async def agenerate(
        self,
        prompt: RenderedPrompt,
        schema: type[T],
        *,
        max_tokens: int | None = None,
        check: Check[T] | None = None,
    ) -> Generated[T]:
        key = self.key(prompt, schema, max_tokens)
        hit = self.cache.get(key)
        if hit is not None:
            self.stats.cached += 1
            meta = GenerationMeta.model_validate(hit["meta"])
            if hit.get("problems") is not None:
                raise StructuredOutputError(hit["problems"], hit.get("last_raw", ""), meta)
            return Generated[T](value=schema.model_validate(hit["value"]), meta=meta)
        started = time.monotonic()
        try:
            made = await self.inner.agenerate(prompt, schema, max_tokens=max_tokens, check=check)
        except StructuredOutputError as err:
            self.cache.put(key, {"problems": err.problems, "last_raw": err.last_raw,
                                 "meta": err.meta.model_dump(mode="json")})  # fmt: skip
            raise
        finally:
            self.stats.computed += 1
            self.stats.seconds += time.monotonic() - started
        self.stats.latencies.append(made.meta.latency_s)
        self.cache.put(key, {"value": made.value.model_dump(mode="json"),
                             "meta": made.meta.model_dump(mode="json")})  # fmt: skip
        return made


@dataclass
class ReasonsStage:
    """What `eval run --reasons K` made: the report for the summary, the users' reasons for
    the run folder."""

    report: ReasonsReport
    users: list[UserReasons]
    stats: StageStats | None = None

    def write(self, run_dir: Path) -> Path:
        path = run_dir / PER_USER
        with path.open("w", encoding="utf-8") as out:
            for made in self.users:
                out.write(made.model_dump_json() + "\n")
        return path


def run_reasons(
    runner: Runner, prep: Prepared, systems: dict[str, System],
    profiles: dict[str, ProfileResult],
) -> ReasonsStage | None:  # fmt: skip
    """The reasons stage of `eval run` (None unless `--reasons K`): EASE as the run fitted it
    (the `collaborative` system), the users' training-prefix splits, their eval profiles."""
    from evals.systems import CollaborativeSystem

    k = runner.options.reasons
    collaborative = systems.get("collaborative")
    if not k or not isinstance(collaborative, CollaborativeSystem):
        return None
    settings = runner.ctx.settings
    generator: StructuredGenerator | None = None
    stats = None
    if runner.stages is not None:
        stats = StageStats()
        generator = CachedGenerator(runner.stages.generator, runner.stages.cache, stats)
    ids = {e.item_id for u in prep.users for e in prep.data.splits[u].prefix}
    wanted = sorted(ids | set(collaborative.model.item_ids))
    items = runner.catalog_items(wanted, prep)
    catalog = sorted({c for item in items.values() for c in item.categories})
    run = ReasonsRun(collaborative.model, items, catalog, runner.options.seed)
    made = {u: r.profile for u, r in profiles.items() if r.profile is not None}
    advance = runner.progress(f"reasons (top {k})", 1)
    splits = {u: prep.data.splits[u] for u in prep.users}
    asyncio.run(run_users(run, prep.users, splits, made, k, generator, settings.concurrency))
    advance()
    name, grams = reasons_prompt(settings.reasons_prompt_version)
    llm = None if generator is None else llm_figures(run, generator, name, settings.concurrency)
    if llm is not None and stats is not None:
        llm |= {"computed_now": stats.computed, "from_cache": stats.cached,
                "seconds_now": round(stats.seconds, 1)}  # fmt: skip
    report = run.report(k, len(made), name, grams, llm)
    return ReasonsStage(report, [run.users[u] for u in prep.users], stats)
