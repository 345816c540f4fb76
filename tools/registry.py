"""The tool functions wrapped for LangChain, bound to one `ToolContext` by closure.

The argument schemas are what the model sees (and, on the constrained path, what its reply is
decoded against): none has a user id. A `ToolInputError` becomes a `ToolException`, which
LangChain returns to the model as an error `ToolMessage` (status "error", the short message
only). Any other exception is a bug or an outage: it propagates and ends the turn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.tools import StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from tools import user_tools
from tools.context import ToolContext, ToolInputError

TEXT_ARG_CHARS = 48
"""Bound of free-text arguments: SmolLM2 once wrote a whole paragraph as an item title."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GetProfileArgs(_Args):
    version: int | None = Field(None, description="An older profile version; omit for latest")


class GetHistoryArgs(_Args):
    category: str | None = Field(None, description="Only items of this category")
    min_rating: float | None = Field(None, description="Only ratings at least this")
    offset: int = Field(0, description="Skip this many (paging)")
    limit: int = Field(10, description="How many, at most 20")


class SearchCatalogArgs(_Args):
    query: str = Field(max_length=TEXT_ARG_CHARS, description="A title or a few words")
    limit: int = Field(5, description="How many, at most 10")


class RecommendArgs(_Args):
    k: int = Field(5, description="How many, at most 10")
    category: str | None = Field(None, description="Only this category")
    exclude_category: str | None = Field(None, description="Never this category")
    min_year: int | None = Field(None, description="Released in or after")
    max_year: int | None = Field(None, description="Released in or before")


class ExplainItemArgs(_Args):
    item: str = Field(max_length=TEXT_ARG_CHARS, description="Item id or title")


class SimilarUsersArgs(_Args):
    n: int = Field(3, description="How many similar users, at most 5")


ToolFunction = Callable[..., user_tools.ToolResult]

TOOLS: dict[str, tuple[ToolFunction, type[_Args], str]] = {
    "get_profile": (
        user_tools.get_profile,
        GetProfileArgs,
        "The user's profile: interests with evidence items, dislikes, summary.",
    ),
    "get_history": (
        user_tools.get_history,
        GetHistoryArgs,
        "Items the user rated or used, newest first, with ratings.",
    ),
    "search_catalog": (
        user_tools.search_catalog,
        SearchCatalogArgs,
        "Find catalog items by title or topic.",
    ),
    "recommend": (
        user_tools.recommend,
        RecommendArgs,
        "Recommend unseen items with reasons, optionally filtered.",
    ),
    "explain_item": (
        user_tools.explain_item,
        ExplainItemArgs,
        "Why one item is or is not recommended to the user.",
    ),
    "similar_users": (
        user_tools.similar_users,
        SimilarUsersArgs,
        "Interests the user shares with similar users.",
    ),
}
"""name -> (function, argument schema, description shown to the model)."""


def bind(ctx: ToolContext, name: str) -> StructuredTool:
    function, args_schema, description = TOOLS[name]

    def run(**kwargs: Any) -> tuple[str, dict[str, Any]]:
        try:
            result = function(ctx, **kwargs)
        except ToolInputError as err:
            raise ToolException(f"error: {err}") from err
        return result.text, {"item_ids": result.item_ids}

    return StructuredTool.from_function(
        func=run,
        name=name,
        description=description,
        args_schema=args_schema,
        response_format="content_and_artifact",
        handle_tool_error=True,
    )


def build_tools(ctx: ToolContext, names: list[str] | None = None) -> list[StructuredTool]:
    """The session's tools, every one bound to `ctx.user_id`."""
    return [bind(ctx, name) for name in (names or list(TOOLS))]
