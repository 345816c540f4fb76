"""`personae rank fit`: the production ranker, trained on each user's latest event.

1. Sources (EASE, item-kNN, SASRec, dense history vectors, popularity) are fitted on every
   event except each user's latest one.
2. Each user's latest event is a LambdaRank group over the union of the retrievers' top
   `depth` items (what `recommend` ranks). A seeded 10% of the users is kept out of training
   and gives the manifest's metrics (ranker vs EASE alone on the same users); the booster's
   number of trees is chosen by k-fold over the others.
3. The serving sources are refitted on every event, and everything is saved with a manifest.

Nothing here reads settings: the caller passes the parameters (`FitOptions`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agent.rank.features import (
    NO_LLM_FEATURES,
    LlmEvidence,
    candidate_union,
    feature_matrix,
    user_scores,
)
from agent.rank.model import Ranker, RankerParams, train_ranker
from agent.rank.profile_match import SERVED_PROFILE_FEATURES, Embed
from agent.rank.sources import Array, Catalog, SourceParams, Sources, fit_sources
from agent.rank.store import RankManifest, folder, save_sources, write_manifest
from agent.rank.training import Candidates, Judged, build_groups, judged_events, prefixes
from agent.recommend.filters import load_item_meta
from agent.recommend.sequential import SasRecParams
from agent.recommend.signals import interactions_fingerprint
from agent.schemas import Interaction
from agent.store.record import RecordStore

if TYPE_CHECKING:
    from agent.store.item_index import ItemIndex

Step = Callable[[str], None]
"""Called with a short label as each step starts (the CLI prints it)."""


@dataclass(frozen=True)
class FitOptions:
    sources: SourceParams = SourceParams()
    sequential: SasRecParams | None = SasRecParams()
    ranker: RankerParams = RankerParams()
    depth: int = 50
    min_history: int = 3
    seed: int = 0
    metrics_share: float = 0.1
    """Users kept out of training for the manifest's metrics."""
    min_profiles: int = 20
    """Training users with a profile written before their latest event needed for the
    profile columns (`agent.rank.profile_training`); fewer, and they are left out."""


@dataclass
class FitReport:
    manifest: RankManifest
    path: Path
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def histories_of(record: RecordStore) -> dict[str, list[Interaction]]:
    return {u: events for u in record.user_ids() if (events := record.history(u))}


def two_way(users: Sequence[str], share: float, seed: int) -> tuple[set[str], set[str]]:
    """(train, metrics) user sets, seeded."""
    import random

    ordered = sorted(users)
    random.Random(f"{seed}:rank-fit").shuffle(ordered)
    cut = int(round(len(ordered) * share))
    return set(ordered[cut:]), set(ordered[:cut])


def held_out_metrics(
    sources: Sources,
    ranker: Ranker,
    judged: Mapping[str, Judged],
    users: set[str],
    depth: int,
    evidence: Mapping[str, LlmEvidence],
) -> dict[str, float | int | None]:
    """NDCG@10 and recall@10 of the latest event for `users`: the ranker over its candidates
    (a target not retrieved is a miss) and EASE over every item the user has not had."""
    ndcg = {"ranker": [], "collaborative": []}  # type: dict[str, list[float]]
    hits = {"ranker": [], "collaborative": []}  # type: dict[str, list[float]]
    for user_id in sorted(users):
        j = judged[user_id]
        target = sources.catalog.index.get(j.target)
        if target is None:
            continue
        scored = user_scores(sources, sources.user(user_id, j.before))
        rows = candidate_union(scored, depth)
        x = feature_matrix(sources, scored, rows, ranker.features, evidence.get(user_id))
        scores = ranker.score(x)
        ordered = rows[np.argsort(-scores, kind="stable")].tolist()
        ranks = {
            "ranker": ordered.index(target) + 1 if target in ordered else None,
            "collaborative": (
                int(scored.rank("collaborative", np.array([target]))[0])
                if not np.isnan(scored.scores["collaborative"][target])
                else None
            ),
        }
        for name, rank in ranks.items():
            ndcg[name].append(100 / np.log2(rank + 1) if rank and rank <= 10 else 0.0)
            hits[name].append(100.0 if rank and rank <= 10 else 0.0)
    n = len(ndcg["ranker"])
    found: dict[str, float | int | None] = {"users": n}
    for name in ndcg:
        found[f"{name}_ndcg@10"] = round(float(np.mean(ndcg[name])), 3) if n else None
        found[f"{name}_recall@10"] = round(float(np.mean(hits[name])), 3) if n else None
    return found


def fit_production(
    record: RecordStore,
    data_dir: Path,
    options: FitOptions,
    vectors: tuple[list[str], Array] | None = None,
    step: Step = lambda label: None,
    embed: Embed | None = None,
) -> FitReport:
    """`embed` (the item index's embedder) turns stored profiles into the profile columns;
    without it, or without item vectors, the ranker has no profile columns."""
    started = time.perf_counter()
    o, timings = options, {}
    fingerprint = interactions_fingerprint(record)
    histories = histories_of(record)
    catalog = Catalog.from_meta(load_item_meta(record))

    def timed(key: str, began: float) -> None:
        timings[key] = round(time.perf_counter() - began, 3)

    step("fitting the sources on all but each user's latest event")
    t = time.perf_counter()
    train_sources = fit_sources(prefixes(histories, 1), catalog, o.sources, o.sequential, vectors)
    timed("sources_before_latest_s", t)
    if train_sources.sequential is not None:
        timings["sequential_train_s"] = train_sources.sequential.train_seconds
    step("building the training groups (latest events)")
    t = time.perf_counter()
    judged = judged_events(histories, 1, o.min_history)
    evidence = {} if embed is None or vectors is None else training_evidence(record, judged, embed)
    names = list(NO_LLM_FEATURES)
    if len(evidence) >= o.min_profiles:
        names += SERVED_PROFILE_FEATURES
    step(
        f"profiles written before the latest event: {len(evidence)} of {len(judged)} users"
        + ("" if len(evidence) >= o.min_profiles else " (too few: no profile columns)")
    )
    groups = build_groups(train_sources, judged, names, Candidates.RETRIEVED, o.depth, o.seed,
                          evidence)  # fmt: skip
    timed("features_s", t)
    train, metric_users = two_way(list(judged), o.metrics_share, o.seed)
    step(f"training LambdaRank on {len(train & set(groups.users))} groups")
    ranker = train_ranker(groups.subset(train), names, o.ranker)
    timings["ranker_train_s"] = ranker.train_seconds
    metrics = held_out_metrics(train_sources, ranker, judged, metric_users, o.depth, evidence)
    metrics |= {"groups": len(groups.sizes), "trees": ranker.best_rounds,
                "cv_ndcg@10": ranker.valid_ndcg10,
                "profiles_before_target": len(evidence)}  # fmt: skip
    step("refitting the serving sources on every event")
    t = time.perf_counter()
    validated = train_sources.sequential  # its best epoch count, without validating again
    serve_seq = o.sequential if validated is None else validated.refit_params()
    serve = fit_sources(histories, catalog, o.sources, serve_seq, vectors)
    timed("serving_sources_s", t)
    files = save_bundle(data_dir, fingerprint, ranker, serve)
    timings["total_s"] = round(time.perf_counter() - started, 3)
    manifest = RankManifest(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        data_fingerprint=fingerprint,
        users=len(histories),
        interactions=sum(len(e) for e in histories.values()),
        features=names,
        candidates=Candidates.RETRIEVED.value,
        depth=o.depth,
        params=params_of(o),
        metrics=metrics,
        importance=ranker.importance(),
        timings=timings,
        files=files,
    )
    path = write_manifest(data_dir, manifest)
    return FitReport(manifest, path, timings["total_s"], timings)


def training_evidence(
    record: RecordStore, judged: Mapping[str, Judged], embed: Embed
) -> dict[str, LlmEvidence]:
    from agent.rank.profile_training import profile_evidence, training_profiles

    profiles = training_profiles(record, judged)
    return profile_evidence(profiles, embed) if profiles else {}


def params_of(o: FitOptions) -> dict[str, object]:
    return {
        "ranker": asdict(o.ranker),
        "sources": asdict(o.sources),
        "sequential": asdict(o.sequential) if o.sequential is not None else None,
        "seed": o.seed,
        "min_history": o.min_history,
    }


def save_bundle(data_dir: Path, fingerprint: str, ranker: Ranker, serve: Sources) -> dict[str, str]:
    base = folder(data_dir)
    base.mkdir(parents=True, exist_ok=True)
    key = f"{fingerprint[:12]}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    files = {"ranker": f"ranker-{key}.txt", "sources": f"sources-{key}.npz"}
    ranker.save(base / files["ranker"])
    save_sources(serve, base / files["sources"])
    if serve.sequential is not None:
        files["sequential"] = f"sequential-{key}.pt"
        serve.sequential.save(base / files["sequential"])
    return files


def stored_vectors(index: ItemIndex) -> tuple[list[str], Array] | None:
    """The item index's stored vectors in id order (no embedding is computed), or None when
    there is no index for the configured embedder."""
    collection = index.get_collection()
    if collection is None:
        return None
    if (collection.metadata or {}).get("embedding_model") != index.embedder.model_id:
        return None
    ids, vectors = index.stored_vectors(collection)
    if not ids:
        return None
    order = np.argsort(np.array(ids))
    return [ids[i] for i in order], vectors[order]
