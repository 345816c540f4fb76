"""The tools about items: find one, recommend some (optionally filtered, or like an item the
user names), explain one. Items are named by title (the catalog resolves what the model
wrote, `tools.catalog`) and shown by title and year, never by id; what drove an item is shown
as the user's own items with the user's own ratings, so a "because you liked X" the model
writes can be checked against them (a retrieval reason's "people who liked X" is true of
other people, and EASE drivers include items the user rated 1)."""

from __future__ import annotations

from agent.reasons.evidence import ratings_of
from agent.recommend.context import item_line, untrusted
from agent.recommend.explain import Explainer, Explanation, driver_facts
from agent.recommend.filters import FilterError, ItemFilter
from agent.recommend.service import NoProfileError, UnknownItemError, UnknownUserError
from agent.schemas import Item
from tools.context import ToolContext, ToolInputError
from tools.user_tools import ToolResult, rated, shown

MAX_SEARCH = 10
MAX_RECOMMEND = 10
EXPLAIN_K = 10
"""`explain` calls an item recommended when retrieval ranks it in this top."""
DRIVERS_SHOWN = 3


def line(item: Item) -> str:
    return item_line(item, with_id=False)


# -- catalog -------------------------------------------------------------------------------


def search_catalog(ctx: ToolContext, query: str, limit: int = 5) -> ToolResult:
    """Items whose title contains the query, then the nearest items by meaning."""
    if not query.strip():
        raise ToolInputError("query is empty; pass a title or a few words")
    rec = ctx.recommender
    limit = max(1, min(limit, MAX_SEARCH))
    ids = rec.record.item_ids_by_title(query, limit)
    if len(ids) < limit:
        hits = rec.index.query(query, n=limit)
        ids += [h.item_id for h in hits if h.item_id not in ids][: limit - len(ids)]
    items = rec.items(ids)
    seen = set(ctx.history_ids())
    found = [i for i in ids if i in items]
    if not found:
        return ToolResult(f"nothing in the catalog matches {query!r}")
    lines = [line(items[i]) + (" | the user has it" if i in seen else "") for i in found]
    return shown(ctx, ToolResult("\n".join(lines), found))


# -- recommend -----------------------------------------------------------------------------


def decade_years(decade: str | None) -> tuple[int | None, int | None]:
    """`1990s` -> (1990, 1999)."""
    if not decade:
        return None, None
    start = int(decade.rstrip("s"))
    return start, start + 9


def recommend(
    ctx: ToolContext,
    k: int = 5,
    category: str | None = None,
    exclude_category: str | None = None,
    decade: str | None = None,
    min_year: int | None = None,
    max_year: int | None = None,
    like: str | None = None,
) -> ToolResult:
    """Unseen items for the user (no LLM re-rank), or with `like` the unseen items that
    people who have that item have too; each with the user's items behind it."""
    first, last = decade_years(decade)
    lows = [v for v in (first, min_year) if v is not None]
    highs = [v for v in (last, max_year) if v is not None]
    low, high = (max(lows) if lows else None), (min(highs) if highs else None)
    if low is not None and high is not None and low > high:
        raise ToolInputError(f"no year is both >= {low} and <= {high}; drop a year filter")
    specs = [f"category={category}"] if category else []
    specs += [f"category!={exclude_category}"] if exclude_category else []
    specs += [f"year>={low}"] if low is not None else []
    specs += [f"year<={high}"] if high is not None else []
    k = max(1, min(k, MAX_RECOMMEND))
    try:
        filters = ctx.recommender.parse_filters(specs)
        if like:
            return shown(ctx, _like(ctx, like, k, filters))
        return shown(ctx, _recommended(ctx, k, filters))
    except (FilterError, NoProfileError, UnknownUserError) as err:
        raise ToolInputError(str(err).strip("'\"")) from err


def _recommended(ctx: ToolContext, k: int, filters: ItemFilter) -> ToolResult:
    result = ctx.recommender.recommend(ctx.user_id, k, filters, rerank_with_llm=False)
    if not result.items:
        return ToolResult("no unseen items pass these filters; try fewer filters")
    ratings = ratings_of(ctx.history())
    lines, ids = [], []
    for r in result.items:
        item = Item(item_id=r.item_id, title=r.title, year=r.year, categories=r.categories)
        cited = [c for c in r.cited if c in ctx.catalog.items][:DRIVERS_SHOWN]
        why = "; ".join(rated(ctx, c, ratings) for c in cited)
        because = f"the user's items behind it: {why}" if why else untrusted(r.reason, 160)
        lines.append(f"{r.rank}. {line(item)} | {because}")
        ids += [r.item_id, *cited]
    listed = [r.item_id for r in result.items]
    return ToolResult("\n".join(lines), list(dict.fromkeys(ids)), required=listed)


def _like(ctx: ToolContext, like: str, k: int, filters: ItemFilter) -> ToolResult:
    rec = ctx.recommender
    seed = ctx.catalog.resolve(like, prefer=list(ctx.surfaced))
    name = untrusted(ctx.catalog.name(seed))
    ease = rec.collaborative()
    if seed not in ease:
        raise ToolInputError(f"{name} has too few ratings to find items like it")
    hits = ease.recommend([seed], k, set(ctx.history_ids()) | {seed}, rec.allow(filters))
    if not hits:
        return ToolResult(f"no unseen items like {name} pass these filters")
    items = rec.items([h.item_id for h in hits])
    lines = [f"Unseen items that people who have {name} often have too:"]
    lines += [f"{n}. {line(items[h.item_id])}" for n, h in enumerate(hits, 1) if h.item_id in items]
    return ToolResult("\n".join(lines), [seed, *items])


# -- explain -------------------------------------------------------------------------------


def explain_item(ctx: ToolContext, item: str) -> ToolResult:
    """Why one item is or is not recommended to the user: computed facts, no LLM. The drivers
    are `agent.reasons.evidence`'s, the ones `recommend`'s reasons cite."""
    rec = ctx.recommender
    item_id = ctx.catalog.resolve(item, prefer=list(ctx.surfaced))
    try:
        explained = Explainer(rec).explain(ctx.user_id, item_id, k=EXPLAIN_K, filters=ItemFilter())
    except (NoProfileError, UnknownUserError, UnknownItemError) as err:
        raise ToolInputError(str(err).strip("'\"")) from err
    lines, driver_ids, raised = _explain_lines(ctx, explained)
    text = "\n".join([line(rec.item(item_id)), *lines])
    plain = f"{untrusted(ctx.catalog.name(item_id))}: {explained.verdict}." + (
        f" Your items that raised its score most: {raised}." if raised else ""
    )
    # why X: the answer must name what raised X (its drivers); why not X: X or its drivers
    required = driver_ids if explained.recommended and driver_ids else [item_id, *driver_ids]
    return shown(ctx, ToolResult(text, [item_id, *driver_ids], required=required, plain=plain))


def _explain_lines(ctx: ToolContext, explained: Explanation) -> tuple[list[str], list[str], str]:
    """The result's lines, the drivers' ids, and the drivers named with the user's ratings."""
    ratings = ratings_of(ctx.history())
    lines = [f"Verdict: {explained.verdict}"]
    drivers = explained.evidence.drivers[:DRIVERS_SHOWN] if explained.evidence else []
    driver_ids = [d.item_id for d in drivers if d.item_id in ctx.catalog.items]
    named = "; ".join(rated(ctx, d, ratings) for d in driver_ids)
    if driver_ids:
        lines.append(f"The user's items that raised its score most: {named}")
    if explained.evidence is not None and explained.evidence.interests:
        topics = "; ".join(untrusted(t, 40) for t in explained.evidence.interests[:2])
        lines.append(f"It matches the profile interests: {topics}")
    skip = set(driver_facts(explained.evidence))
    lines += [f"- {fact}" for fact in explained.facts if fact not in skip]
    return lines, driver_ids, named
