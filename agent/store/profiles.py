"""Profiles in the system of record: every version kept, written one profile per transaction
so a killed batch loses at most the profiles in flight, never a stored one. A user's own edits
(`agent.profiles.edits`) are stored beside them, in the same transaction as the edit version."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.schemas.profile import ProfileKind, UserProfile
from agent.store.record import RecordStore


class ProfileVersionConflict(RuntimeError):
    """Another writer stored this version first."""


@dataclass(frozen=True)
class VersionInfo:
    version: int
    kind: str
    created_at: str
    model: str
    prompt: str


@dataclass(frozen=True)
class LatestStamp:
    """What decides whether a user's profile is up to date."""

    version: int
    history_hash: str
    prompt_hash: str
    model: str


class ProfileStore:
    def __init__(self, record: RecordStore) -> None:
        self.record = record
        self.conn = record.conn

    def add(self, profile: UserProfile, edits: str | None = None) -> None:
        """Store a new version; its number must follow the latest one. `edits`: the user's
        edit state (JSON) that made this version, stored in the same transaction."""
        p = profile.provenance
        try:
            with self.record.transaction() as conn:
                latest = self._latest_version(conn, profile.user_id)
                if p.version != latest + 1:
                    raise ProfileVersionConflict(
                        f"user {profile.user_id}: version {p.version} after {latest}"
                    )
                conn.execute(
                    "INSERT INTO profile_versions (user_id, version, kind, history_hash, model,"
                    " prompt_id, prompt_version, prompt_hash, created_at, profile)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        profile.user_id, p.version, p.kind.value, p.history_hash, p.model,
                        p.prompt.id, p.prompt.version, p.prompt.hash,
                        p.created_at.isoformat(), profile.model_dump_json(),
                    ),
                )  # fmt: skip
                if edits is not None:
                    self._put_edits(conn, profile.user_id, edits)
        except sqlite3.IntegrityError as err:
            raise ProfileVersionConflict(f"user {profile.user_id}: {err}") from err

    @staticmethod
    def _latest_version(conn: sqlite3.Connection, user_id: str) -> int:
        row = conn.execute(
            "SELECT max(version) FROM profile_versions WHERE user_id = ?", (user_id,)
        ).fetchone()
        return int(row[0] or 0)

    def latest_version(self, user_id: str) -> int:
        return self._latest_version(self.conn, user_id)

    def get(self, user_id: str, version: int | None = None) -> UserProfile | None:
        """The latest profile, or the given version."""
        if version is None:
            query = "SELECT profile FROM profile_versions WHERE user_id = ? ORDER BY version DESC"
            row = self.conn.execute(query + " LIMIT 1", (user_id,)).fetchone()
        else:
            row = self.conn.execute(
                "SELECT profile FROM profile_versions WHERE user_id = ? AND version = ?",
                (user_id, version),
            ).fetchone()
        return UserProfile.model_validate_json(row[0]) if row else None

    def latest_written(self, user_id: str) -> UserProfile | None:
        """The latest version that is not a user's edit (the LLM's), or None."""
        row = self.conn.execute(
            "SELECT profile FROM profile_versions WHERE user_id = ? AND kind != ?"
            " ORDER BY version DESC LIMIT 1",
            (user_id, ProfileKind.EDIT.value),
        ).fetchone()
        return UserProfile.model_validate_json(row[0]) if row else None

    @staticmethod
    def _put_edits(conn: sqlite3.Connection, user_id: str, edits: str) -> None:
        conn.execute("INSERT OR IGNORE INTO users (user_id) VALUES (?)", (user_id,))
        conn.execute(
            "INSERT INTO profile_edits (user_id, edits, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT(user_id) DO UPDATE SET edits = excluded.edits,"
            " updated_at = excluded.updated_at",
            (user_id, edits, datetime.now(UTC).isoformat()),
        )

    def edits(self, user_id: str) -> str | None:
        """The user's edit state as stored (JSON), or None: never edited."""
        row = self.conn.execute(
            "SELECT edits FROM profile_edits WHERE user_id = ?", (user_id,)
        ).fetchone()
        return str(row[0]) if row else None

    def versions(self, user_id: str) -> list[VersionInfo]:
        rows = self.conn.execute(
            "SELECT version, kind, created_at, model, prompt_id || ' v' || prompt_version"
            " FROM profile_versions WHERE user_id = ? ORDER BY version",
            (user_id,),
        ).fetchall()
        return [VersionInfo(*row) for row in rows]

    def latest_stamps(self) -> dict[str, LatestStamp]:
        """Per user, the stamp of the latest version the LLM wrote: a user's edit changes
        neither the history nor the model, so it makes no profile stale or current. A user
        with edit versions only gets the latest of those (model `user`: never current)."""
        query = (
            "SELECT user_id, version, history_hash, prompt_hash, model FROM profile_versions p"
            " WHERE version = (SELECT max(version) FROM profile_versions q"
            "                  WHERE q.user_id = p.user_id{})"
        )
        edit = ProfileKind.EDIT.value
        every = self.conn.execute(query.format("")).fetchall()
        written = self.conn.execute(query.format(" AND q.kind != ?"), (edit,)).fetchall()
        stamps = {row[0]: LatestStamp(*row[1:]) for row in every}
        return stamps | {row[0]: LatestStamp(*row[1:]) for row in written}

    def iter_latest(self) -> Iterator[UserProfile]:
        rows = self.conn.execute(
            "SELECT profile FROM profile_versions p WHERE version = (SELECT max(version)"
            " FROM profile_versions q WHERE q.user_id = p.user_id) ORDER BY user_id"
        )
        for row in rows:
            yield UserProfile.model_validate_json(row[0])

    def count(self) -> dict[str, int]:
        users, versions = self.conn.execute(
            "SELECT count(DISTINCT user_id), count(*) FROM profile_versions"
        ).fetchone()
        return {"profiled_users": users, "profile_versions": versions}
