"""A system wrapper that adds up the wall time of its calls (the report's ms/user)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from agent.recommend.candidates import Scored
from evals.splits import UserSplit
from evals.systems import System


@dataclass
class Timed:
    """A system whose `order`/`top` calls add their wall time to `seconds[name]`."""

    system: System
    seconds: dict[str, float]

    @property
    def name(self) -> str:
        return self.system.name

    def covers(self, split: UserSplit) -> bool:
        return self.system.covers(split)

    def order(self, split: UserSplit, candidates: Sequence[str]) -> list[str]:
        started = time.perf_counter()
        try:
            return self.system.order(split, candidates)
        finally:
            self._add(started)

    def top(self, split: UserSplit, n: int) -> list[Scored]:
        started = time.perf_counter()
        try:
            return self.system.top(split, n)
        finally:
            self._add(started)

    def _add(self, started: float) -> None:
        self.seconds[self.name] = self.seconds.get(self.name, 0.0) + time.perf_counter() - started
