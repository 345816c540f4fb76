"""What changed between two versions of a profile, in terms a person reads."""

from __future__ import annotations

from typing import Any

from agent.schemas.profile import Interest, UserProfile


def _by_topic(entries: list[Interest]) -> dict[str, Interest]:
    return {entry.topic.lower(): entry for entry in entries}


def interest_changes(before: list[Interest], after: list[Interest]) -> dict[str, list[str]]:
    old, new = _by_topic(before), _by_topic(after)
    changed = [
        f"{new[t].topic}: {old[t].weight:.2f} -> {new[t].weight:.2f}"
        for t in old.keys() & new.keys()
        if abs(old[t].weight - new[t].weight) >= 0.01 or old[t].sentiment != new[t].sentiment
    ]
    return {
        "added": [new[t].topic for t in new.keys() - old.keys()],
        "removed": [old[t].topic for t in old.keys() - new.keys()],
        "changed": sorted(changed),
    }


def profile_diff(before: UserProfile, after: UserProfile) -> dict[str, Any]:
    """Only the parts that differ; an empty value means unchanged."""

    def changed(a: object, b: object) -> dict[str, object] | None:
        return {"before": a, "after": b} if a != b else None

    interests = interest_changes(before.interests, after.interests)
    dislikes = interest_changes(before.dislikes, after.dislikes)
    return {
        "interests": interests if any(interests.values()) else None,
        "dislikes": dislikes if any(dislikes.values()) else None,
        "sentiment": changed(before.sentiment.model_dump(), after.sentiment.model_dump()),
        "intent": changed(before.intent, after.intent),
        "summary": changed(before.summary, after.summary),
        "confidence": changed(before.confidence, after.confidence),
        "events": changed(before.facts.event_count, after.facts.event_count),
    }
