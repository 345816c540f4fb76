"""History shown as groups of liked and of disliked items, computed from the ratings (profile
v5+). The model names each group; the group's items are the evidence of that name.

Why: shown the events furthest from their mean, a user who rates 3.6 on average was shown
mostly 1-star films (18 of 26 lines for ML-100K user 1) and asked for their tastes; allowed
to cite any line, the default 1.5B model cited lines 1-4 under its first interest, 5-8 under
the second, whatever they were. Here evidence cannot be misplaced: liked items sit in groups
A-E, disliked ones in X-Z (`schemas.profile.GroupedDraft`), and a group is built around a
category the user rates on that side of their own mean where one exists.

Lines: the budget is shared between the sides in proportion to the user's own split with a
floor for each (`quotas`), then between a side's groups one line at a time; within a group
the strongest ratings come first, ties to the newest. Lines carry no categories: the group's
header names its category, and shown a category list per line the default model wrote the
lists back as topics ("Drama, Thriller, Action, Adventure" for four groups of user 1)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent.profiles.context import estimate_tokens, event_line
from agent.profiles.sentiment import RatingScale, Side
from agent.schemas import Interaction, Item
from agent.schemas.profile import DISLIKED_GROUPS, LIKED_GROUPS, CategoryRating

FLOOR_SHARE = 0.25
"""Each side gets at least this share of the lines shown (when it has that many items)."""
MIN_GROUP = 2
MAX_GROUP_LINES = 6


@dataclass
class Group:
    label: str
    category: str
    rating: CategoryRating | None
    """How the user rates the category over their whole history (3+ ratings), if known."""
    members: list[int]
    """Event indexes, strongest first."""
    shown: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class GroupedContext:
    liked: list[Group]
    disliked: list[Group]
    liked_total: int
    disliked_total: int
    history: Sequence[Interaction]
    items: Mapping[str, Item]

    def groups(self) -> dict[str, list[str]]:
        """Group label -> item ids shown, strongest first: the evidence a name stands for."""
        return {g.label: [self.history[i].item_id for i in g.shown]
                for g in (*self.liked, *self.disliked) if g.shown}  # fmt: skip

    def categories(self) -> dict[str, str]:
        """Group label -> the category it is built around."""
        return {g.label: g.category for g in (*self.liked, *self.disliked) if g.shown}

    def block(self, side: Side) -> list[str]:
        """The lines of one side's groups: a header per group, then its items."""
        lines = []
        for group in self.liked if side == "liked" else self.disliked:
            if not group.shown:
                continue
            r = group.rating
            rated = f" (rated {r.mean:.1f} on average over {r.count})" if r else ""
            lines.append(f"{group.label}. {group.category}{rated}:")
            lines += [self.line(i) for i in group.shown]
        return lines

    def line(self, index: int) -> str:
        event = self.history[index]
        return event_line(event, self.items.get(event.item_id), label="", categories=False)

    @property
    def shown(self) -> int:
        return sum(len(g.shown) for g in (*self.liked, *self.disliked))


def known_categories(item: Item | None) -> list[str]:
    """Categories that say something ("unknown", MovieLens's missing genre, does not)."""
    return [c for c in item.categories if c.lower() != "unknown"] if item is not None else []


def side_indexes(history: Sequence[Interaction], scale: RatingScale) -> dict[Side, list[int]]:
    """Event indexes per side, one per item (its last event)."""
    last = {e.item_id: i for i, e in enumerate(history)}
    found: dict[Side, list[int]] = {"liked": [], "disliked": []}
    for index in last.values():
        side = scale.side(history[index])
        if side is not None:
            found[side].append(index)
    return found


def strongest_first(indexes: list[int], history: Sequence[Interaction], liked: bool) -> list[int]:
    sign = -1.0 if liked else 1.0
    return sorted(indexes, key=lambda i: (sign * (history[i].rating or 0.0), -i))


def build_groups(
    indexes: list[int],
    history: Sequence[Interaction],
    items: Mapping[str, Item],
    ratings: Mapping[str, CategoryRating],
    scale: RatingScale,
    side: Side,
) -> list[Group]:
    """Greedy: the category that best marks this side (how far the user's mean rating of it
    is on this side of their own mean, times the square root of its items here) takes every
    item of this side not yet in a group; repeat while labels and categories last, and
    (after the first group) while the category leans this way. Groups of one item come only
    when no category has `MIN_GROUP` items left (short histories)."""
    labels = LIKED_GROUPS if side == "liked" else DISLIKED_GROUPS
    liked = side == "liked"

    def categories(i: int) -> list[str]:
        return known_categories(items.get(history[i].item_id))

    left = set(indexes)
    groups: list[Group] = []
    while left and len(groups) < len(labels):
        counts = Counter(c for i in left for c in categories(i))
        found = [c for c, n in counts.items() if n >= MIN_GROUP] or list(counts)
        if not found:
            break
        best = max(found, key=lambda c: (mark(ratings.get(c), scale, liked, counts[c]), c))
        if groups and scale.mean is not None and mark(ratings.get(best), scale, liked, 1) <= 0:
            break  # the rest would be a category the user rates on the other side
        members = [i for i in left if best in categories(i)]
        left -= set(members)
        groups.append(Group(labels[len(groups)], best, ratings.get(best),
                            strongest_first(members, history, liked)))  # fmt: skip
    return groups


def mark(rating: CategoryRating | None, scale: RatingScale, liked: bool, count: int) -> float:
    """How well a category marks a side: its mean's distance from the user's mean, signed
    toward the side, times the square root of its items on that side."""
    mean = scale.mean
    lean = 0.01 if rating is None or mean is None else (rating.mean - mean) * (1 if liked else -1)
    return lean * math.sqrt(count)


def quotas(liked: int, disliked: int, lines: int) -> tuple[int, int]:
    """Lines for each side out of `lines`: in proportion to the user's split, at least
    `FLOOR_SHARE` each (when a side has that many)."""
    total = min(lines, liked + disliked)
    if total == 0:
        return 0, 0
    floor = int(total * FLOOR_SHARE)
    want = round(total * disliked / (liked + disliked))
    bad = max(min(disliked, floor), min(want, disliked, total - min(liked, floor)))
    good = min(liked, total - bad)
    return good, min(disliked, total - good)


def fill(groups: list[Group], quota: int) -> None:
    """Shown lines, one per group in turn (group A first), up to `quota`."""
    left = quota
    depth = 0
    while left > 0 and any(len(g.members) > depth for g in groups) and depth < MAX_GROUP_LINES:
        for group in groups:
            if left and len(group.members) > depth:
                group.shown.append(group.members[depth])
                left -= 1
        depth += 1


def grouped_context(
    history: Sequence[Interaction],
    items: Mapping[str, Item],
    category_ratings: Sequence[CategoryRating],
    budget_tokens: int,
    scale: RatingScale,
) -> GroupedContext:
    """`history`: the events lines may be drawn from; `scale` and `category_ratings`: of the
    whole history, which the claims are held to."""
    ratings = {r.name: r for r in category_ratings}
    by_side = side_indexes(history, scale)
    liked = build_groups(by_side["liked"], history, items, ratings, scale, "liked")
    disliked = build_groups(by_side["disliked"], history, items, ratings, scale, "disliked")
    grouped = {"liked": sum(len(g.members) for g in liked),
               "disliked": sum(len(g.members) for g in disliked)}  # fmt: skip
    context = GroupedContext(liked, disliked, len(by_side["liked"]), len(by_side["disliked"]),
                             history, items)  # fmt: skip
    every = [i for g in (*liked, *disliked) for i in g.members]
    cost = {i: estimate_tokens(context.line(i)) for i in every}
    average = sum(cost.values()) / len(cost) if cost else 1.0
    good, bad = quotas(grouped["liked"], grouped["disliked"], int(budget_tokens / average))
    fill(liked, good)
    fill(disliked, bad)
    while sum(cost[i] for g in (*liked, *disliked) for i in g.shown) > budget_tokens:
        fullest = max((*liked, *disliked), key=lambda g: len(g.shown))
        fullest.shown.pop()
    return context
