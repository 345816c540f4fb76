"""Forget a user: their events, user row, every profile version and segment membership in the
record, their vectors in Chroma, and their lines in the failure logs.

Order: the record first, in one transaction (it is the truth; Chroma is derived from it), then
Chroma, then the logs. If Chroma fails after the record committed, running `forget` again
finishes the job: every step deletes by user id and deleting nothing is not an error. Until
then the user's vector is an orphan (a vector whose user has no profile in the record):
`orphan_profile_vectors` finds those, `personae similar` and `segments` ignore them.

The record deletes run with `PRAGMA secure_delete` (freed pages are zeroed) and the WAL is
checkpointed afterwards, so the user's rows do not linger in the database files either.

Chroma's API no longer returns the user after this, but an embedded store keeps its own write
log (`embeddings_queue` in chroma.sqlite3) until it prunes it, and that log still holds the
user's past upserts. For erasure down to the bytes, delete the Chroma folder and rebuild it from
the record (it is derived data).

Chroma collections other than the item catalog that hold user data are expected to carry a
`user_id` metadata field (the `profiles` collection does); every such record is deleted."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from agent.store.item_index import COLLECTION as ITEMS_COLLECTION
from agent.store.profile_index import COLLECTION as PROFILES_COLLECTION
from agent.store.record import RecordStore

FAILURES_DIR = "failures"

_RECORD_STEPS: list[tuple[str, str]] = [
    ("segment_memberships", "DELETE FROM segment_members WHERE user_id = ?"),
    ("profile_versions", "DELETE FROM profile_versions WHERE user_id = ?"),
    ("profile_edits", "DELETE FROM profile_edits WHERE user_id = ?"),
    ("interactions", "DELETE FROM interactions WHERE user_id = ?"),
    ("user_rows", "DELETE FROM users WHERE user_id = ?"),
]
_EMPTY_SEGMENTS = (
    "DELETE FROM segments WHERE NOT EXISTS (SELECT 1 FROM segment_members m"
    " WHERE m.run_id = segments.run_id AND m.segment = segments.segment)"
)


@dataclass
class ForgetReport:
    user_id: str
    interactions: int = 0
    user_rows: int = 0
    profile_versions: int = 0
    profile_edits: int = 0
    """The user's own edits (`personae profile edit`): 0 or 1 row."""
    segment_memberships: int = 0
    empty_segments: int = 0
    """Segments left without members (their name and interests came only from this user)."""
    vectors: dict[str, int] = field(default_factory=dict)
    """Chroma collection -> records of this user."""
    failure_log_lines: int = 0

    @property
    def found(self) -> bool:
        counts = (self.interactions, self.user_rows, self.profile_versions, self.profile_edits,
                  self.segment_memberships, self.failure_log_lines)  # fmt: skip
        return any(counts) or any(self.vectors.values())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"found": self.found}


# -- what is stored ------------------------------------------------------------------------


def survey(record: RecordStore, client: ClientAPI, data_dir: Path, user_id: str) -> ForgetReport:
    """What `forget_user` would remove, without removing anything."""
    report = ForgetReport(user_id)
    for name, delete in _RECORD_STEPS:
        count_sql = delete.replace("DELETE FROM", "SELECT count(*) FROM", 1)
        setattr(report, name, int(record.conn.execute(count_sql, (user_id,)).fetchone()[0]))
    report.vectors = {
        c.name: len(ids) for c in user_collections(client) if (ids := _user_ids(c, user_id))
    }
    report.failure_log_lines = sum(_split_log(path, user_id)[1] for path in failure_logs(data_dir))
    return report


def user_collections(client: ClientAPI) -> list[Collection]:
    """Every collection that may hold user data: all but the item catalog."""
    return [c for c in client.list_collections() if c.name != ITEMS_COLLECTION]


def _user_ids(collection: Collection, user_id: str) -> set[str]:
    found = set(collection.get(where={"user_id": user_id}, include=[])["ids"])
    if collection.name == PROFILES_COLLECTION:
        found |= set(collection.get(ids=[user_id], include=[])["ids"])
    return found


# -- removing it ---------------------------------------------------------------------------


def forget_user(
    record: RecordStore, client: ClientAPI, data_dir: Path, user_id: str
) -> ForgetReport:
    """Remove everything stored about `user_id`; safe to run again after a partial failure."""
    report = ForgetReport(user_id)
    forget_in_record(record, user_id, report)
    report.vectors = forget_vectors(client, user_id)
    report.failure_log_lines = forget_in_failure_logs(data_dir, user_id)
    return report


def forget_in_record(record: RecordStore, user_id: str, report: ForgetReport) -> None:
    """All of the user's rows in one transaction, with freed pages zeroed."""
    conn = record.conn
    conn.execute("PRAGMA secure_delete = ON")
    try:
        with record.transaction():
            for name, delete in _RECORD_STEPS:
                setattr(report, name, conn.execute(delete, (user_id,)).rowcount)
            report.empty_segments = conn.execute(_EMPTY_SEGMENTS).rowcount
    finally:
        conn.execute("PRAGMA secure_delete = OFF")
    checkpoint(conn)


def checkpoint(conn: sqlite3.Connection) -> None:
    """Move the WAL into the database and truncate it, so deleted rows' old page images do
    not stay in the -wal file. A reader elsewhere can block it; then the WAL is overwritten
    later in normal operation."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()


def forget_vectors(client: ClientAPI, user_id: str) -> dict[str, int]:
    """Delete the user's records from every user-data collection; collection -> deleted."""
    removed: dict[str, int] = {}
    for collection in user_collections(client):
        ids = _user_ids(collection, user_id)
        if ids:
            collection.delete(ids=sorted(ids))
            removed[collection.name] = len(ids)
    return removed


def failure_logs(data_dir: Path) -> list[Path]:
    folder = Path(data_dir) / FAILURES_DIR
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def forget_in_failure_logs(data_dir: Path, user_id: str) -> int:
    """Drop the user's lines from the failure logs (rewritten atomically)."""
    removed = 0
    for path in failure_logs(data_dir):
        kept, dropped = _split_log(path, user_id)
        if not dropped:
            continue
        temp = path.with_suffix(".jsonl.tmp")
        temp.write_text("".join(kept), encoding="utf-8")
        os.replace(temp, path)
        removed += dropped
    return removed


def _split_log(path: Path, user_id: str) -> tuple[list[str], int]:
    kept: list[str] = []
    dropped = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if _log_user(line) == user_id:
                dropped += 1
            else:
                kept.append(line)
    return kept, dropped


def _log_user(line: str) -> str | None:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    return str(entry.get("user_id")) if isinstance(entry, dict) else None


# -- orphans -------------------------------------------------------------------------------


def orphan_profile_vectors(record: RecordStore, client: ClientAPI) -> list[str]:
    """Ids in the `profiles` collection whose user has no profile in the record (left by a
    `forget` whose Chroma step failed, or by a record restored from an older backup)."""
    collections = [c for c in user_collections(client) if c.name == PROFILES_COLLECTION]
    if not collections:
        return []
    collection = collections[0]
    profiled = {
        row[0] for row in record.conn.execute("SELECT DISTINCT user_id FROM profile_versions")
    }
    orphans: list[str] = []
    offset, page = 0, client.get_max_batch_size()
    while ids := collection.get(include=[], limit=page, offset=offset)["ids"]:
        orphans += [i for i in ids if i not in profiled]
        offset += len(ids)
    return sorted(orphans)


def remove_orphan_profile_vectors(record: RecordStore, client: ClientAPI) -> list[str]:
    orphans = orphan_profile_vectors(record, client)
    if orphans:
        client.get_collection(PROFILES_COLLECTION).delete(ids=orphans)
    return orphans
