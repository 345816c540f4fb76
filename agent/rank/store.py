"""The production ranker on disk: `data_dir/models/ranker/`.

    manifest.json    what it was trained on and how well it did (written last, atomically)
    ranker-KEY.txt   the LightGBM booster (text format)
    sources-KEY.npz  the serving sources fitted on every event (EASE, item-kNN, popularity,
                     item statistics, the catalog), numpy arrays only (no pickle)
    sequential-KEY.pt  the SASRec weights fitted on every event (when trained with one)

`KEY` is the data fingerprint and a time stamp, so a new fit never overwrites the files the
manifest still points to; older files are removed after the manifest is replaced.
(`agent.store.fitted` keys single models by record state; this bundle has its own manifest
because it also records held-out metrics, features and training parameters.)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from agent.rank.sources import Catalog, SourceParams, Sources, attach_sequential
from agent.recommend.collaborative import EaseModel

FOLDER = "models/ranker"
MANIFEST = "manifest.json"
FORMAT = 1


class RankManifest(BaseModel):
    format: int = FORMAT
    created: str
    data_fingerprint: str
    """`interactions_fingerprint` of the record when fitted."""
    users: int
    interactions: int
    features: list[str]
    candidates: str
    depth: int
    params: dict[str, Any]
    """ranker, sources and sequential parameters."""
    metrics: dict[str, Any]
    """On a held-out slice of users: ranker vs EASE NDCG@10 / recall@10 on their latest event."""
    importance: dict[str, float]
    timings: dict[str, float]
    files: dict[str, str]


def folder(data_dir: Path) -> Path:
    return Path(data_dir) / FOLDER


def read_manifest(data_dir: Path) -> RankManifest | None:
    path = folder(data_dir) / MANIFEST
    if not path.exists():
        return None
    return RankManifest.model_validate_json(path.read_text(encoding="utf-8"))


def save_sources(sources: Sources, path: Path) -> None:
    c = sources.catalog
    arrays: dict[str, Any] = {
        "item_ids": np.array(c.item_ids, dtype=str),
        "categories": c.categories,
        "category_names": np.array(c.category_names, dtype=str),
        "years": c.years,
        "ease_items": np.array(sources.ease.item_ids, dtype=str),
        "ease_weights": sources.ease.weights,
        "knn": sources.knn,
        "pop_count": sources.pop_count,
        "pop_recent": sources.pop_recent,
        "first_seen_ms": sources.first_seen_ms,
        "mean_rating": sources.mean_rating,
        "newest_ms": np.array([sources.newest_ms], dtype=np.int64),
        "params": np.array(json.dumps(sources.params.__dict__)),
    }
    if sources.vectors is not None and sources.has_vector is not None:
        arrays |= {"vectors": sources.vectors, "has_vector": sources.has_vector}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_sources(path: Path) -> Sources:
    with np.load(path, allow_pickle=False) as d:
        catalog = Catalog([str(i) for i in d["item_ids"]], d["categories"],
                          [str(c) for c in d["category_names"]], d["years"])  # fmt: skip
        ease = EaseModel([str(i) for i in d["ease_items"]], d["ease_weights"])
        sources = Sources(
            catalog, SourceParams(**json.loads(str(d["params"]))), ease,
            catalog.rows(ease.item_ids), d["knn"], d["pop_count"], d["pop_recent"],
            d["first_seen_ms"], d["mean_rating"], int(d["newest_ms"][0]),
        )  # fmt: skip
        if "vectors" in d:
            sources.vectors, sources.has_vector = d["vectors"], d["has_vector"]
        return sources


@dataclass
class StoredRanker:
    """Everything `recommend` needs to rank: the booster, the serving sources, the manifest."""

    manifest: RankManifest
    sources: Sources
    booster_path: Path

    def ranker(self) -> Any:
        """The `Ranker` (imports lightgbm)."""
        from agent.rank.model import Ranker, RankerParams

        params = RankerParams(**self.manifest.params["ranker"])
        return Ranker.load(self.booster_path, self.manifest.features, params)


def load_stored(data_dir: Path) -> StoredRanker | None:
    """The saved ranker, or None when `personae rank fit` has not run."""
    manifest = read_manifest(data_dir)
    if manifest is None:
        return None
    base = folder(data_dir)
    sources = load_sources(base / manifest.files["sources"])
    if "sequential" in manifest.files:
        from agent.recommend.sequential import SequentialModel

        attach_sequential(sources, SequentialModel.load(base / manifest.files["sequential"]))
    return StoredRanker(manifest, sources, base / manifest.files["ranker"])


def write_manifest(data_dir: Path, manifest: RankManifest) -> Path:
    """Write the manifest last (atomic), then remove files it no longer points to."""
    base = folder(data_dir)
    path = base / MANIFEST
    tmp = base / (MANIFEST + ".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(path)
    keep = set(manifest.files.values()) | {MANIFEST}
    for old in base.iterdir():
        if old.name not in keep and not old.name.endswith(".tmp"):
            old.unlink(missing_ok=True)
    return path
