"""Stored profiles as evidence for `rank fit` and for serving, without leakage.

A training group is a user's latest event. Its profile columns may only come from a profile
written before that event: one that had seen the target would put the answer in the feature,
and the ranker would learn to trust the profile more than it can at serving time (where the
profile has never seen the item). So `rank fit` takes, per user, the newest stored version
whose history ended before the target (an earlier version kept by `profile update`, or a
profile written before the latest events arrived); users with none get NaN columns, and the
profile columns are left out altogether when too few users have one. Serving uses the latest
profile."""

from __future__ import annotations

from collections.abc import Mapping

from agent.rank.features import LlmEvidence
from agent.rank.profile_match import CONFIDENCE, Embed, profile_vectors
from agent.rank.training import Judged
from agent.schemas.profile import UserProfile
from agent.store.profiles import ProfileStore
from agent.store.record import RecordStore


def written_before(profile: UserProfile, judged: Judged) -> bool:
    """The profile saw no more events than precede the target, and none after the last of
    them (events sharing the target's timestamp count as after)."""
    last = profile.facts.last_event
    if last is None or not judged.before:
        return False
    return (
        profile.provenance.history_events <= len(judged.before)
        and last <= judged.before[-1].timestamp
    )


def training_profiles(record: RecordStore, judged: Mapping[str, Judged]) -> dict[str, UserProfile]:
    """Per user, the newest stored profile written before the user's training target."""
    store = ProfileStore(record)
    found: dict[str, UserProfile] = {}
    for user_id, j in judged.items():
        for info in sorted(store.versions(user_id), key=lambda v: -v.version):
            profile = store.get(user_id, info.version)
            if profile is not None and written_before(profile, j):
                found[user_id] = profile
                break
    return found


def profile_evidence(profiles: Mapping[str, UserProfile], embed: Embed) -> dict[str, LlmEvidence]:
    vectors = profile_vectors(profiles, embed)
    return {
        user_id: LlmEvidence(
            per_user={"profile_confidence": CONFIDENCE[profile.confidence]},
            profile=vectors[user_id],
        )
        for user_id, profile in profiles.items()
    }
