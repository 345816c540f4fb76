"""Option choices mirrored from modules too slow to import for `--help`.

Typer needs an option's Enum when the command is registered, but the real enums live in
modules that import pydantic models, the ingest readers or the eval harness (0.1-3 s).
Commands convert a mirror to the real enum by value when they run (`Format(name.value)`);
tests/test_cli_imports.py holds every mirror equal to its source."""

from __future__ import annotations

from enum import StrEnum


class FormatName(StrEnum):
    """`agent.ingest.Format`."""

    MOVIELENS_100K = "movielens-100k"
    MOVIELENS = "movielens"
    AMAZON_REVIEWS = "amazon-reviews"
    CSV = "csv"
    JSONL = "jsonl"


class RowKind(StrEnum):
    """`agent.ingest.tabular.Kind`."""

    INTERACTIONS = "interactions"
    ITEMS = "items"
    USERS = "users"


class EventName(StrEnum):
    """`agent.schemas.EventType`."""

    RATING = "rating"
    REVIEW = "review"
    CLICK = "click"
    PURCHASE = "purchase"
    FEEDBACK = "feedback"


class FeedbackName(StrEnum):
    """`agent.recommend.signals.FeedbackLabel`."""

    LIKED = "liked"
    DISLIKED = "disliked"
    CLICKED = "clicked"
    DISMISSED = "dismissed"


class ProtocolName(StrEnum):
    """`evals.protocols.Protocol`."""

    LLMRANK = "llmrank"
    LLMRANK_REF = "llmrank-ref"
    FULL = "full"
    TWO_STAGE = "two-stage"


MIRRORS: dict[type[StrEnum], str] = {
    FormatName: "agent.ingest:Format",
    RowKind: "agent.ingest.tabular:Kind",
    EventName: "agent.schemas:EventType",
    FeedbackName: "agent.recommend.signals:FeedbackLabel",
    ProtocolName: "evals.protocols:Protocol",
}
"""Each mirror and the `module:Enum` it copies (what the test compares)."""


class RerankModeName(StrEnum):
    """`Settings.rerank_mode`."""

    SCORED = "scored"
    GENERATE = "generate"
