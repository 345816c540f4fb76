"""The chat eval's questions, filled per user from the user's own data, each with the tool
and arguments that answer it (no LLM: recommendations come from retrieval and the ranker).

Templates:
- why_recommended: "Why did you recommend X?", X the user's current top recommendation;
  expects `explain_item` for X.
- why_not: "Why didn't you recommend Y?", Y the item the user rated lowest (most recent
  first), else the most popular unseen item outside their top 10; expects `explain_item` for Y.
- dislikes: "What kinds of movies do I dislike?"; expects `get_profile`.
- like_item: "Recommend me something like Z.", Z the item the user rated highest (most
  recent first); expects `recommend` with `like` = Z.
- filtered: "Recommend me a <category> movie from the <decade>.", the category the user
  rated most among their liked items, the decade of the catalog with the most items of that
  category the user has not seen; expects `recommend` with that category and decade (or
  years within it)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, Field

from agent.profiles.sentiment import sides_of
from agent.reasons.evidence import ratings_of
from agent.recommend.filters import ItemFilter
from agent.recommend.service import Recommender
from agent.schemas import Interaction
from tools.catalog import Catalog, split_year
from tools.item_tools import decade_years
from tools.registry import decades

Template = Literal["why_recommended", "why_not", "dislikes", "like_item", "filtered"]
TEMPLATES: tuple[Template, ...] = (
    "why_recommended",
    "why_not",
    "dislikes",
    "like_item",
    "filtered",
)
IGNORED_CATEGORIES = frozenset({"unknown", ""})
POPULAR_SCAN = 50


class Case(BaseModel):
    user_id: str
    template: Template
    question: str
    tool: str
    """The tool that answers it."""
    expect: dict[str, Any] = Field(default_factory=dict)
    """`item` / `like`: the item id the title argument must resolve to; `category`,
    `decade`: the filter values."""


def spoken(catalog: Catalog, item_id: str) -> str:
    """The title as a person would write it: without the year, unless another film has it."""
    base, _ = split_year(catalog.items[item_id].title)
    try:
        found = catalog.resolve(base)
    except ValueError:
        return catalog.name(item_id)
    return base.strip() if catalog.same_title(found, item_id) else catalog.name(item_id)


def cases_for(rec: Recommender, catalog: Catalog, user_id: str) -> list[Case]:
    history = rec.record.history(user_id)
    found = [why_recommended(rec, catalog, user_id), why_not(rec, catalog, user_id, history)]
    found.append(Case(user_id=user_id, template="dislikes", tool="get_profile",
                      question="What kinds of movies do I dislike?"))  # fmt: skip
    found += [like_item(catalog, user_id, history), filtered(catalog, user_id, history)]
    return [c for c in found if c is not None]


def why_recommended(rec: Recommender, catalog: Catalog, user_id: str) -> Case | None:
    top = rec.recommend(user_id, 5, ItemFilter(), rerank_with_llm=False).items
    if not top:
        return None
    item = top[0].item_id
    return Case(user_id=user_id, template="why_recommended", tool="explain_item",
                question=f"Why did you recommend {spoken(catalog, item)}?",
                expect={"item": item})  # fmt: skip


def why_not(
    rec: Recommender, catalog: Catalog, user_id: str, history: list[Interaction]
) -> Case | None:
    sides = sides_of(history)
    ratings = ratings_of(history)
    disliked = [e.item_id for e in reversed(history) if sides.get(e.item_id) == "disliked"]
    disliked = [i for i in disliked if i in catalog.items]
    if disliked:
        item = min(dict.fromkeys(disliked), key=lambda i: ratings.get(i, 0.0))
    else:
        shown = {r.item_id for r in rec.recommend(user_id, 10, ItemFilter(), False).items}
        seen = {e.item_id for e in history}
        popular = [s.item_id for s in rec.popularity().ranked[:POPULAR_SCAN]]
        unseen = [i for i in popular if i not in seen | shown and i in catalog.items]
        if not unseen:
            return None
        item = unseen[0]
    return Case(user_id=user_id, template="why_not", tool="explain_item",
                question=f"Why didn't you recommend {spoken(catalog, item)}?",
                expect={"item": item})  # fmt: skip


def like_item(catalog: Catalog, user_id: str, history: list[Interaction]) -> Case | None:
    ratings = ratings_of(history)
    liked = [e.item_id for e in reversed(history) if sides_of(history).get(e.item_id) == "liked"]
    liked = [i for i in dict.fromkeys(liked) if i in catalog.items]
    if not liked:
        return None
    item = max(liked, key=lambda i: ratings.get(i, 0.0))
    return Case(user_id=user_id, template="like_item", tool="recommend",
                question=f"Recommend me something like {spoken(catalog, item)}.",
                expect={"like": item})  # fmt: skip


def filtered(catalog: Catalog, user_id: str, history: list[Interaction]) -> Case | None:
    sides = sides_of(history)
    liked = [catalog.items[i] for i, s in sides.items() if s == "liked" and i in catalog.items]
    counts = Counter(c for item in liked for c in item.categories if c not in IGNORED_CATEGORIES)
    if not counts:
        return None
    category = counts.most_common(1)[0][0]
    seen = {e.item_id for e in history}
    per_decade: Counter[str] = Counter()
    for decade in decades(catalog):
        low, high = decade_years(decade)
        per_decade[decade] = sum(
            1
            for i, item in catalog.items.items()
            if i not in seen and category in item.categories
            and low is not None and high is not None and low <= (catalog.year(i) or 0) <= high
        )  # fmt: skip
    decade, count = per_decade.most_common(1)[0]
    if count == 0:
        return None
    return Case(user_id=user_id, template="filtered", tool="recommend",
                question=f"Recommend me a {category.lower()} movie from the {decade}.",
                expect={"category": category, "decade": decade})  # fmt: skip
