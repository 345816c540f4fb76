"""`personae index models` fits ahead of time; `recommend` loads current models, refits after
feedback and says so on stderr; query texts seen before are not embedded again."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from agent.cli import app as personae
from agent.cli import fit_cmds, recommend_cmds
from agent.embeddings import HashEmbedder, Vectors
from agent.store import fitted
from agent.store.query_vectors import CachedEmbedder, cache_folder
from tests.recommend_data import World, build_world


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.embedded.extend(texts)
        return super().embed(texts)


@pytest.fixture
def embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: CountingEmbedder) -> World:
    fitted.forget_memo()
    monkeypatch.setattr(recommend_cmds, "load_embedder", lambda settings: embedder)
    monkeypatch.setattr(fit_cmds, "load_embedder", lambda settings: embedder)
    return build_world(tmp_path)


def invoke(world: World, *args: str) -> tuple[int, str, str]:
    fitted.forget_memo()  # each invocation stands for a new process
    result = CliRunner().invoke(personae, [*args, "--data-dir", str(world.settings.data_dir)])
    return result.exit_code, result.stdout, result.stderr


def test_index_models_fits_once_and_caches_every_profiles_query(world: World) -> None:
    code, out, err = invoke(world, "index", "models", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert [m["refitted"] for m in first["models"]] == [True, True]
    assert first["query_vectors"]["embedded"] == 4  # the four profiled users
    code, out, err = invoke(world, "index", "models", "--json")
    again = json.loads(out)
    assert [m["refitted"] for m in again["models"]] == [False, False]
    assert again["query_vectors"] == again["query_vectors"] | {"embedded": 0, "cached": 4}
    assert "refitting" not in err


def test_recommend_after_feedback_refits_and_says_so_once(
    world: World, embedder: CountingEmbedder
) -> None:
    assert invoke(world, "index", "models")[0] == 0
    embedder.embedded.clear()
    code, out, err = invoke(world, "recommend", "scifi", "--no-rerank", "--json")
    assert code == 0, err
    assert "refitting" not in err and "fitting" not in err  # models current: loaded
    assert embedder.embedded == []  # the profile's query vector came from the cache
    top = json.loads(out)["items"][0]["item_id"]
    assert invoke(world, "feedback", "scifi", top, "liked")[0] == 0
    code, out, err = invoke(world, "recommend", "scifi", "--no-rerank", "--json")
    assert code == 0, err
    said = [line for line in err.splitlines() if "refitting" in line]
    assert len(said) == 1 and said[0].startswith("warning: collaborative model (EASE)")
    assert "record changed" in said[0]
    assert top not in [i["item_id"] for i in json.loads(out)["items"]]  # feedback excludes it
    code, _, err = invoke(world, "recommend", "scifi", "--no-rerank")
    assert code == 0 and "refitting" not in err  # the refit was saved


def test_cached_embedder_embeds_only_new_texts(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, cache_folder(tmp_path))
    first = cache.embed(["slow sci-fi", "noir"])
    again = CachedEmbedder(inner, cache_folder(tmp_path)).embed(["noir", "slow sci-fi", "new"])
    assert inner.embedded == ["slow sci-fi", "noir", "new"]
    assert np.array_equal(again[:2], first[::-1]) and again.dtype == np.float32
    assert np.array_equal(again[2], inner.embed(["new"])[0])


def test_a_damaged_cached_vector_is_embedded_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, cache_folder(tmp_path))
    expected = cache.embed(["noir"])
    (cache_folder(tmp_path) / f"{cache.key('noir')}.npy").write_bytes(b"not numpy")
    assert np.array_equal(cache.embed(["noir"]), expected)
    assert inner.embedded == ["noir", "noir"]
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_commands_of_the_index_group_are_listed() -> None:
    group = typer.main.get_command(personae).commands["index"]  # type: ignore[attr-defined]
    assert {"items", "models"} <= set(group.commands)
