"""What two profiles share (agent/profiles/similar.py): `personae similar` and the chat."""

from __future__ import annotations

from agent.profiles.similar import shared_categories, shared_interests
from tests.test_segments import make_profile


def test_shared_interests_match_topics_loosely_in_the_first_profiles_order() -> None:
    mine = make_profile("a", ["Sci-Fi", "Space opera", "Robots"], ["Sci-Fi"])
    other = make_profile("b", ["ROBOTS", "Horror", "sci fi"], ["Horror"])
    assert shared_interests(mine, other) == ["Sci-Fi", "Robots"]
    assert shared_interests(other, mine) == ["ROBOTS", "sci fi"]
    assert shared_interests(mine, make_profile("c", ["Romance"], ["Drama"])) == []


def test_shared_categories_keep_the_first_profiles_order() -> None:
    mine = make_profile("a", ["Sci-Fi"], ["Sci-Fi", "Action", "Drama"])
    other = make_profile("b", ["Drama"], ["Drama", "Sci-Fi"])
    assert shared_categories(mine, other) == ["Sci-Fi", "Drama"]
    assert shared_categories(mine, make_profile("c", ["Horror"], ["Horror"])) == []
