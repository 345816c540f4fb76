"""The tools about the user: their profile (with the ratings behind it), their history, and
what they share with similar users. Plain typed functions of (context, arguments).

Each returns a `ToolResult`: compact text for the model that names items by title and year,
never by id (a small model copies what it is shown: ids in the text came back as "(history
items 95, 99)" in answers), plus the ids of the items it named, which the answer check holds
the answer's titles to. A request that cannot be served raises `ToolInputError` with a message
saying what to do instead. None of them calls the LLM."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from agent.profiles.claims import agrees, matching_ratings
from agent.profiles.grounding import LexicalJudge
from agent.profiles.sentiment import RatingScale, Side, sides_of
from agent.profiles.similar import shared_categories, shared_interests
from agent.reasons.evidence import ratings_of
from agent.recommend.context import history_line, untrusted
from agent.recommend.service import NoProfileError, UnknownUserError
from agent.schemas import Interaction, Item
from agent.schemas.profile import Interest, UserProfile
from agent.store.profiles import ProfileStore
from tools.context import ToolContext, ToolInputError

MAX_PAGE = 20
MAX_SIMILAR = 5
SIDE_ITEMS = 8
"""Liked and disliked items listed under the profile, each side."""
CLAIM_ITEMS = 3
"""Evidence titles shown per profile claim."""


@dataclass
class ToolResult:
    text: str
    item_ids: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    """Items of which the answer must name at least one to use this result (an explanation's
    drivers, a list's items): empty when any answer does."""
    plain: str = ""
    """The result said to the user in a sentence or two, true by construction: the answer
    when the model's stays unfaithful (empty: the full text serves)."""


def known(ctx: ToolContext) -> None:
    """Fail with an actionable message when the bound user has no profile yet."""
    try:
        ctx.recommender.profile_of(ctx.user_id)
    except (NoProfileError, UnknownUserError) as err:
        raise ToolInputError(str(err).strip("'\"")) from err


def shown(ctx: ToolContext, result: ToolResult) -> ToolResult:
    ctx.surface(result.item_ids)
    return result


def rated(ctx: ToolContext, item_id: str, ratings: dict[str, float]) -> str:
    """`Title (year) rated 5`, or the title alone for an unrated item."""
    rating = ratings.get(item_id)
    name = untrusted(ctx.catalog.name(item_id))
    return f"{name} rated {rating:g}" if rating is not None else name


# -- profile -------------------------------------------------------------------------------


def get_profile(ctx: ToolContext, version: int | None = None) -> ToolResult:
    """The profile's claims with the ratings behind them, and the user's liked and disliked
    items from the ratings themselves. A claim the whole history contradicts is left out
    (and counted): the ratings are the record, the profile an LLM's reading of it."""
    store = ProfileStore(ctx.recommender.record)
    versions = [v.version for v in store.versions(ctx.user_id)]
    if not versions:
        known(ctx)
    if version is not None and version not in versions:
        raise ToolInputError(f"no profile version {version}; versions are {versions}")
    profile = store.get(ctx.user_id, version)
    if profile is None:  # deleted between the two reads
        raise ToolInputError("the profile is gone; ask the user to run `personae profile`")
    return shown(ctx, profile_result(ctx, profile, versions))


def profile_result(ctx: ToolContext, profile: UserProfile, versions: list[int]) -> ToolResult:
    history = ctx.history()
    ratings = ratings_of(history)
    items = ctx.recommender.items(list(ratings))
    lines = [f"Profile version {profile.provenance.version} of {versions}"]
    lines.append(f"Summary: {untrusted(profile.summary, 320)}")
    ids: list[str] = []
    said: dict[bool, list[str]] = {True: [], False: []}
    left_out = 0
    for liked, label, claims in ((True, "Likes", profile.interests),
                                 (False, "Dislikes", profile.dislikes)):  # fmt: skip
        for claim in claims:
            if claim.source != "user" and contradicted(claim, liked, ratings, items):
                left_out += 1
                continue
            evidence = [e for e in claim.evidence if e in ctx.catalog.items][:CLAIM_ITEMS]
            ids += evidence
            named = "; ".join(rated(ctx, e, ratings) for e in evidence)
            own = claim.source == "user"
            lines.append(
                f"{label} {untrusted(claim.topic, 40)}: "
                f"{named or ('the user said so (profile edit)' if own else '-')}"
            )
            said[liked].append(f"{untrusted(claim.topic, 40)} ({named})" if named else
                               untrusted(claim.topic, 40))  # fmt: skip
    if left_out:
        lines.append(f"({left_out} profile claim(s) left out: the user's ratings contradict them)")
    side_lines, side_ids = side_items(ctx, history)
    lines += side_lines + category_lines(profile)
    plain = " ".join(f"You {verb}: {'; '.join(parts)}." for verb, parts in
                     (("like", said[True]), ("dislike", said[False])) if parts)  # fmt: skip
    return ToolResult("\n".join(lines), list(dict.fromkeys(ids + side_ids)), plain=plain)


def contradicted(
    claim: Interest, liked: bool, ratings: dict[str, float], items: dict[str, Item]
) -> bool:
    """The claims check (`agent.profiles.claims`) on the whole history: 3+ rated items match
    the topic and their mean is on the other side of the user's mean."""
    if not ratings:
        return False
    matches = matching_ratings(claim.topic, ratings, items, LexicalJudge())
    if len(matches) < 3:
        return False
    return not agrees(matches, statistics.fmean(ratings.values()), liked)


def side_items(ctx: ToolContext, history: list[Interaction]) -> tuple[list[str], list[str]]:
    """The user's liked items (best first) and disliked items (worst first), by the same sides
    the profile checks use (`agent.profiles.sentiment`)."""
    scale = RatingScale.of(history)
    sides = sides_of(history)
    ratings = ratings_of(history)
    recent = {e.item_id: n for n, e in enumerate(history)}
    lines, ids = [], []
    order: tuple[tuple[Side, int], ...] = (("liked", -1), ("disliked", 1))
    for side, sign in order:
        on_side = [i for i, s in sides.items() if s == side]
        picked = sorted(on_side, key=lambda i: (sign * ratings.get(i, 0.0), -recent[i]))
        picked = picked[:SIDE_ITEMS]
        total = sum(s == side for s in sides.values())
        named = "; ".join(rated(ctx, i, ratings) for i in picked) or "none"
        lines.append(f"Items {scale.describe(side)} ({side}, {total} in all): {named}")
        ids += picked
    return lines, ids


def category_lines(profile: UserProfile) -> list[str]:
    facts = profile.facts
    lines = []
    if facts.category_ratings:
        ordered = sorted(facts.category_ratings, key=lambda c: -c.mean)
        means = ", ".join(f"{c.name} {c.mean:.1f} ({c.count})" for c in ordered)
        lines.append(f"Mean rating per category, highest first: {means}")
    lines.append(f"Ratings: {facts.rated_count}, mean {facts.rating_mean or '-'}")
    return lines


# -- history -------------------------------------------------------------------------------


def get_history(
    ctx: ToolContext,
    category: str | None = None,
    min_rating: float | None = None,
    max_rating: float | None = None,
    offset: int = 0,
    limit: int = 10,
) -> ToolResult:
    """The user's history, most recent first, filtered by category and rating, paginated."""
    events = list(reversed(ctx.history()))
    if not events:
        known(ctx)
        return ToolResult("The user has no history yet.")
    items = ctx.recommender.items([e.item_id for e in events])
    if category:
        events = [e for e in events if category in _categories(items.get(e.item_id))]
    if min_rating is not None:
        events = [e for e in events if e.rating is not None and e.rating >= min_rating]
    if max_rating is not None:
        events = [e for e in events if e.rating is not None and e.rating <= max_rating]
    limit = max(1, min(limit, MAX_PAGE))
    page = events[max(0, offset) : max(0, offset) + limit]
    head = f"{len(events)} matching events; showing {offset + 1}-{offset + len(page)}"
    if not page:
        head = f"{len(events)} matching events; none at offset {offset}"
    lines = [head, *(_event_line(e, items) for e in page)]
    return shown(ctx, ToolResult("\n".join(lines), [e.item_id for e in page]))


def _event_line(event: Interaction, items: dict[str, Item]) -> str:
    line = history_line(event, items.get(event.item_id), with_id=False)
    return f"{line} | {event.timestamp.date()}"


def _categories(item: Item | None) -> set[str]:
    return set(item.categories) if item else set()


# -- similar users -------------------------------------------------------------------------


def similar_users(ctx: ToolContext, n: int = 3) -> ToolResult:
    """What the user shares with the most similar users: interests and categories only.
    Other users are not named and none of their items or ratings are shown."""
    if ctx.profile_index is None:
        raise ToolInputError("similar users are not available in this session")
    store = ProfileStore(ctx.recommender.record)
    profile = store.get(ctx.user_id)
    if profile is None:
        known(ctx)
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
