"""The canonical catalog: items, users and their interactions, whatever file they came from.

Ids are strings everywhere (MovieLens ids are numbers, Amazon ids are ASINs); timestamps are
timezone-aware UTC datetimes, so history ordering never depends on the source's time unit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
"""A user or item id: non-empty after stripping whitespace."""

AttributeValue = str | int | float | bool | None


class EventType(StrEnum):
    RATING = "rating"
    REVIEW = "review"
    CLICK = "click"
    PURCHASE = "purchase"
    FEEDBACK = "feedback"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Item(_Record):
    item_id: Id
    title: str = Field(min_length=1, description="Display title; the id when a source has none.")
    categories: list[str] = Field(default_factory=list, description="Genres or categories.")
    description: str = ""
    year: int | None = Field(
        default=None, ge=1000, le=2999, description="Release or publication year."
    )
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    @field_validator("categories")
    @classmethod
    def _clean_categories(cls, value: list[str]) -> list[str]:
        """Strip, drop empties and repeats, keep the source's order."""
        seen: dict[str, None] = {}
        for category in value:
            cleaned = category.strip()
            if cleaned:
                seen.setdefault(cleaned, None)
        return list(seen)


class User(_Record):
    user_id: Id
    attributes: dict[str, AttributeValue] = Field(
        default_factory=dict, description="Demographics and other per-user fields, as given."
    )


class Interaction(_Record):
    user_id: Id
    item_id: Id
    timestamp: datetime
    event_type: EventType = EventType.RATING
    rating: float | None = None
    review_title: str | None = None
    review_text: str | None = None
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
