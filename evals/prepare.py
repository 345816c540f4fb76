"""What an eval run starts from: its options (`RunOptions`), the stores and models it uses
(`EvalContext`), and everything fixed before any system runs (`prepare` -> `Prepared`: the
stage's splits, the users, the catalog), with the item index's vectors (`item_vectors`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from agent.config import Settings
from agent.embeddings import Embedder
from agent.runtime.structured import StructuredGenerator
from agent.schemas import Interaction, Item
from agent.store.item_index import ItemIndex
from agent.store.record import RecordStore
from evals.backends import check_backends
from evals.protocols import Protocol
from evals.sampling import choose_users
from evals.splits import Stage, StageData, build_stage, data_hash, load_histories
from evals.systems import Vectors


class RunOptions(BaseModel):
    protocols: list[Protocol] = Field(min_length=1)
    users: int | None = 200
    user_ids: list[str] | None = None
    seed: int = 0
    stage: Stage = Stage.TEST
    shuffles: int = Field(1, ge=1)
    rerank_mode: Literal["scored", "generate"] = "scored"
    blend: float = Field(0.5, ge=0, le=1)
    """The `blended` system's LLM weight (a fixed weight, to measure what a blend costs)."""
    default_blend: float | None = Field(None, ge=0, le=1)
    """The `default` system's LLM weight when no ranker is fitted; None: what `recommend`
    would use (the rerank_blend setting, else the weight tuned for the model and mode, else
    0)."""
    use_llm: bool = True
    rerank: bool = True
    """LLM re-rank (and the rankers' LLM columns); False: profiles are the only LLM stage."""
    rank: bool = True
    """Also fit and judge the sequential retriever and the learned rankers."""
    reasons: int = Field(0, ge=0)
    """Write and judge reasons for each user's top this many (0: no reasons stage)."""
    smoke: bool = False
    out_dir: Path
    cache_dir: Path

    @property
    def label_scores(self) -> bool:
        """The scored re-rank runs, so `llm_score` is a ranker column."""
        return self.rerank and self.rerank_mode == "scored"


@dataclass
class EvalContext:
    settings: Settings
    record: RecordStore
    index: ItemIndex
    embedder: Embedder
    generator: StructuredGenerator | None


@dataclass
class Prepared:
    """Everything fixed before any system runs."""

    data: StageData
    users: list[str]
    catalog: list[str]
    items: dict[str, Item]
    data_hash: str
    ratings: dict[str, list[float]]
    fakes: list[str]
    histories: dict[str, list[Interaction]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


class EvalError(RuntimeError):
    """The data or index cannot support the requested eval."""


def prepare(ctx: EvalContext, options: RunOptions) -> Prepared:
    fakes = check_backends(ctx.generator, ctx.embedder, options.smoke)
    s = ctx.settings
    histories = load_histories(ctx.record)
    if not histories:
        raise EvalError(f"no interactions in {ctx.record.path}: run `personae ingest` first")
    catalog = [row[0] for row in ctx.record.conn.execute("SELECT item_id FROM items ORDER BY 1")]
    data = build_stage(histories, options.stage, s.eval_history_cap, s.eval_min_history)
    if options.user_ids:
        missing = [u for u in options.user_ids if u not in data.splits]
        if missing:
            raise EvalError(f"users not evaluable (unknown or too little history): {missing[:5]}")
        users = list(dict.fromkeys(options.user_ids))
    else:
        users = choose_users(list(data.splits), options.users, options.seed)
    if not users:
        raise EvalError("no evaluable users")
    wanted = {i for u in users for i in (data.splits[u].target, *data.splits[u].prior)}
    items = {i: item for i in wanted if (item := ctx.record.get_item(i)) is not None}
    ratings = {u: [e.rating for e in data.splits[u].history if e.rating is not None] for u in users}
    return Prepared(data, users, catalog, items, data_hash(histories, catalog), ratings, fakes,
                    histories)  # fmt: skip


def item_vectors(index: ItemIndex, embedder: Embedder) -> tuple[list[str], Vectors]:
    """The item index's stored vectors (what dense retrieval searches), in id order."""
    collection = index.get_collection()
    if collection is None:
        raise EvalError("no item index: run `personae index items` first")
    built_with = (collection.metadata or {}).get("embedding_model")
    if built_with != embedder.model_id:
        raise EvalError(
            f"the item index was built with {built_with!r}, not {embedder.model_id!r}: "
            "run `personae index items` with the same embedding model"
        )
    ids: list[str] = []
    rows: list[Vectors] = []
    for page in index.pages(collection, include=["embeddings"]):
        ids.extend(page["ids"])
        rows.append(np.asarray(page["embeddings"], dtype=np.float32))
    order = np.argsort(np.array(ids))
    return [ids[i] for i in order], np.concatenate(rows)[order]
