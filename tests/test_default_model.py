"""Behaviour on the `default` preset (Qwen2.5-Coder-1.5B-Instruct, real vLLM server on CPU):
a profile, a cold start, a re-rank and a chat answer. The plumbing tests run on `tiny`; these
check the same guarantees on the model users get, plus that what it writes reads as English
about the user (a check the 135M model fails: it wrote "1," as an intent)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import Settings
from agent.embeddings import HashEmbedder, load_embedder
from agent.profiles.batch import BatchProfiler, FailureLog
from agent.profiles.grounding import SemanticJudge
from agent.profiles.profiler import Profiler
from agent.runtime.endpoint import Endpoint
from agent.runtime.structured import StructuredGenerator
from agent.store.chroma import open_client
from agent.store.profile_index import ProfileIndex
from tests.profile_data import HISTORIES, build_record

pytestmark = pytest.mark.slow

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+")


def english(text: str, min_words: int) -> bool:
    """At least `min_words` words, and mostly letters rather than digits or punctuation."""
    letters = sum(c.isalpha() for c in text)
    return len(_WORD.findall(text)) >= min_words and letters >= 0.6 * len(text.replace(" ", ""))


def default_batch(tmp_path: Path, settings: Settings, endpoint: Endpoint) -> BatchProfiler:
    settings = settings.model_copy(update={"data_dir": tmp_path})
    embedder = load_embedder(settings)
    generator = StructuredGenerator.for_endpoint(settings, endpoint.base_url, endpoint.model)
    profiler = Profiler(settings, build_record(tmp_path), SemanticJudge(embedder))
    index = ProfileIndex(open_client(settings), embedder)
    return BatchProfiler(profiler, generator, index, FailureLog(tmp_path / "f.jsonl"))


def test_default_model_writes_an_english_grounded_profile(
    tmp_path: Path, default_settings: Settings, default_endpoint: Endpoint
) -> None:
    batch = default_batch(tmp_path, default_settings, default_endpoint)
    report = batch.run(["scifi"], batch.profiler.prepare_full)
    assert report.profiled == 1, report.to_dict()
    profile = batch.profiler.profiles.get("scifi")
    assert profile is not None and profile.provenance.prompt.version == 5
    cited = {i for entry in profile.interests + profile.dislikes for i in entry.evidence}
    assert cited <= {item for item, _, _ in HISTORIES["scifi"]}
    assert english(profile.intent, 3) and english(profile.summary, 6), profile
    assert all(english(i.topic, 1) for i in profile.interests), profile.interests
    assert profile.grounding.score >= 0.5, profile.grounding


def test_default_model_cold_start_keeps_to_the_users_words(
    tmp_path: Path, default_settings: Settings, default_endpoint: Endpoint
) -> None:
    batch = default_batch(tmp_path, default_settings, default_endpoint)
    text = "I love slow science fiction films and space operas. I hate horror."
    request = batch.profiler.prepare_cold_start("newcomer", text)
    batch.run(["newcomer"], lambda user: request)
    newcomer = batch.profiler.profiles.get("newcomer")
    assert newcomer is not None and newcomer.confidence == "low"
    assert newcomer.interests and all(
        i.evidence == ["self-description"] for i in newcomer.interests
    )
    assert english(newcomer.intent, 3)


def test_default_model_reranks_unseen_candidates_with_english_reasons(
    tmp_path: Path, default_settings: Settings, default_endpoint: Endpoint
) -> None:
    from tests.test_recommend_real import K, assert_guarantees, generator, real_world

    world = real_world(tmp_path, default_settings)
    rec = world.recommender(generator(world, default_endpoint))
    pool = {f.item_id for f in rec.retrieve("scifi").fused[: world.settings.rerank_top_n]}
    result = rec.recommend("scifi", k=K)
    assert result.rerank is not None
    assert_guarantees(world, result, pool)
    assert all(english(r.reason, 3) for r in result.items), [r.reason for r in result.items]


def test_default_model_chat_answers_with_tools_about_this_user_only(
    tmp_path: Path,
    default_settings: Settings,
    default_endpoint: Endpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agent.cli import chat_cmds
    from tests.recommend_data import build_world
    from tests.test_chat_real import ask, assert_grounded

    world = build_world(tmp_path)
    world.settings = default_settings.model_copy(update={"data_dir": tmp_path})
    monkeypatch.setattr(chat_cmds, "load_embedder", lambda settings: HashEmbedder())
    turn = ask(world, default_endpoint, "scifi", "What do you know about me?")
    assert_grounded(world, "scifi", turn)
    assert english(turn["answer"], 4), turn["answer"]
