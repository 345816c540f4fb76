"""Segment runs in the system of record: which k-means run (k, seed, embedding model, naming
model and prompt) put which user in which named segment. Every run is kept; the latest run is
the one `personae segments` shows. Sizes are counted from the members, so they stay right
after `personae forget` removes a member."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent.prompts import PromptRef
from agent.store.record import RecordStore


@dataclass(frozen=True)
class TopicScore:
    topic: str
    members: int
    """How many members list this topic among their interests."""
    weight: float
    """Sum of the members' weights for it."""


@dataclass(frozen=True)
class Member:
    user_id: str
    profile_version: int
    distance: float
    """Cosine distance to the segment's centroid."""


@dataclass
class Segment:
    number: int
    name: str
    description: str
    named_by: str
    """"llm", or "interests" when the name was made from the top interests (--no-names, or
    the model gave no valid name)."""
    top_interests: list[TopicScore]
    members: list[Member] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass
class SegmentRun:
    k: int
    seed: int
    algorithm: str
    embedding_model: str
    inertia: float
    segments: list[Segment]
    model: str | None = None
    prompt: PromptRef | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None

    @property
    def users(self) -> int:
        return sum(s.size for s in self.segments)


class SegmentStore:
    def __init__(self, record: RecordStore) -> None:
        self.record = record
        self.conn = record.conn

    def add(self, run: SegmentRun) -> int:
        """Store a whole run in one transaction; returns its id."""
        prompt = run.prompt
        with self.record.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO segment_runs (k, seed, algorithm, embedding_model, users, inertia,"
                " model, prompt_id, prompt_version, prompt_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run.k, run.seed, run.algorithm, run.embedding_model, run.users, run.inertia,
                    run.model, prompt.id if prompt else None, prompt.version if prompt else None,
                    prompt.hash if prompt else None, run.created_at.isoformat(),
                ),
            )  # fmt: skip
            run_id = int(cursor.lastrowid or 0)
            for s in run.segments:
                conn.execute(
                    "INSERT INTO segments (run_id, segment, name, description, named_by,"
                    " top_interests) VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, s.number, s.name, s.description, s.named_by, _topics_json(s)),
                )
                conn.executemany(
                    "INSERT INTO segment_members (run_id, segment, user_id, profile_version,"
                    " distance) VALUES (?, ?, ?, ?, ?)",
                    [(run_id, s.number, m.user_id, m.profile_version, m.distance)
                     for m in s.members],
                )  # fmt: skip
        run.id = run_id
        return run_id

    def latest_id(self) -> int | None:
        row = self.conn.execute("SELECT max(id) FROM segment_runs").fetchone()
        return int(row[0]) if row[0] is not None else None

    def get(self, run_id: int) -> SegmentRun | None:
        row = self.conn.execute(
            "SELECT k, seed, algorithm, embedding_model, inertia, model, prompt_id,"
            " prompt_version, prompt_hash, created_at FROM segment_runs WHERE id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return None
        prompt = PromptRef(id=row[6], version=row[7], hash=row[8]) if row[6] else None
        return SegmentRun(
            k=row[0], seed=row[1], algorithm=row[2], embedding_model=row[3], inertia=row[4],
            segments=self._segments(run_id), model=row[5], prompt=prompt,
            created_at=datetime.fromisoformat(row[9]), id=run_id,
        )  # fmt: skip

    def _segments(self, run_id: int) -> list[Segment]:
        segments = {
            row[0]: Segment(row[0], row[1], row[2], row[3], _topics(row[4]))
            for row in self.conn.execute(
                "SELECT segment, name, description, named_by, top_interests FROM segments"
                " WHERE run_id = ? ORDER BY segment",
                (run_id,),
            )
        }
        for number, user_id, version, distance in self.conn.execute(
            "SELECT segment, user_id, profile_version, distance FROM segment_members"
            " WHERE run_id = ? ORDER BY segment, distance, user_id",
            (run_id,),
        ):
            segments[number].members.append(Member(user_id, version, distance))
        return list(segments.values())

    def memberships(self, user_id: str) -> list[tuple[int, int]]:
        """(run id, segment) of every run the user is a member of."""
        rows = self.conn.execute(
            "SELECT run_id, segment FROM segment_members WHERE user_id = ? ORDER BY run_id",
            (user_id,),
        )
        return [(int(r[0]), int(r[1])) for r in rows]


def _topics_json(segment: Segment) -> str:
    return json.dumps(
        [[t.topic, t.members, round(t.weight, 4)] for t in segment.top_interests],
        ensure_ascii=False,
    )


def _topics(raw: str) -> list[TopicScore]:
    return [TopicScore(str(t), int(m), float(w)) for t, m, w in json.loads(raw)]
