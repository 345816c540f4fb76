"""Fitted models on disk (`agent.store.fitted`): loaded while the record is unchanged, refitted
with one warning line when it changed or the file is damaged, never trusted silently."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.recommend import collaborative, popularity
from agent.recommend.feedback import record_feedback
from agent.recommend.signals import FeedbackLabel
from agent.store import fitted
from agent.store.record import RecordStore
from tests.profile_data import add_events, build_record


class Counter:
    """A 'model' that is the number of interactions, saved as text; counts its fits."""

    def __init__(self, record: RecordStore) -> None:
        self.record = record
        self.fits = 0

    def fit(self) -> int:
        self.fits += 1
        return int(self.record.counts()["interactions"])


def save_int(model: int, path: Path) -> None:
    path.write_text(str(model))


def load_int(path: Path) -> int:
    return int(path.read_text())  # ValueError on damage


ARTIFACT = fitted.Artifact[int]("count", "models/count", ".txt", save_int, load_int, "counter")


@pytest.fixture
def record(tmp_path: Path) -> Iterator[RecordStore]:
    fitted.forget_memo()
    store = build_record(tmp_path)
    yield store
    store.close()
    fitted.forget_memo()


def load(
    record: RecordStore, data_dir: Path, counter: Counter, **params: object
) -> fitted.Fitted[int]:
    fitted.forget_memo()  # as a new process would
    return fitted.load_or_fit(record, data_dir, ARTIFACT, params or {"p": 1}, counter.fit)


def warnings_in(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_fitted_once_then_loaded_while_the_record_is_unchanged(
    record: RecordStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = Counter(record)
    first = load(record, tmp_path, counter)
    assert (first.refitted, first.reason, counter.fits) == (True, "no saved fit", 1)
    assert first.model == record.counts()["interactions"] > 0
    again = load(record, tmp_path, counter)
    assert (again.refitted, again.reason, again.model, counter.fits) == (
        False,
        None,
        first.model,
        1,
    )
    assert fitted.status(record, tmp_path, ARTIFACT, {"p": 1}) is None
    saved = json.loads((tmp_path / "models/count/count.json").read_text())
    assert saved["state"]["interactions"] == first.model and saved["params"] == {"p": 1}
    assert warnings_in(caplog) == []  # a first fit is news, not a warning


def test_a_new_event_makes_it_stale_refitted_with_one_warning(
    record: RecordStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = Counter(record)
    before = load(record, tmp_path, counter).model
    add_events(record, "scifi", [("3", 4, 400)])
    assert "record changed" in str(fitted.status(record, tmp_path, ARTIFACT, {"p": 1}))
    caplog.set_level(logging.INFO, logger="agent.store.fitted")
    after = load(record, tmp_path, counter)
    assert after.refitted and after.model == before + 1 and counter.fits == 2
    [line] = warnings_in(caplog)
    assert "counter: refitting: record changed" in line and f"{before + 1:,} interactions" in line
    files = {p.name for p in (tmp_path / "models/count").iterdir()}
    assert files == {"count.json", f"count-{after.key}.txt"}  # the stale file is gone
    assert not load(record, tmp_path, counter).refitted  # and the refit was saved


def test_other_parameters_refit(record: RecordStore, tmp_path: Path) -> None:
    counter = Counter(record)
    load(record, tmp_path, counter, p=1)
    changed = load(record, tmp_path, counter, p=2)
    assert changed.refitted and "parameters changed" in str(changed.reason)


@pytest.mark.parametrize(
    "damage",
    ["garbled model", "missing model", "garbled state", "unloadable model"],
)
def test_a_damaged_file_is_refitted_with_a_warning(
    record: RecordStore, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    counter = Counter(record)
    first = load(record, tmp_path, counter)
    folder = tmp_path / "models/count"
    model_file = folder / f"count-{first.key}.txt"
    if damage == "garbled model":
        model_file.write_text("12345678")
    elif damage == "missing model":
        model_file.unlink()
    elif damage == "garbled state":
        (folder / "count.json").write_text("{not json")
    else:  # right sha256, but the loader refuses it
        model_file.write_text("not a number")
        state = json.loads((folder / "count.json").read_text())
        state["sha256"] = fitted._sha256(model_file)
        (folder / "count.json").write_text(json.dumps(state))
    again = load(record, tmp_path, counter)
    assert again.refitted and again.model == first.model and counter.fits == 2
    assert str(again.reason).startswith("corrupt")
    [line] = warnings_in(caplog)
    assert "counter: refitting: corrupt" in line
    assert not load(record, tmp_path, counter).refitted  # repaired on disk


def test_models_persist_and_only_their_own_events_make_them_stale(
    record: RecordStore, tmp_path: Path
) -> None:
    ease, refitted = collaborative.load_or_fit(record, tmp_path, 10.0, 100)
    pop, pop_refitted = popularity.load_or_fit(record, tmp_path, 30.0)
    assert refitted and pop_refitted
    fitted.forget_memo()
    loaded, refitted = collaborative.load_or_fit(record, tmp_path, 10.0, 100)
    pop_loaded, pop_refitted = popularity.load_or_fit(record, tmp_path, 30.0)
    assert not refitted and not pop_refitted
    assert loaded.item_ids == ease.item_ids and (loaded.weights == ease.weights).all()
    assert pop_loaded.ranked == pop.ranked and pop_loaded.counts == pop.counts
    record_feedback(record, "scifi", "3", FeedbackLabel.LIKED)
    fitted.forget_memo()
    _, refitted = collaborative.load_or_fit(record, tmp_path, 10.0, 100)
    _, pop_refitted = popularity.load_or_fit(record, tmp_path, 30.0)
    assert refitted  # a like is a positive event for EASE
    assert not pop_refitted  # popularity leaves feedback out, so it is still current
