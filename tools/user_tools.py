"""The functions the chat agent may call: plain typed functions of (context, arguments).

Each returns a `ToolResult`: compact text for the model (item lines `[id] Title (year) | ...`,
scrubbed like every other prompt text) plus the item ids it showed. A request that cannot be
served raises `ToolInputError` with a message saying what to do instead. None of them calls
the LLM: a chat turn on a CPU server cannot afford a re-rank inside a tool."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.profiles.similar import shared_categories, shared_interests
from agent.recommend.context import history_line, item_line, profile_text, untrusted
from agent.recommend.explain import Explainer
from agent.recommend.filters import FilterError, ItemFilter
from agent.recommend.service import NoProfileError, UnknownItemError, UnknownUserError
from agent.schemas import Interaction, Item
from agent.schemas.profile import UserProfile
from agent.store.profiles import ProfileStore
from tools.context import ToolContext, ToolInputError

MAX_PAGE = 20
MAX_SEARCH = 10
MAX_RECOMMEND = 10
MAX_SIMILAR = 5
MIN_TITLE_CHARS = 3
"""A shorter title fragment (a model's placeholder such as 'X') matches too much."""


@dataclass
class ToolResult:
    text: str
    item_ids: list[str] = field(default_factory=list)


def _known(ctx: ToolContext) -> None:
    """Fail with an actionable message when the bound user has no profile yet."""
    try:
        ctx.recommender.profile_of(ctx.user_id)
    except (NoProfileError, UnknownUserError) as err:
        raise ToolInputError(str(err).strip("'\"")) from err


def _shown(ctx: ToolContext, result: ToolResult) -> ToolResult:
    ctx.surface(result.item_ids)
    return result


# -- profile -------------------------------------------------------------------------------


def get_profile(ctx: ToolContext, version: int | None = None) -> ToolResult:
    """The user's profile (latest, or an older version), with the evidence item ids."""
    store = ProfileStore(ctx.recommender.record)
    versions = [v.version for v in store.versions(ctx.user_id)]
    if not versions:
        _known(ctx)
    if version is not None and version not in versions:
        raise ToolInputError(f"no profile version {version}; versions are {versions}")
    profile = store.get(ctx.user_id, version)
    if profile is None:  # deleted between the two reads
        raise ToolInputError("the profile is gone; ask the user to run `personae profile`")
    return _shown(ctx, _profile_result(profile, versions))


def _profile_result(profile: UserProfile, versions: list[int]) -> ToolResult:
    evidence: list[str] = []
    lines = [f"Profile version {profile.provenance.version} of {versions}"]
    lines.append(profile_text(profile))
    for interest in profile.interests:
        ids = [untrusted(e, 40) for e in interest.evidence]
        evidence += interest.evidence
        lines.append(f"- likes {untrusted(interest.topic, 40)}: items {', '.join(ids)}")
    for dislike in profile.dislikes:
        evidence += dislike.evidence
        lines.append(
            f"- dislikes {untrusted(dislike.topic, 40)}: items {', '.join(dislike.evidence)}"
        )
    facts = profile.facts
    if facts.top_categories:
        shares = ", ".join(f"{c.category} {c.share:.0%}" for c in facts.top_categories[:4])
        lines.append(f"Top categories: {shares}")
    lines.append(f"Events: {facts.event_count}, mean rating: {facts.rating_mean or '-'}")
    return ToolResult("\n".join(lines), list(dict.fromkeys(evidence)))


# -- history -------------------------------------------------------------------------------


def get_history(
    ctx: ToolContext,
    category: str | None = None,
    min_rating: float | None = None,
    offset: int = 0,
    limit: int = 10,
) -> ToolResult:
    """The user's history, most recent first, filtered by category and rating, paginated."""
    rec = ctx.recommender
    events = list(reversed(rec.record.history(ctx.user_id)))
    if not events:
        _known(ctx)
        return ToolResult("The user has no history yet.")
    items = rec.items([e.item_id for e in events])
    if category:
        wanted = _category(ctx, category)
        events = [e for e in events if wanted in _categories(items.get(e.item_id))]
    if min_rating is not None:
        events = [e for e in events if e.rating is not None and e.rating >= min_rating]
    limit = max(1, min(limit, MAX_PAGE))
    page = events[max(0, offset) : max(0, offset) + limit]
    head = f"{len(events)} matching events; showing {offset + 1}-{offset + len(page)}"
    if not page:
        head = f"{len(events)} matching events; none at offset {offset}"
    lines = [head, *(_event_line(e, items) for e in page)]
    return _shown(ctx, ToolResult("\n".join(lines), [e.item_id for e in page]))


def _event_line(event: Interaction, items: dict[str, Item]) -> str:
    return f"{history_line(event, items.get(event.item_id))} | {event.timestamp.date()}"


def _categories(item: Item | None) -> set[str]:
    return {c.casefold() for c in item.categories} if item else set()


def _category(ctx: ToolContext, name: str) -> str:
    """The category in the catalog's own spelling, case-folded; an unknown one is an error
    that lists some that exist."""
    known = sorted({c for m in ctx.recommender.item_meta.values() for c in m.categories})
    folded = {c.casefold(): c for c in known}
    if name.strip().casefold() not in folded:
        raise ToolInputError(f"unknown category {name!r}; known: {', '.join(known[:20])}")
    return name.strip().casefold()


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
    seen = {e.item_id for e in rec.record.history(ctx.user_id)}
    lines = [
        item_line(items[i]) + (" | the user has it" if i in seen else "") for i in ids if i in items
    ]
    if not lines:
        return ToolResult(f"nothing in the catalog matches {query!r}")
    return _shown(ctx, ToolResult("\n".join(lines), [i for i in ids if i in items]))


def resolve_item(ctx: ToolContext, item: str) -> str:
    """An item id from an id or a title the model wrote."""
    text = item.strip().strip("[]").strip()
    if not text:
        raise ToolInputError("item is empty; pass an item id or title")
    record = ctx.recommender.record
    if record.get_item(text) is not None:
        return text
    found = record.item_ids_by_title(text, 1) if len(text) >= MIN_TITLE_CHARS else []
    if not found:
        raise ToolInputError(f"no item with id or title {item!r}; call search_catalog first")
    return found[0]


# -- recommend and explain -----------------------------------------------------------------


def recommend(
    ctx: ToolContext,
    k: int = 5,
    category: str | None = None,
    exclude_category: str | None = None,
    min_year: int | None = None,
    max_year: int | None = None,
) -> ToolResult:
    """Unseen items for the user, with the retrieval reasons (no LLM re-rank)."""
    rec = ctx.recommender
    specs = [f"category={category}"] if category else []
    specs += [f"category!={exclude_category}"] if exclude_category else []
    specs += [f"year>={min_year}"] if min_year is not None else []
    specs += [f"year<={max_year}"] if max_year is not None else []
    try:
        filters = rec.parse_filters(specs)
        result = rec.recommend(
            ctx.user_id, max(1, min(k, MAX_RECOMMEND)), filters, rerank_with_llm=False
        )
    except (FilterError, NoProfileError, UnknownUserError) as err:
        raise ToolInputError(str(err).strip("'\"")) from err
    if not result.items:
        return ToolResult("no unseen items pass these filters; try fewer filters")
    lines, ids = [], []
    for r in result.items:
        cited = f" (because of {', '.join(r.cited)})" if r.cited else ""
        item = Item(item_id=r.item_id, title=r.title, year=r.year, categories=r.categories)
        lines.append(f"{r.rank}. {item_line(item)} | {untrusted(r.reason, 200)}{cited}")
        ids += [r.item_id, *r.cited]
    return _shown(ctx, ToolResult("\n".join(lines), ids))


def explain_item(ctx: ToolContext, item: str) -> ToolResult:
    """Why one item is or is not recommended to the user: computed facts, no LLM. The drivers
    are `agent.reasons.evidence`'s, the ones `recommend`'s reasons cite."""
    rec = ctx.recommender
    item_id = resolve_item(ctx, item)
    try:
        explained = Explainer(rec).explain(ctx.user_id, item_id, k=10, filters=ItemFilter())
    except (NoProfileError, UnknownUserError, UnknownItemError) as err:
        raise ToolInputError(str(err).strip("'\"")) from err
    cited = f" (history items {', '.join(explained.cited)})" if explained.cited else ""
    lines = [
        item_line(rec.item(item_id)),
        f"Verdict: {explained.verdict}",
        f"Reason: {untrusted(explained.reason, 240)}{cited}",
        *(f"- {fact}" for fact in explained.facts),
    ]
    drivers = explained.evidence.top_ids() if explained.evidence is not None else []
    return _shown(ctx, ToolResult("\n".join(lines), [item_id, *explained.cited, *drivers]))


# -- similar users -------------------------------------------------------------------------


def similar_users(ctx: ToolContext, n: int = 3) -> ToolResult:
    """What the user shares with the most similar users: interests and categories only.
    Other users are not named and none of their items or ratings are shown."""
    if ctx.profile_index is None:
        raise ToolInputError("similar users are not available in this session")
    store = ProfileStore(ctx.recommender.record)
    profile = store.get(ctx.user_id)
    if profile is None:
        _known(ctx)
        raise ToolInputError("the user has no profile yet")
    index = ctx.profile_index
    if index.embedding(ctx.user_id) is None:
        index.upsert([profile])  # profiled, never indexed (same repair as `personae similar`)
    n = max(1, min(n, MAX_SIMILAR))
    lines: list[str] = []
    for hit in index.similar(ctx.user_id, n * 2 + 10):
        other = store.get(hit.user_id)
        if other is None:  # an orphan vector: its user was forgotten
            continue
        lines.append(_shared_line(len(lines) + 1, 1.0 - hit.distance, profile, other))
        if len(lines) == n:
            break
    return ToolResult("\n".join(lines) or "no other profiled users to compare with")


def _shared_line(rank: int, similarity: float, mine: UserProfile, other: UserProfile) -> str:
    topics = dict.fromkeys(untrusted(topic, 40) for topic in shared_interests(mine, other))
    return (
        f"similar user {rank} (similarity {similarity:.2f}): shared interests "
        f"{', '.join(topics) or '-'}; shared categories "
        f"{', '.join(shared_categories(mine, other)) or '-'}"
    )
