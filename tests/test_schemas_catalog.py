from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from agent.schemas import EventType, Interaction, Item, User


def test_item_cleans_categories_and_keeps_order() -> None:
    item = Item(item_id=" 7 ", title="Heat", categories=[" Crime", "", "Drama", "Crime"])
    assert item.item_id == "7"
    assert item.categories == ["Crime", "Drama"]


def test_ids_must_not_be_blank() -> None:
    with pytest.raises(ValidationError, match="user_id"):
        User(user_id="  ")


def test_interaction_timestamps_become_utc() -> None:
    naive = Interaction(user_id="u", item_id="i", timestamp=datetime(2020, 1, 1, 12))
    assert naive.timestamp.tzinfo is UTC
    plus_two = timezone(timedelta(hours=2))
    aware = Interaction(
        user_id="u", item_id="i", timestamp=datetime(2020, 1, 1, 12, tzinfo=plus_two)
    )
    assert aware.timestamp == datetime(2020, 1, 1, 10, tzinfo=UTC)
    assert aware.event_type is EventType.RATING


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="colour"):
        Item(item_id="1", title="x", colour="red")  # type: ignore[call-arg]
