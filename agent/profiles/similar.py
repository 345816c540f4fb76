"""What two users' profiles have in common (`personae similar` and the chat's similar-users
tool show the same thing)."""

from __future__ import annotations

from agent.schemas.profile import UserProfile
from agent.schemas.text import topic_key


def shared_interests(mine: UserProfile, other: UserProfile) -> list[str]:
    """`mine`'s interest topics, once each in its order, that `other` has too (by topic_key:
    "Sci-Fi" and "sci fi" are the same interest)."""
    theirs = {topic_key(i.topic) for i in other.interests}
    return list(dict.fromkeys(i.topic for i in mine.interests if topic_key(i.topic) in theirs))


def shared_categories(mine: UserProfile, other: UserProfile) -> list[str]:
    """`mine`'s top history categories, in its order, that are among `other`'s too."""
    theirs = {c.category for c in other.facts.top_categories}
    return [c.category for c in mine.facts.top_categories if c.category in theirs]
