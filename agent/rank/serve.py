"""The stored ranker at serving time: one user's candidates (the union of the retrievers' top
items, plus any the caller adds), their features, scores and, for explain, each feature's
contribution (LightGBM `pred_contrib`).

Only the user's own current events are read; the sources are those saved by `personae rank
fit` (fitted on every event then). `stale` says whether the record changed since."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.rank.features import LlmEvidence, UserScores, feature_matrix, user_scores
from agent.rank.sources import RETRIEVERS, Index
from agent.rank.store import StoredRanker, load_stored
from agent.recommend.fusion import Fused, SourceHit
from agent.schemas import Interaction

Allow = Callable[[str], bool]


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: float | None
    """The feature's value for this item (None: missing)."""
    contribution: float
    """Its additive share of the ranker's score (positive: pushed the item up)."""


@dataclass
class Ranked:
    items: list[str]
    """Best first."""
    scores: dict[str, float]
    source_ranks: dict[str, dict[str, int]]
    """Item -> retriever -> rank among eligible items, for the retrievers that put the item in
    their top `depth` (the candidates it came from)."""
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


class ServingRanker:
    def __init__(self, stored: StoredRanker) -> None:
        self.stored = stored
        self.sources = stored.sources
        self.model = stored.ranker()
        self.depth = stored.manifest.depth

    @classmethod
    def load(cls, data_dir: Path) -> ServingRanker | None:
        stored = load_stored(data_dir)
        return cls(stored) if stored is not None else None

    def stale(self, fingerprint: str) -> bool:
        return fingerprint != self.stored.manifest.data_fingerprint

    def _scored(self, user_id: str, history: Sequence[Interaction]) -> UserScores:
        return user_scores(self.sources, self.sources.user(user_id, history))

    def candidates(
        self, scored: UserScores, exclude: Collection[str], allow: Allow | None
    ) -> tuple[Index, dict[int, dict[str, int]]]:
        """Union of the retrievers' top `depth` among the items neither excluded nor filtered
        out, and which retrievers listed each (with its rank among eligible items)."""
        ids = self.sources.catalog.item_ids
        blocked = scored.user.prior.copy()
        blocked[self.sources.catalog.rows(list(exclude))] = True
        if allow is not None:
            blocked |= ~np.fromiter((allow(i) for i in ids), dtype=np.bool_, count=len(ids))
        listed: dict[int, dict[str, int]] = {}
        tops = {s: scored.top(s, self.depth, blocked) for s in RETRIEVERS}
        for position in range(self.depth):
            for source, top in tops.items():
                if position < len(top):
                    listed.setdefault(int(top[position]), {})[source] = position + 1
        return np.fromiter(listed, dtype=np.int64, count=len(listed)), listed

    def rank(
        self,
        user_id: str,
        history: Sequence[Interaction],
        exclude: Collection[str] = (),
        allow: Allow | None = None,
        extra: Sequence[str] = (),
        evidence: LlmEvidence | None = None,
    ) -> Ranked:
        """The user's candidates ordered by the ranker; `extra` items (e.g. another source's
        candidates) are scored too when eligible."""
        started = time.perf_counter()
        timings: dict[str, float] = {}
        scored = self._scored(user_id, history)
        timings["scores_s"] = time.perf_counter() - started
        rows, listed = self.candidates(scored, exclude, allow)
        c = self.sources.catalog
        more = [r for r in c.rows([i for i in extra if i not in exclude]) if int(r) not in listed]
        more = [r for r in more if not scored.user.prior[r]]
        if more:
            rows = np.concatenate([rows, np.array(more, dtype=np.int64)])
        t = time.perf_counter()
        x = feature_matrix(self.sources, scored, rows, self.model.features, evidence)
        timings["features_s"] = time.perf_counter() - t
        t = time.perf_counter()
        values = self.model.score(x) if len(rows) else np.zeros(0)
        timings["score_s"] = time.perf_counter() - t
        order = np.argsort(-values, kind="stable")
        items = [c.item_ids[rows[i]] for i in order]
        scores = {c.item_ids[rows[i]]: round(float(values[i]), 6) for i in order}
        ranks = {c.item_ids[r]: listed.get(int(r), {}) for r in rows}
        return Ranked(items, scores, ranks, time.perf_counter() - started, timings)

    def contributions(
        self,
        user_id: str,
        history: Sequence[Interaction],
        item_ids: Sequence[str],
        top: int = 5,
        evidence: LlmEvidence | None = None,
    ) -> dict[str, list[Contribution]]:
        """Per item, the `top` features that moved its score most (by absolute contribution)."""
        scored = self._scored(user_id, history)
        rows = self.sources.catalog.rows(item_ids)
        if not len(rows):
            return {}
        x = feature_matrix(self.sources, scored, rows, self.model.features, evidence)
        contrib = self.model.contributions(x)
        found = {}
        for k, row in enumerate(rows):
            order = np.argsort(-np.abs(contrib[k, :-1]))[:top]
            found[self.sources.catalog.item_ids[row]] = [
                Contribution(
                    self.model.features[j],
                    None if np.isnan(x[k, j]) else round(float(x[k, j]), 4),
                    round(float(contrib[k, j]), 4),
                )
                for j in order
            ]
        return found

    def uses_profile(self) -> bool:
        """Trained with the profile columns (`rank fit` found enough earlier profiles)."""
        from agent.rank.profile_match import uses_profile

        return uses_profile(self.model.features)

    def describe(self) -> Mapping[str, Any]:
        m = self.stored.manifest
        return {"created": m.created, "features": len(m.features), "depth": m.depth,
                "metrics": m.metrics}  # fmt: skip


log = logging.getLogger(__name__)


def load_serving(data_dir: Path, fingerprint: str) -> ServingRanker | None:
    """The stored ranker, or None with a warning that fusion orders the candidates instead;
    a ranker fitted on other data is used with a warning to refit."""
    ranker = ServingRanker.load(data_dir)
    if ranker is None:
        log.warning("no learned ranker: candidates are ordered by fusion "
                    "(run `personae rank fit` to train one)")  # fmt: skip
        return None
    if ranker.stale(fingerprint):
        log.warning(f"the learned ranker was fitted on older data ({ranker.stored.manifest.created}"
                    "): run `personae rank fit` to refit it")  # fmt: skip
    return ranker


def ranked_fusion(
    ranker: ServingRanker,
    user_id: str,
    history: Sequence[Interaction],
    fused: Sequence[Fused],
    exclude: Collection[str],
    allow: Allow | None,
    evidence: LlmEvidence | None = None,
) -> tuple[list[Fused], Ranked]:
    """`fused` replaced by the ranker's order over its own candidates and fusion's: each entry
    keeps fusion's source hits and gains the ranker's retrievers (e.g. `sequential`) that
    listed it; the score is the ranker's."""
    by_id = {f.item_id: f for f in fused}
    ranked = ranker.rank(user_id, history, exclude, allow, extra=list(by_id), evidence=evidence)
    found = []
    for item_id in ranked.items:
        hits = dict(by_id[item_id].hits) if item_id in by_id else {}
        for source, rank in ranked.source_ranks.get(item_id, {}).items():
            hits.setdefault(source, SourceHit(rank, 0.0))
        found.append(Fused(item_id, ranked.scores[item_id], hits))
    return found, ranked
