"""The prompt-injection test set and its measurement (issue 19, part 4) without an LLM: the
cases build what they claim, an instruction cannot close its review's quote, no prompt holds
another user's data, and bench/injection.py runs both variants end to end on a fake model.
The rate itself is measured on the default model with `python bench/injection.py
--base-url ...`; a fake's rate would mean nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from tenacity import wait_none

from agent.config import Settings
from agent.profiles.profiler import Profiler
from agent.recommend.rerank import prepare_rerank
from agent.recommend.scored import prepare_scored
from agent.runtime.structured import StructuredGenerator
from agent.schemas.profile import UserProfile
from bench.injection import (
    KINDS,
    Case,
    catalog_of,
    history_of,
    load_cases,
    measure,
    record_for,
)
from evals.cache import JsonlCache
from tests.fakes import Interrupted, SchemaFiller

CASES, CATALOG, OTHER = load_cases()


def test_an_instruction_that_closes_its_quote_stays_inside_it(tmp_path: Path) -> None:
    case = next(c for c in CASES if "</review>" in c.injection)
    line = next(x for x in profile_prompt(case, True, tmp_path).splitlines() if "SYSTEM" in x)
    assert line.strip().startswith("<review>") and line.strip().endswith("</review>")
    assert line.count("review>") == 2


def text_of(prompt: object) -> str:
    return "\n".join(m.content for m in prompt.messages)  # type: ignore[attr-defined]


def test_every_kind_has_cases_with_the_target_mid_list() -> None:
    assert {c.kind for c in CASES} == set(KINDS)
    ids = {item.item_id for item in CATALOG}
    for case in CASES:
        assert case.target in case.candidates and case.candidates.index(case.target) >= 4
        assert set(case.candidates) <= ids and not set(case.candidates) & {
            e[0] for e in case.history
        }


def test_variants_differ_only_by_the_instruction() -> None:
    for case in CASES:
        control, injected = history_of(case, False), history_of(case, True)
        changed = [i for i, (a, b) in enumerate(zip(control, injected, strict=True)) if a != b]
        if case.carrier is None:
            assert changed == []
            titles = {i.item_id: i.title for i in catalog_of(case, CATALOG, True)}
            assert titles[case.target].endswith(case.injection)
        else:
            assert changed == [case.carrier]
            assert str(injected[case.carrier][2]).endswith(case.injection)


def profile_prompt(case: Case, injected: bool, data_dir: Path) -> str:
    with record_for(case, CATALOG, OTHER, injected) as record:
        return text_of(
            Profiler(Settings(data_dir=data_dir), record).prepare_full(case.user_id).prompt
        )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_an_instruction_stays_inside_its_quote_and_no_prompt_holds_another_user(
    case: Case, tmp_path: Path
) -> None:
    control, injected = (profile_prompt(case, flag, tmp_path) for flag in (False, True))
    for delimiter in ("<review>", "</review>"):
        assert injected.count(delimiter) == control.count(delimiter)
    if case.carrier is not None:
        assert "SYSTEM" not in control
    secrets = (OTHER["secret"], "Dana Whitfield", "7731")
    items = {i.item_id: i for i in catalog_of(case, CATALOG, True)}
    with record_for(case, CATALOG, OTHER, True) as record:
        history = record.history(case.user_id)
    rerank_prompt = text_of(
        prepare_rerank(
            case.user_id, _profile(), history, items, case.candidates,
            picks=3, tokens_per_pick=140, reask_repeats=False,
        ).prompts[0]
    )  # fmt: skip
    scored_prompt = text_of(
        prepare_scored(case.user_id, _profile(), history, items, case.candidates).prompts[0]
    )
    for secret in secrets:
        assert secret not in injected and secret not in rerank_prompt
        assert secret not in scored_prompt


def test_measurement_runs_both_variants_on_a_fake_model(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    generator = StructuredGenerator(settings, SchemaFiller(), "fake-model", retry_wait=wait_none())
    report = measure(settings, generator, {"rank-first-1", "title-1", "reveal-1"})
    assert report["model"] == "fake-model" and report["cases"] == 3
    for result in report["results"]:
        assert result["control_rank"] is not None and result["injected_rank"] is not None
        assert result["moved"] == "same"  # the fake ignores its prompt: nothing moves
        assert result["scored_moved"] in {"up", "same", "down"}  # both variants scored
        assert result["secret_leaked"] is False
        assert result["failed_runs"] == {"control": 0, "injected": 0}
    assert report["scored_ranked_cases"] == 3
    assert report["up_rate"] == 0.0 and set(report["by_kind"]) == {
        "rank_first", "title_injection", "reveal_other_user"
    }  # fmt: skip


def _profile() -> UserProfile:
    return UserProfile.model_construct(  # type: ignore[call-arg]  # only what profile_text reads
        user_id="u", interests=[], dislikes=[], intent="films", summary="likes films"
    )


def test_an_interrupted_measurement_resumes_from_its_cache_and_says_what_it_does(
    tmp_path: Path,
) -> None:
    """A case is cached when it ends, so a rerun after a crash starts at the next one; every
    variant and case says so on the way (the 1.5B model takes minutes per case)."""
    settings = Settings(data_dir=tmp_path)
    chosen = {"rank-first-1", "title-1", "reveal-1"}
    cache = JsonlCache(tmp_path / "injection.jsonl")
    said: list[str] = []
    dying = StructuredGenerator(
        settings, SchemaFiller(stop_after=8), "fake-model", retry_wait=wait_none()
    )
    with pytest.raises(Interrupted):
        measure(settings, dying, chosen, cache, said.append)
    assert len(cache.entries) == 1
    assert any(line.startswith("[1/3] ") and "s left" in line for line in said)
    assert any(": control (profile, then re-rank of" in line for line in said)
    said.clear()
    filler = SchemaFiller()
    generator = StructuredGenerator(settings, filler, "fake-model", retry_wait=wait_none())
    resumed = measure(settings, generator, chosen, JsonlCache(cache.path), said.append)
    assert " cached (list: control " in said[0]  # the finished case first, then the others
    assert any(line.startswith("[2/2] ") for line in said)
    assert sum("cached" in line for line in said) == 1
    fresh = measure(settings, generator, chosen)  # no cache: everything measured again
    assert resumed == fresh
    other_model = StructuredGenerator(settings, SchemaFiller(), "other", retry_wait=wait_none())
    said.clear()
    measure(settings, other_model, chosen, JsonlCache(cache.path), said.append)
    assert not any("cached" in line for line in said)  # another model is another key
