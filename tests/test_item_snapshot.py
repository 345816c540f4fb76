"""The item vector snapshot: written by every index write, equal to the collection, gone
while a write is under way or after one crashed, exact search, and a damaged or foreign file
is never used (real embedded Chroma; the hash embedder is plumbing)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from agent.config import Settings
from agent.embeddings import HashEmbedder
from agent.schemas import Item
from agent.store.chroma import open_client
from agent.store.item_index import ItemIndex
from agent.store.item_snapshot import ItemSnapshot, load_snapshot
from tests.embedders import SpreadEmbedder

CATALOG = [
    Item(item_id=str(n), title=f"Film {n} {word}", year=1950 + n, categories=[genre])
    for n, (word, genre) in enumerate(
        [(w, g) for w in ("space", "love", "crime", "ghost", "war") for g in ("Drama", "Sci-Fi")]
        * 3
    )
]


def index_at(tmp_path: Path) -> ItemIndex:
    return ItemIndex(open_client(Settings(data_dir=tmp_path)), HashEmbedder())


def snapshot_of(index: ItemIndex) -> ItemSnapshot | None:
    folder = index.snapshot_folder()
    assert folder is not None
    return load_snapshot(folder, index.embedder.model_id)


def stored(index: ItemIndex) -> tuple[list[str], np.ndarray]:
    collection = index.get_collection()
    assert collection is not None
    got = collection.get(include=["embeddings"])
    vectors = np.asarray(got["embeddings"], dtype=np.float32)
    return list(got["ids"]), vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_finished_write_leaves_a_snapshot_equal_to_the_collection(tmp_path: Path) -> None:
    index = index_at(tmp_path)
    index.refresh(CATALOG)
    snapshot = snapshot_of(index)
    assert snapshot is not None and snapshot.count() == len(CATALOG)
    ids, vectors = stored(index)
    order = [snapshot.ids.index(i) for i in ids]
    assert sorted(snapshot.ids) == sorted(ids)
    np.testing.assert_allclose(np.asarray(snapshot.vectors)[order], vectors, atol=1e-6)
    index.refresh(CATALOG[:20])  # 10 deleted
    after = snapshot_of(index)
    assert after is not None and sorted(after.ids) == sorted(stored(index)[0])
    assert after.count() == 20


def test_a_crashed_write_leaves_no_snapshot_and_the_next_one_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = index_at(tmp_path)
    index.refresh(CATALOG[:10])
    assert snapshot_of(index) is not None

    def crash(*args: object) -> int:
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(index, "_upsert", crash)
    with pytest.raises(RuntimeError, match="killed"):
        index.refresh(CATALOG)
    assert snapshot_of(index) is None  # readers go to Chroma, which is half-written
    monkeypatch.undo()
    index.refresh(CATALOG)
    restored = snapshot_of(index)
    assert restored is not None and sorted(restored.ids) == sorted(stored(index)[0])
    index.rebuild(CATALOG[:5])
    rebuilt = snapshot_of(index)
    assert rebuilt is not None and rebuilt.count() == 5


def test_nearest_is_exact_cosine_over_the_collection(tmp_path: Path) -> None:
    index = ItemIndex(open_client(Settings(data_dir=tmp_path)), SpreadEmbedder())
    index.refresh(CATALOG)
    snapshot = snapshot_of(index)
    assert snapshot is not None
    ids, vectors = stored(index)
    for text in ("space drama", "ghost war", "a film about love"):
        query = index.embedder.embed([text])[0]
        exact = vectors @ (query / np.linalg.norm(query))
        best = np.argsort(-exact)[:7]
        got = snapshot.nearest(query, 7)
        assert [item for item, _ in got] == [ids[i] for i in best]
        np.testing.assert_allclose([s for _, s in got], exact[best], atol=1e-5)
    dramas = {i.item_id for i in CATALOG if "Drama" in i.categories}
    allowed = snapshot.nearest(query, 100, allow=lambda item: item in dramas)
    assert {item for item, _ in allowed} == dramas
    assert snapshot.nearest(query, 3, allow=lambda item: False) == []


def test_ties_are_broken_by_id_even_at_the_cut() -> None:
    same = np.tile(np.array([[1.0, 0.0]], dtype=np.float32), (6, 1))
    snapshot = ItemSnapshot(["5", "3", "0", "4", "1", "2"], same, "m")
    for n in range(1, 7):
        assert [item for item, _ in snapshot.nearest([1.0, 0.0], n)] == sorted(snapshot.ids)[:n]


def test_a_damaged_or_foreign_snapshot_is_never_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index = index_at(tmp_path)
    index.refresh(CATALOG)
    folder = index.snapshot_folder()
    assert folder is not None
    assert load_snapshot(folder, "another-model") is None
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps(meta | {"count": 29}))
    with caplog.at_level(logging.WARNING):
        assert load_snapshot(folder, index.embedder.model_id) is None
    assert "incomplete" in caplog.text
    (folder / "meta.json").write_text(json.dumps(meta))
    vectors = (folder / "vectors.npy").read_bytes()
    (folder / "vectors.npy").write_bytes(vectors[: len(vectors) // 2])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert load_snapshot(folder, index.embedder.model_id) is None
    assert "unreadable" in caplog.text
    (folder / "vectors.npy").write_bytes(vectors)
    (folder / "ids.json").write_text(json.dumps(["1", "2"]))
    assert load_snapshot(folder, index.embedder.model_id) is None


def test_a_chroma_server_keeps_no_snapshot() -> None:
    from chromadb.config import Settings as ChromaSettings

    class ServerClient:
        def get_max_batch_size(self) -> int:
            return 100

        def get_settings(self) -> ChromaSettings:
            return ChromaSettings(is_persistent=False)

    assert ItemIndex(ServerClient(), HashEmbedder()).snapshot_folder() is None  # type: ignore[arg-type]


def test_store_check_finds_a_snapshot_that_differs_from_the_collection(tmp_path: Path) -> None:
    from agent.store.consistency import check
    from agent.store.item_snapshot import write_snapshot
    from tests.profile_data import build_record

    record = build_record(tmp_path)
    index = index_at(tmp_path)
    index.refresh(record.iter_items())
    assert check(record, index).ok
    folder = index.snapshot_folder()
    snapshot = snapshot_of(index)
    assert folder is not None and snapshot is not None
    moved = np.array(snapshot.vectors)
    moved[0] = moved[1]  # as if written by another writer's state
    write_snapshot(folder, snapshot.ids, moved, snapshot.model_id)
    problems = check(record, index).problems
    assert any("snapshot" in p and "differs" in p for p in problems), problems
    write_snapshot(folder, snapshot.ids[1:], np.asarray(snapshot.vectors)[1:], snapshot.model_id)
    assert not check(record, index).ok
    index.refresh(record.iter_items())
    assert check(record, index).ok
