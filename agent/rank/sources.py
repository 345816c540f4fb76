"""Every retriever and item statistic the ranker reads, fitted on one set of events, with
catalog-wide score arrays per user.

`fit_sources(prefixes, ...)` sees only the events it is given: the eval passes each user's
training prefix of a stage (never a held-out event of anyone), `personae rank fit` the events
before each user's latest one, and serving the whole record. Sources:

- collaborative: EASE on the binary user-item matrix of positive events;
- item-kNN: cosine of item co-occurrence on the same matrix (also the "distance from the
  user's recent items");
- sequential: the SASRec-family model (optional: None skips it);
- dense: cosine of item text vectors against the mean of the history's vectors (optional);
- popularity: all-time positive counts and counts decayed with a half-life;
- item statistics: first event time, mean rating.

Everything is an array over one `Catalog` index, so per-user scoring is a handful of numpy
operations whatever the number of candidates."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy import sparse

from agent.recommend.collaborative import EaseModel, fit_ease
from agent.recommend.filters import ItemMeta
from agent.recommend.popularity import DAY_MS
from agent.recommend.signals import is_positive, positive_items
from agent.schemas import Interaction

if TYPE_CHECKING:
    from agent.recommend.sequential import SasRecParams, SequentialModel

Array = npt.NDArray[np.float32]
Index = npt.NDArray[np.int64]
SMALL_MATH = """Per-user products use `np.einsum`, not `@`: `@` goes to OpenBLAS, whose threads
spin and wait on a busy machine (measured on 2 shared cores: 22 ms for a 10x384 by 384x200
product, 0.3 ms with one thread), and a single request's products are too small to gain from
threads anyway."""
RETRIEVERS = ("collaborative", "sequential", "knn", "dense", "popularity")
"""Sources with a per-user score over the catalog (each gets a score, rank and missing flag)."""


@dataclass(frozen=True)
class SourceParams:
    ease_lambda: float = 200.0
    ease_max_items: int = 8000
    half_life_days: float = 90.0
    recent_items: int = 10
    """How many of the user's latest positive items count as "recent"."""


@dataclass
class Catalog:
    item_ids: list[str]
    categories: Array
    """(items, categories) 0/1."""
    category_names: list[str]
    years: Array
    """Release year, NaN when unknown."""
    index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.item_ids)}

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows(self, items: Sequence[str]) -> Index:
        """Catalog rows of the known items among `items`, in order."""
        return np.array([self.index[i] for i in items if i in self.index], dtype=np.int64)

    @classmethod
    def from_meta(cls, meta: Mapping[str, ItemMeta]) -> Catalog:
        item_ids = sorted(meta)
        names = sorted({c for m in meta.values() for c in m.categories})
        column = {c: j for j, c in enumerate(names)}
        cats = np.zeros((len(item_ids), len(names)), dtype=np.float32)
        years = np.full(len(item_ids), np.nan, dtype=np.float32)
        for row, item in enumerate(item_ids):
            for c in meta[item].categories:
                cats[row, column[c]] = 1.0
            if meta[item].year is not None:
                years[row] = meta[item].year
        return cls(item_ids, cats, names, years)


@dataclass
class UserState:
    """What the features know about one user: their events up to a cut, nothing after."""

    user_id: str
    positives: list[str]
    """Positive items, oldest first."""
    prior: npt.NDArray[np.bool_]
    """Catalog mask of every item the user has an event for (never a candidate)."""
    recent: Index
    """Catalog rows of the latest positive items."""
    ref_ms: int
    """Time of the user's latest event."""
    mean_rating: float
    category_share: Array
    """Share of the user's positive items in each category."""


@dataclass
class Sources:
    catalog: Catalog
    params: SourceParams
    ease: EaseModel
    ease_rows: Index
    """Catalog row of each EASE item."""
    knn: Array
    """(EASE items, EASE items) cosine of co-occurrence, zero diagonal."""
    pop_count: Array
    pop_recent: Array
    first_seen_ms: Array
    """NaN for items without any event in the fitted data."""
    mean_rating: Array
    newest_ms: int
    sequential: SequentialModel | None = None
    seq_rows: Index | None = None
    vectors: Array | None = None
    """(catalog, dim) unit vectors; zero rows for items without one."""
    has_vector: npt.NDArray[np.bool_] | None = None
    log_pop: Array = field(init=False, repr=False)
    ease_col: Index = field(init=False, repr=False)
    """EASE column of each catalog row, -1 outside the model."""

    def __post_init__(self) -> None:
        self.log_pop = np.log1p(self.pop_count)
        self.ease_col = np.full(len(self.catalog), -1, dtype=np.int64)
        self.ease_col[self.ease_rows] = np.arange(len(self.ease_rows))

    def user(self, user_id: str, events: Sequence[Interaction]) -> UserState:
        """The state of a user whose events, oldest first, are `events` (and nothing else)."""
        c = self.catalog
        positives = positive_items(events)
        prior = np.zeros(len(c), dtype=np.bool_)
        prior[c.rows([e.item_id for e in events])] = True
        rows = c.rows(positives)
        share = (
            c.categories[rows].mean(axis=0)
            if len(rows)
            else np.zeros(len(c.category_names), dtype=np.float32)
        )
        ratings = [e.rating for e in events if e.rating is not None]
        ref = max((_ms(e) for e in events), default=self.newest_ms)
        return UserState(
            user_id, positives, prior, rows[-self.params.recent_items :], ref,
            float(np.mean(ratings)) if ratings else math.nan, share.astype(np.float32),
        )  # fmt: skip

    def scores(self, user: UserState) -> dict[str, Array]:
        """Catalog-wide score of every retriever for this user, NaN where it has none."""
        n = len(self.catalog)
        found: dict[str, Array] = {}
        ease = np.full(n, np.nan, dtype=np.float32)
        knn = np.full(n, np.nan, dtype=np.float32)
        cols = [self.ease._index[i] for i in dict.fromkeys(user.positives) if i in self.ease]
        if cols:
            ease[self.ease_rows] = self.ease.weights[cols].sum(axis=0)
            knn[self.ease_rows] = self.knn[cols].mean(axis=0)
        found["collaborative"], found["knn"] = ease, knn
        seq = np.full(n, np.nan, dtype=np.float32)
        model, seq_rows = self.sequential, self.seq_rows
        if model is not None and seq_rows is not None and any(i in model for i in user.positives):
            seq[seq_rows] = model.scores(user.positives)
        found["sequential"] = seq
        dense = np.full(n, np.nan, dtype=np.float32)
        if self.vectors is not None and self.has_vector is not None:
            rows = self.catalog.rows(user.positives)
            rows = rows[self.has_vector[rows]] if len(rows) else rows
            if len(rows):
                query = self.vectors[rows].mean(axis=0)
                norm = float(np.linalg.norm(query))
                if norm > 0:
                    cosine = np.einsum("ij,j->i", self.vectors, query / norm)  # see SMALL_MATH
                    dense = np.where(self.has_vector, cosine, np.nan)
        found["dense"] = dense.astype(np.float32)
        found["popularity"] = self.pop_recent
        return found


def _ms(event: Interaction) -> int:
    return round(event.timestamp.timestamp() * 1000)


def fit_sources(
    prefixes: Mapping[str, Sequence[Interaction]],
    catalog: Catalog,
    params: SourceParams | None = None,
    sequential: SasRecParams | None = None,
    vectors: tuple[list[str], Array] | None = None,
) -> Sources:
    """Fit every source on exactly `prefixes` (user id -> events, oldest first)."""
    p = params or SourceParams()
    n = len(catalog)
    pairs: list[tuple[str, str]] = []
    pop_count = np.zeros(n, dtype=np.float32)
    times: list[tuple[int, int]] = []
    rating_sum = np.zeros(n, dtype=np.float64)
    rating_n = np.zeros(n, dtype=np.float64)
    first = np.full(n, np.inf)
    for user_id, events in prefixes.items():
        for e in events:
            row = catalog.index.get(e.item_id)
            if row is None:
                continue
            ts = _ms(e)
            first[row] = min(first[row], ts)
            if e.rating is not None:
                rating_sum[row] += e.rating
                rating_n[row] += 1
            if is_positive(e):
                pairs.append((user_id, e.item_id))
                pop_count[row] += 1
                times.append((row, ts))
    newest = max((ts for _, ts in times), default=0)
    pop_recent = np.zeros(n, dtype=np.float64)
    if times:
        rows_t, ts_t = np.array(times).T
        decay = 0.5 ** ((newest - ts_t) / (p.half_life_days * DAY_MS))
        np.add.at(pop_recent, rows_t, decay)
    ease = fit_ease(pairs, p.ease_lambda, p.ease_max_items)
    ease_rows = catalog.rows(ease.item_ids)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_rating = np.where(rating_n > 0, rating_sum / rating_n, np.nan)
    sources = Sources(
        catalog, p, ease, ease_rows, item_knn(pairs, ease.item_ids), pop_count,
        pop_recent.astype(np.float32), np.where(np.isinf(first), np.nan, first).astype(np.float32),
        mean_rating.astype(np.float32), newest,
    )  # fmt: skip
    if sequential is not None:
        from agent.recommend.sequential import fit_sequential

        seqs = [positive_items(events) for events in prefixes.values()]
        attach_sequential(sources, fit_sequential(seqs, sequential))
    if vectors is not None:
        attach_vectors(sources, *vectors)
    return sources


def attach_sequential(sources: Sources, model: SequentialModel) -> None:
    sources.sequential = model
    sources.seq_rows = sources.catalog.rows(model.item_ids)
    if len(sources.seq_rows) != len(model.item_ids):
        raise ValueError("the sequential model knows items outside the catalog")


def attach_vectors(sources: Sources, item_ids: list[str], vectors: Array) -> None:
    c = sources.catalog
    full = np.zeros((len(c), vectors.shape[1]), dtype=np.float32)
    has = np.zeros(len(c), dtype=np.bool_)
    for i, item in enumerate(item_ids):
        row = c.index.get(item)
        if row is not None:
            norm = float(np.linalg.norm(vectors[i]))
            if norm > 0:
                full[row], has[row] = vectors[i] / norm, True
    sources.vectors, sources.has_vector = full, has


def item_knn(pairs: Sequence[tuple[str, str]], item_ids: list[str]) -> Array:
    """Cosine similarity of the items' user sets (binary), zero diagonal."""
    columns = {item: i for i, item in enumerate(item_ids)}
    users: dict[str, int] = {}
    cells = {(users.setdefault(u, len(users)), columns[i]) for u, i in pairs if i in columns}
    if not cells:
        return np.zeros((len(item_ids), len(item_ids)), dtype=np.float32)
    rows, cols = zip(*cells, strict=True)
    x = sparse.csr_matrix(
        (np.ones(len(cells), dtype=np.float32), (rows, cols)), shape=(len(users), len(item_ids))
    )
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    norms = np.sqrt(np.diag(gram))
    norms[norms == 0] = 1.0
    sim = gram / norms[:, None] / norms[None, :]
    np.fill_diagonal(sim, 0.0)
    return sim.astype(np.float32)
