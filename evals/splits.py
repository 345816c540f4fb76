"""Leave-one-out splits by timestamp.

Each user's events are ordered by time (ties by ingestion order). The last event is the test
target, the second-to-last the validation target. Everything before the target is the training
prefix; systems and prompts see at most its `cap` most recent events (LLMRank uses 50). The
models fitted for a stage (collaborative, popularity) see every user's prefix for that stage
and never a held-out event, of any user."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from agent.recommend.signals import is_positive, positive_items
from agent.schemas import Interaction
from agent.store.record import RecordStore


class Stage(StrEnum):
    TEST = "test"
    VALIDATION = "validation"

    @property
    def held_out(self) -> int:
        """How many of the last events are not training data at this stage."""
        return 1 if self is Stage.TEST else 2


@dataclass(frozen=True)
class UserSplit:
    user_id: str
    history: tuple[Interaction, ...]
    """The capped training prefix, oldest first: all a system or prompt may see."""
    target: str
    prior: frozenset[str]
    """Every item before the target (never recommended, also beyond the cap)."""
    seen: frozenset[str]
    """Every item of the user at all (never sampled as a negative)."""
    prefix: tuple[Interaction, ...] = ()
    """The whole training prefix, oldest first (what the collaborative, sequential and ranker
    systems see, as their published counterparts do; `history` is the prompt's cap)."""

    @property
    def positive(self) -> list[str]:
        return positive_items(self.history)

    @property
    def prefix_positive(self) -> list[str]:
        return positive_items(self.prefix)


@dataclass
class StageData:
    stage: Stage
    splits: dict[str, UserSplit]
    """Evaluable users (enough history, a target not seen before)."""
    train_pairs: list[tuple[str, str]]
    """(user, item) of positive training events of every user: what EASE is fitted on."""
    train_events: list[tuple[str, int]]
    """(item, ts_ms) of positive training events: what popularity is fitted on."""
    skipped: dict[str, int]


def split_user(
    events: list[Interaction], stage: Stage, cap: int, min_history: int
) -> tuple[UserSplit | None, list[Interaction], str | None]:
    """The user's split (None with the reason when not evaluable) and the training prefix."""
    cut = len(events) - stage.held_out
    prefix = events[: max(cut, 0)]
    if cut < min_history:
        return None, prefix, "short_history"
    target = events[cut].item_id
    prior = frozenset(e.item_id for e in prefix)
    if target in prior:
        return None, prefix, "target_seen_before"
    split = UserSplit(
        user_id=events[0].user_id,
        history=tuple(prefix[-cap:]),
        target=target,
        prior=prior,
        seen=frozenset(e.item_id for e in events),
        prefix=tuple(prefix),
    )
    return split, prefix, None


def build_stage(
    histories: dict[str, list[Interaction]], stage: Stage, cap: int, min_history: int
) -> StageData:
    data = StageData(stage, {}, [], [], {})
    for user_id, events in histories.items():
        split, prefix, reason = split_user(events, stage, cap, min_history)
        for event in prefix:
            if is_positive(event):
                data.train_pairs.append((user_id, event.item_id))
                data.train_events.append((event.item_id, round(event.timestamp.timestamp() * 1000)))
        if split is not None:
            data.splits[user_id] = split
        else:
            assert reason is not None
            data.skipped[reason] = data.skipped.get(reason, 0) + 1
    return data


def load_histories(record: RecordStore) -> dict[str, list[Interaction]]:
    """Every user's events, oldest first (the record's own ordering)."""
    users = [row[0] for row in record.conn.execute("SELECT DISTINCT user_id FROM interactions")]
    return {user: record.history(user) for user in sorted(users, key=natural)}


def natural(user_id: str) -> tuple[int, str]:
    return (int(user_id), "") if user_id.isdigit() else (1 << 62, user_id)


def data_hash(histories: dict[str, list[Interaction]], item_ids: Iterable[str]) -> str:
    """Fingerprint of exactly the data an eval saw: every event and the catalog's ids."""
    digest = hashlib.sha256()
    for user_id, events in histories.items():
        for e in events:
            row = f"{user_id}\t{e.item_id}\t{e.timestamp.isoformat()}\t{e.event_type}\t{e.rating}"
            digest.update(row.encode() + b"\n")
    for item_id in sorted(item_ids):
        digest.update(b"item\t" + item_id.encode() + b"\n")
    return digest.hexdigest()
