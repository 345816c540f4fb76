"""The SQLite record: schema versioning, transactional ingests (failed or killed), history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.ingest import Format, read_rows
from agent.ingest.pipeline import IngestOptions, ingest
from agent.ingest.rows import Row
from agent.ingest.tabular import TabularOptions
from agent.schemas import Interaction, Item
from agent.store.record import DB_NAME, MIGRATIONS, RecordStore
from tests.profile_data import START, build_record

FIXTURES = Path(__file__).parent / "fixtures" / "ingest"
REPO = Path(__file__).resolve().parent.parent


def test_schema_is_versioned_and_migrations_are_idempotent(tmp_path: Path) -> None:
    store = RecordStore.at(tmp_path)
    assert store.schema_version == len(MIGRATIONS)
    store.close()
    again = RecordStore.at(tmp_path)  # reopening applies nothing twice
    assert again.schema_version == len(MIGRATIONS)
    mode = again.conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert (tmp_path / DB_NAME).exists()


def test_history_is_ordered_by_time(tmp_path: Path) -> None:
    store = RecordStore.at(tmp_path)
    with store.writer() as writer:
        for item_id in ("a", "b", "c"):
            writer.put_item(Item(item_id=item_id, title=item_id.upper()))
        for item_id, day in (("b", 3), ("a", 1), ("c", 2)):
            when = datetime(2024, 1, day, tzinfo=UTC)
            writer.add_interaction(Interaction(user_id="u", item_id=item_id, timestamp=when))
    assert [e.item_id for e in store.history("u")] == ["a", "c", "b"]
    assert [e.item_id for e in store.history("u", limit=1)] == ["b"]
    assert store.history("nobody") == []


def test_item_updates_are_counted(tmp_path: Path) -> None:
    store = RecordStore.at(tmp_path)
    with store.writer() as writer:
        writer.put_item(Item(item_id="1", title="Heat"))
        writer.put_item(Item(item_id="1", title="Heat"))
        writer.put_item(Item(item_id="1", title="Heat", year=1995))
    assert (writer.counts.items_added, writer.counts.items_unchanged) == (1, 1)
    assert writer.counts.items_updated == 1
    item = store.get_item("1")
    assert item is not None and item.year == 1995


def test_item_ids_by_title_exact_first_then_shortest_containing(tmp_path: Path) -> None:
    record = build_record(tmp_path)
    wildcards = {"w1": "100% Wolf", "w2": "100 Wolf", "u1": "a_b", "u2": "axb"}
    with record.writer() as writer:
        for item_id, title in wildcards.items():
            writer.put_item(Item(item_id=item_id, title=title))
    assert record.item_ids_by_title(" ALIENS ", 5) == ["2"]
    assert record.item_ids_by_title("alien", 5) == ["1", "2"]
    assert record.item_ids_by_title("lien", 5) == ["1", "2"]  # Alien is the shorter title
    assert record.item_ids_by_title("alien", 1) == ["1"]
    assert record.item_ids_by_title("100%", 5) == ["w1"]  # % and _ are not wildcards
    assert record.item_ids_by_title("a_b", 5) == ["u1"]
    assert record.item_ids_by_title("nothing like it", 5) == []


def test_user_ids_in_text_order(tmp_path: Path) -> None:
    assert RecordStore.at(tmp_path / "empty").user_ids() == []
    record = build_record(tmp_path)
    assert record.user_ids() == ["crime", "injector", "pair", "scifi", "sparse"]


def test_users_active_after_a_moment(tmp_path: Path) -> None:
    record = build_record(tmp_path)  # one event a day from START; scifi's last is on day 5
    assert record.users_active_after(START - timedelta(days=1)) == set(record.user_ids())
    assert record.users_active_after(START + timedelta(days=3)) == {"scifi", "crime", "injector"}
    assert record.users_active_after(START + timedelta(days=4)) == {"scifi"}  # day 4 is not after
    assert record.users_active_after(datetime(2020, 1, 5)) == {"scifi"}  # no zone: UTC
    assert record.users_active_after(START + timedelta(days=5)) == set()


def _good_rows_then_failure(store_rows: Iterator[Row], fail_after: int) -> Iterator[Row]:
    for count, row in enumerate(store_rows):
        if count == fail_after:
            raise OSError("disk went away")  # an injected failure mid-ingest
        yield row


def test_failed_ingest_leaves_store_as_before(tmp_path: Path) -> None:
    store = RecordStore.at(tmp_path)
    ingest(store, read_rows(Format.MOVIELENS, [FIXTURES / "movielens"]), "m", [], IngestOptions())
    before = store.counts()
    rows = read_rows(Format.MOVIELENS_100K, [FIXTURES / "ml100k"])
    with pytest.raises(OSError, match="disk went away"):
        ingest(store, _good_rows_then_failure(rows, 6), "x", [], IngestOptions())
    assert store.counts() == before
    assert store.get_item("3") is None  # ml100k's items were rolled back with its ratings
    logged = store.conn.execute("SELECT count(*) FROM ingests").fetchone()[0]
    assert logged == 1  # only the successful ingest is in the log


INGEST_SCRIPT = """
import sys, typer
from agent.cli import data_cmds
app = typer.Typer()
data_cmds.register(app)
app(sys.argv[1:])
"""


def _events_csv(rows: range) -> bytes:
    lines = [f"u{i % 97},i{i % 13},{1704067200 + i},{1 + i % 5}\n" for i in rows]
    return "".join(lines).encode()


def _cli(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", INGEST_SCRIPT, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=stdin,
    )


CSV_ARGS = ["--map", "user_id=user", "--map", "item_id=item", "--create-items"]


def test_killed_ingest_leaves_store_consistent_and_rerun_has_no_duplicates(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    header = b"user,item,timestamp,rating\n"
    first_half, second_half = _events_csv(range(0, 10_000)), _events_csv(range(10_000, 20_000))
    # An earlier, complete ingest that the killed one must not disturb.
    (tmp_path / "early.csv").write_bytes(header + _events_csv(range(0, 50)))
    done = _cli("ingest", "csv", str(tmp_path / "early.csv"), "--data-dir", str(data), *CSV_ARGS)
    assert done.wait(timeout=120) == 0, done.stderr.read() if done.stderr else ""
    before = RecordStore.at(data).counts()

    # The killed ingest reads from a FIFO: after the first half is consumed it is provably
    # mid-transaction (blocked waiting for more rows) when SIGKILL arrives.
    fifo = tmp_path / "events.csv"
    os.mkfifo(fifo)
    proc = _cli("ingest", "csv", str(fifo), "--data-dir", str(data), *CSV_ARGS)
    with fifo.open("wb") as pipe:
        pipe.write(header + first_half)
        pipe.flush()
        time.sleep(1.0)  # let it parse and insert what it has read
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    store = RecordStore.at(data)
    assert store.counts() == before
    assert store.integrity_problems() == []

    full = tmp_path / "full.csv"
    full.write_bytes(header + first_half + second_half)
    for _ in range(2):  # the second run must add nothing
        rerun = _cli("ingest", "csv", str(full), "--data-dir", str(data), *CSV_ARGS)
        assert rerun.wait(timeout=300) == 0, rerun.stderr.read() if rerun.stderr else ""
    counts = RecordStore.at(data).counts()
    assert counts["interactions"] == 20_000  # the 50 early rows are duplicates of the first 50
    distinct = store.conn.execute(
        "SELECT count(*) FROM (SELECT DISTINCT user_id, item_id, ts_ms, rating FROM interactions)"
    ).fetchone()[0]
    assert distinct == 20_000


def test_tabular_options_default_to_identity_mapping() -> None:
    assert TabularOptions().column("user_id") == "user_id"
