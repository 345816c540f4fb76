"""Profiles in the system of record: every version kept, written one profile per transaction
so a killed batch loses at most the profiles in flight, never a stored one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from agent.schemas.profile import UserProfile
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

    def add(self, profile: UserProfile) -> None:
        """Store a new version; its number must follow the latest one."""
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

    def versions(self, user_id: str) -> list[VersionInfo]:
        rows = self.conn.execute(
            "SELECT version, kind, created_at, model, prompt_id || ' v' || prompt_version"
            " FROM profile_versions WHERE user_id = ? ORDER BY version",
            (user_id,),
        ).fetchall()
        return [VersionInfo(*row) for row in rows]

    def latest_stamps(self) -> dict[str, LatestStamp]:
        rows = self.conn.execute(
            "SELECT user_id, version, history_hash, prompt_hash, model FROM profile_versions p"
            " WHERE version = (SELECT max(version) FROM profile_versions q"
            "                  WHERE q.user_id = p.user_id)"
        ).fetchall()
        return {row[0]: LatestStamp(*row[1:]) for row in rows}

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
