"""The Chroma item index: incremental refresh, filters, check/rebuild, and damage by kill -9.

Plumbing tests use the deterministic hash embedder with a real embedded Chroma store; the
slow test at the end uses the packaged all-MiniLM-L6-v2 on MovieLens-100K."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from agent.cli import data_cmds
from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.ingest import Format, read_rows
from agent.ingest.pipeline import IngestOptions, ingest
from agent.schemas import Item
from agent.store.chroma import open_client
from agent.store.consistency import check, rebuild
from agent.store.item_index import Hit, ItemIndex, item_document
from agent.store.record import RecordStore
from tests.embedders import SpreadEmbedder

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
REPO = Path(__file__).resolve().parent.parent


def record_with(data: Path, fmt: Format, name: str) -> RecordStore:
    store = RecordStore.at(data)
    ingest(store, read_rows(fmt, [FIXTURES / name]), fmt.value, [], IngestOptions())
    return store


def item_index(data: Path, dim: int = 64) -> ItemIndex:
    return ItemIndex(open_client(Settings(data_dir=data)), HashEmbedder(dim))


def test_refresh_embeds_only_new_or_changed_items(tmp_path: Path) -> None:
    store = record_with(tmp_path, Format.MOVIELENS, "movielens")
    index = item_index(tmp_path)
    first = index.refresh(store.iter_items())
    assert (first.total, first.embedded, first.unchanged) == (4, 4, 0)
    again = index.refresh(store.iter_items())
    assert (again.embedded, again.unchanged, again.deleted) == (0, 4, 0)
    with store.writer() as writer:
        writer.put_item(Item(item_id="2", title="Jumanji", year=1995, categories=["Family"]))
    changed = index.refresh(store.iter_items())
    assert (changed.embedded, changed.unchanged) == (1, 3)
    with store.transaction() as conn:
        conn.execute("DELETE FROM interactions WHERE item_id = '99'")
        conn.execute("DELETE FROM items WHERE item_id = '99'")
    assert index.refresh(store.iter_items()).deleted == 1
    collection = index.get_collection()
    assert collection is not None and collection.count() == 3
    stored = collection.get(ids=["2"], include=["metadatas", "documents"])
    assert stored["metadatas"] is not None and stored["documents"] is not None
    assert stored["metadatas"][0]["categories"] == ["Family"]
    assert stored["documents"][0] == "Jumanji (1995). Categories: Family"


def test_another_model_recreates_the_collection(tmp_path: Path) -> None:
    store = record_with(tmp_path, Format.MOVIELENS, "movielens")
    item_index(tmp_path, dim=64).refresh(store.iter_items())
    report = item_index(tmp_path, dim=32).refresh(store.iter_items())
    assert report.recreated and report.embedded == 4


def test_query_with_metadata_filters(tmp_path: Path) -> None:
    store = record_with(tmp_path, Format.MOVIELENS, "movielens")
    index = item_index(tmp_path)
    index.refresh(store.iter_items())
    toy = store.get_item("1")
    assert toy is not None
    assert index.query(item_document(toy), n=1)[0].item_id == "1"
    dramas = index.query("anything", n=10, where={"categories": {"$contains": "Drama"}})
    assert [hit.item_id for hit in dramas] == ["11"]
    no_year = index.query("anything", n=10, where={"year": {"$gte": 1990}})
    assert {hit.item_id for hit in no_year} == {"1", "2", "11"}


def test_check_finds_damage_and_rebuild_repairs_it(tmp_path: Path) -> None:
    store = record_with(tmp_path, Format.AMAZON_REVIEWS, "amazon2023")
    index = item_index(tmp_path)
    assert check(store, index).problems == ["item index missing: run `personae index items`"]
    index.refresh(store.iter_items())
    assert check(store, index).ok
    collection = index.get_collection()
    assert collection is not None
    # The symptoms of a store killed mid-write: a zeroed vector, a lost and a stray record.
    collection.upsert(ids=["P1"], embeddings=np.zeros((1, 64), dtype=np.float32))
    collection.delete(ids=["P2"])
    collection.add(ids=["ghost"], embeddings=np.ones((1, 64), dtype=np.float32))
    report = check(store, index)
    assert not report.ok
    assert (report.zero_vectors, report.missing, report.extra) == (1, 1, 1)
    rebuilt = rebuild(store, index)
    assert rebuilt.embedded == 2 and rebuilt.recreated
    assert check(store, index).ok


CLI_WITH_HASH_EMBEDDER = """
import sys, typer
from agent.cli import data_cmds
from agent.embeddings import HashEmbedder
data_cmds.load_embedder = lambda settings: HashEmbedder(64)
app = typer.Typer()
data_cmds.register(app)
app(sys.argv[1:])
"""

INDEX_AND_REPORT = """
import sys
from pathlib import Path
from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.store.chroma import open_client
from agent.store.item_index import ItemIndex
from agent.store.record import RecordStore
data = Path(sys.argv[1])
store = RecordStore.at(data)
index = ItemIndex(open_client(Settings(data_dir=data)), HashEmbedder(64))
def advance(done):
    if done % 1000 == 0:
        print(done, flush=True)
index.refresh(store.iter_items(), advance)
print("finished", flush=True)
"""


def _run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_probe_tolerates_a_few_search_misses_but_not_a_disagreeing_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The precondition (zero misses on a healthy index) needs vectors HNSW cannot confuse:
    hash-embedded near-identical titles sit on the plateau of equal distances that the
    tolerance exists for, and missed 8 times in 30 runs. Spread vectors are far apart and
    keep a distance gradient for the greedy search to follow."""
    store = RecordStore.at(tmp_path)
    with store.writer() as writer:
        for n in range(100):
            writer.put_item(Item(item_id=f"i{n}", title=f"film number {n}", categories=["x"]))
    index = ItemIndex(open_client(Settings(data_dir=tmp_path)), SpreadEmbedder())
    index.refresh(store.iter_items())
    vectors = SpreadEmbedder().embed([item_document(item) for item in store.iter_items()])
    closest = 1.0 - (vectors @ vectors.T - 2.0 * np.eye(len(vectors))).max()
    assert closest > 0.05, "the test's vectors must be well separated"
    assert check(store, index).probe_misses == 0
    real_query = index.query_vectors

    def answers_elsewhere(misses: int) -> Callable[..., list[list[Hit]]]:
        """The first `misses` queries find a far item instead of their own vector."""

        def query(vectors: Any, n: int = 50, where: Any = None) -> list[list[Hit]]:
            hits = real_query(vectors, n, where)
            return [[Hit("far", 0.5, {})] if k < misses else h for k, h in enumerate(hits)]

        return query

    monkeypatch.setattr(index, "query_vectors", answers_elsewhere(2))
    tolerated = check(store, index)
    assert tolerated.ok and tolerated.probe_misses == 2
    monkeypatch.setattr(index, "query_vectors", answers_elsewhere(20))
    damaged = check(store, index)
    assert damaged.probe_misses == 20
    assert damaged.problems and "20 of 20 stored vectors" in damaged.problems[0]


@pytest.mark.slow
def test_kill_during_chroma_write_is_detected_and_repaired(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = RecordStore.at(data)
    with store.writer() as writer:
        for n in range(20_000):
            writer.put_item(Item(item_id=f"i{n}", title=f"item {n}", categories=[f"c{n % 7}"]))
    store.close()
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", INDEX_AND_REPORT, str(data)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # kill -9 while batches are being written
        if line.strip() == "10000":  # two 4096-item batches written, a third in flight
            proc.send_signal(signal.SIGKILL)
            break
    assert proc.wait(timeout=60) == -signal.SIGKILL

    checked = _run(CLI_WITH_HASH_EMBEDDER, "store", "check", "--data-dir", str(data), "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert not report["ok"] and report["problems"]
    assert report["missing"] > 0 or report["wedged"] or report["zero_vectors"] > 0

    rebuilt = _run(CLI_WITH_HASH_EMBEDDER, "store", "rebuild", "--data-dir", str(data))
    if rebuilt.returncode != 0:  # a wedged store can refuse even to drop the collection
        rebuilt = _run(
            CLI_WITH_HASH_EMBEDDER, "store", "rebuild", "--reset", "--data-dir", str(data)
        )
    assert rebuilt.returncode == 0, rebuilt.stderr
    final = _run(CLI_WITH_HASH_EMBEDDER, "store", "check", "--data-dir", str(data), "--json")
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["indexed"] == 20_000


@pytest.fixture
def hash_cli(monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setattr(data_cmds, "load_embedder", lambda settings: HashEmbedder(64))
    app = typer.Typer()
    data_cmds.register(app)
    return app


def test_index_items_cli_is_incremental(hash_cli: typer.Typer, tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path)]
    assert runner.invoke(hash_cli, ["index", "items", *args]).exit_code == 1  # nothing ingested
    record_with(tmp_path, Format.MOVIELENS_100K, "ml100k").close()
    first = runner.invoke(hash_cli, ["index", "items", *args, "--json"])
    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["embedded"] == 3
    second = runner.invoke(hash_cli, ["index", "items", *args, "--json"])
    assert json.loads(second.stdout)["embedded"] == 0
    checked = runner.invoke(hash_cli, ["store", "check", *args])
    assert checked.exit_code == 0 and "ok" in checked.stderr


@pytest.mark.slow
def test_title_query_finds_the_item_first_with_real_embeddings(tmp_path: Path) -> None:
    app = typer.Typer()
    data_cmds.register(app)
    runner = CliRunner()
    args = ["--data-dir", str(tmp_path)]
    assert runner.invoke(app, ["ingest", "movielens-100k", "--sample", *args]).exit_code == 0
    indexed = runner.invoke(app, ["index", "items", *args, "--json"])
    assert indexed.exit_code == 0, indexed.stderr
    assert json.loads(indexed.stdout)["embedded"] == 1682
    assert runner.invoke(app, ["store", "check", *args]).exit_code == 0
    settings = Settings(data_dir=tmp_path)
    index = ItemIndex(open_client(settings), data_cmds.load_embedder(settings))
    for title, item_id in (("Toy Story", "1"), ("GoldenEye", "2"), ("Star Wars", "50")):
        hits = index.query(title, n=5)
        assert hits[0].item_id == item_id, (title, hits)
    comedies = index.query("Toy Story", n=5, where={"categories": {"$contains": "Comedy"}})
    assert comedies[0].item_id == "1"
    assert all("Comedy" in hit.metadata["categories"] for hit in comedies)
