"""One user as a row of the Ray Dataset, and a profiler that works from that row alone.

A worker on another node cannot open the driver's SQLite file, so the driver puts in each
row what `Profiler.prepare_*` reads from the record: the user's history, the items it names,
the previous profile (for an update) and the next version number. The newest event of the
whole store is the same for every row and travels once, with the render function. The
worker runs the same `Profiler` code over the row, so its prompt is the server path's."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from agent.config import Settings
from agent.profiles.facts import history_hash
from agent.profiles.profiler import Profiler, ProfileRequest
from agent.schemas import Interaction, Item
from agent.schemas.profile import UserProfile
from agent.store.record import RecordStore

Mode = Literal["full", "update"]
"""`full`: a profile from the whole history. `update`: previous profile plus new events."""


class UserRow(BaseModel):
    user_id: str
    mode: Mode
    history: list[Interaction]
    items: list[Item]
    previous: UserProfile | None = None
    next_version: int

    @property
    def history_hash(self) -> str:
        return history_hash(self.history)


def user_row(profiler: Profiler, user_id: str, mode: Mode) -> UserRow:
    """What a worker needs to prepare `user_id`'s request, read from the driver's record."""
    history = profiler.history(user_id)
    previous = profiler.profiles.get(user_id) if mode == "update" else None
    if mode == "update" and previous is None:
        raise ValueError(f"user {user_id} has no profile to update")
    return UserRow(
        user_id=user_id,
        mode=mode,
        history=history,
        items=list(profiler.items_of(history).values()),
        previous=previous,
        next_version=profiler.profiles.latest_version(user_id) + 1,
    )


@cache
def _scratch_record() -> RecordStore:
    """An empty in-memory record: `Profiler` wants one, the row answers every read."""
    return RecordStore(Path(":memory:"))


class RowProfiler(Profiler):
    """`Profiler` whose reads of the record are answered from one `UserRow`."""

    def __init__(self, settings: Settings, row: UserRow, newest: datetime | None) -> None:
        super().__init__(settings, _scratch_record())
        self.row = row
        self._row_newest = newest
        self._row_items = {item.item_id: item for item in row.items}

    def newest_event(self) -> datetime | None:
        return self._row_newest

    def history(self, user_id: str) -> list[Interaction]:
        if user_id != self.row.user_id:
            raise LookupError(f"row of user {self.row.user_id} asked for user {user_id}")
        return list(self.row.history)

    def items_of(self, history: list[Interaction]) -> dict[str, Item]:
        wanted = dict.fromkeys(e.item_id for e in history)
        return {i: self._row_items[i] for i in wanted if i in self._row_items}

    def prepare(self) -> ProfileRequest:
        """The row's request, numbered as the driver's record would number it."""
        row = self.row
        if row.mode == "update":
            assert row.previous is not None
            request = self.prepare_update(row.user_id, row.previous)
        else:
            request = self.prepare_full(row.user_id)
        return dataclasses.replace(request, version=row.next_version)
