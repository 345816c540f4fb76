"""The chat's tools: a registry of plain functions with their argument models and the text
the model reads, bound to one `ToolContext` for LangChain.

Argument models are made per catalog (`argument_models`), when a session starts: categories
are an enum of the catalog's categories, years lie within its range, decades are the ones it
has, and every filter is optional and null unless the user asked for it. What the model
writes is decoded against these schemas on the constrained path, so a call is valid by
construction; items are passed by title and resolved by the tool (`tools.catalog`).

None has a user id. A `ToolInputError` becomes a `ToolException`, which LangChain returns to
the model as an error `ToolMessage` (status "error", the short message only). Any other
exception is a bug or an outage: it propagates and ends the turn.

To add a tool: write `function(ctx, **args) -> ToolResult`, then `register(name, ToolSpec(
function, description, args))` where `args` is a model or a function of the `Catalog`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.tools import StructuredTool, ToolException
from pydantic import BaseModel, ConfigDict, Field, create_model

from agent.profiles.edits import MAX_TOPIC_CHARS
from tools import edit_tools, item_tools, user_tools
from tools.catalog import Catalog
from tools.context import ToolContext, ToolInputError

TEXT_ARG_CHARS = 120
"""Bound of free-text arguments: SmolLM2 once wrote a whole paragraph as an item title. Long
enough for real titles (ML-100K's "Dr. Strangelove or: How I Learned to Stop Worrying and Love
the Bomb" is 68 characters: 48 made the router's own call invalid)."""
ANY_YEARS = (1800, 2100)
"""Year bounds of a catalog without years."""


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GetProfileArgs(Args):
    version: int | None = Field(None, ge=1, description="An older profile version; null: latest")


class SearchCatalogArgs(Args):
    query: str = Field(max_length=TEXT_ARG_CHARS, description="A title or a few words")
    limit: int = Field(5, ge=1, le=item_tools.MAX_SEARCH, description="How many")


class ExplainItemArgs(Args):
    item: str = Field(max_length=TEXT_ARG_CHARS, description="The item's title")


class ProfileEditArgs(Args):
    action: edit_tools.EditAction = Field(
        description="add_dislike: less of it; add_interest: more of it; remove: drop it from the "
        "profile; never: a category never recommended; allow_again: lift a never"
    )
    topic: str = Field(max_length=MAX_TOPIC_CHARS, description="A category or a few words")


class SimilarUsersArgs(Args):
    n: int = Field(3, ge=1, le=user_tools.MAX_SIMILAR, description="How many similar users")


def choice(values: list[str]) -> Any:
    """An optional enum of `values` (only null when there are none)."""
    return Literal[tuple(values)] | None if values else None


def decades(catalog: Catalog) -> list[str]:
    first, last = catalog.year_range() or ANY_YEARS
    return [f"{d}s" for d in range(first // 10 * 10, last + 1, 10)]


def recommend_args(catalog: Catalog) -> type[Args]:
    category = choice(catalog.categories())
    low, high = catalog.year_range() or ANY_YEARS
    year = (int | None, Field(None, ge=low, le=high, description=f"{low}-{high}; null: any"))
    fields: dict[str, Any] = {
        "k": (int, Field(5, ge=1, le=item_tools.MAX_RECOMMEND, description="How many")),
        "category": (category, Field(None, description="Only this category; null: any")),
        "exclude_category": (category, Field(None, description="Never this; null: none")),
        "decade": (choice(decades(catalog)), Field(None, description="Released in; null: any")),
        "min_year": year,
        "max_year": year,
        "like": (
            str | None,
            Field(None, max_length=TEXT_ARG_CHARS, description="Items like this title; null"),
        ),
    }
    return create_model("RecommendArgs", __base__=Args, **fields)


def history_args(catalog: Catalog) -> type[Args]:
    rating = (float | None, Field(None, ge=0, le=10, description="null: any"))
    fields: dict[str, Any] = {
        "category": (choice(catalog.categories()), Field(None, description="null: any")),
        "min_rating": rating,
        "max_rating": rating,
        "offset": (int, Field(0, ge=0, description="Skip this many (paging)")),
        "limit": (int, Field(10, ge=1, le=user_tools.MAX_PAGE, description="How many")),
    }
    return create_model("GetHistoryArgs", __base__=Args, **fields)


ToolFunction = Callable[..., user_tools.ToolResult]
ArgsFor = type[BaseModel] | Callable[[Catalog], type[BaseModel]]


@dataclass(frozen=True)
class ToolSpec:
    function: ToolFunction
    description: str
    """What the model reads: what the tool answers, and when to use it."""
    args: ArgsFor
    """The argument model, or a function that makes it from the session's catalog."""

    def args_for(self, catalog: Catalog) -> type[BaseModel]:
        if isinstance(self.args, type):
            return self.args
        return self.args(catalog)


TOOLS: dict[str, ToolSpec] = {}


def register(name: str, spec: ToolSpec) -> None:
    TOOLS[name] = spec


register("get_profile", ToolSpec(
    user_tools.get_profile,
    "What the user likes and dislikes: the profile and the ratings behind it.",
    GetProfileArgs,
))  # fmt: skip
register("get_history", ToolSpec(
    user_tools.get_history,
    "Items the user rated, newest first, with ratings; filter by category or rating.",
    history_args,
))  # fmt: skip
register("search_catalog", ToolSpec(
    item_tools.search_catalog, "Find catalog items by title or topic.", SearchCatalogArgs
))  # fmt: skip
register("recommend", ToolSpec(
    item_tools.recommend,
    "Recommend unseen items. Set only the filters the user asked for (others null): "
    "category, decade, like (items like a title).",
    recommend_args,
))  # fmt: skip
register("explain_item", ToolSpec(
    item_tools.explain_item,
    "Why one item was or was not recommended to the user (pass its title): for 'why did "
    "you recommend X' and 'why not X'.",
    ExplainItemArgs,
))  # fmt: skip
register("similar_users", ToolSpec(
    user_tools.similar_users, "Interests the user shares with similar users.", SimilarUsersArgs
))  # fmt: skip
register("propose_profile_edit", ToolSpec(
    edit_tools.propose_profile_edit,
    "When the user asks to change their profile ('no more horror', 'I like westerns now', "
    "'never show me X', 'remove X from my profile'): propose the edit; it is saved only if "
    "they confirm.",
    ProfileEditArgs,
))  # fmt: skip


def argument_models(catalog: Catalog, names: list[str] | None = None) -> dict[str, type[BaseModel]]:
    """Each tool's argument model for this catalog."""
    return {name: TOOLS[name].args_for(catalog) for name in (names or list(TOOLS))}


def bind(ctx: ToolContext, name: str, args_schema: type[BaseModel]) -> StructuredTool:
    spec = TOOLS[name]

    def run(**kwargs: Any) -> tuple[str, dict[str, Any]]:
        try:
            result = TOOLS[name].function(ctx, **kwargs)
        except ToolInputError as err:
            raise ToolException(f"error: {err}") from err
        return result.text, {"item_ids": result.item_ids, "required": result.required,
                             "plain": result.plain}  # fmt: skip

    return StructuredTool.from_function(
        func=run,
        name=name,
        description=spec.description,
        args_schema=args_schema,
        response_format="content_and_artifact",
        handle_tool_error=True,
    )


def build_tools(ctx: ToolContext, names: list[str] | None = None) -> list[StructuredTool]:
    """The session's tools, every one bound to `ctx.user_id`, with schemas of its catalog."""
    models = argument_models(ctx.catalog, names)
    return [bind(ctx, name, model) for name, model in models.items()]
