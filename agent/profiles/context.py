"""The part of a profile prompt that depends on the user: computed facts and the history
lines, trimmed to a token budget. Grouped prompts (v5+) show liked and disliked items in
groups (`profiles.groups`); older ones, the most recent and most telling events first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from agent.profiles.scrub import excerpt, scrub
from agent.profiles.sentiment import overall_label
from agent.schemas import Interaction, Item
from agent.schemas.profile import MAX_LINES, ComputedFacts

CHARS_PER_TOKEN = 2.2
"""Conservative: history lines are dense with ids, years and separators (measured with the
SmolLM2 tokenizer: ~2.25 characters per token on MovieLens lines; English prose is ~4)."""
ALWAYS_RECENT = 8
REVIEW_CHARS = 240


@dataclass(frozen=True)
class HistoryContext:
    lines: list[str]
    shown_ids: list[str]
    shown: int
    total: int


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def event_line(
    event: Interaction, item: Item | None, label: str | None = None, categories: bool = True
) -> str:
    """One history line; `label` (default: the item id) goes in the square brackets, and an
    empty label leaves them out."""
    title = scrub(item.title) if item else f"item {event.item_id}"
    year = f" ({item.year})" if item and item.year and f"({item.year})" not in title else ""
    tag = event.item_id if label is None else label
    parts = [f"- [{tag}] {title}{year}" if tag else f"- {title}{year}"]
    if categories and item and item.categories:
        parts.append(", ".join(scrub(c) for c in item.categories[:4]))
    if event.rating is not None:
        parts.append(f"rated {event.rating:g}")
    elif event.event_type == "feedback" and event.attributes.get("label"):
        parts.append(f"feedback {scrub(str(event.attributes['label']))}")  # personae feedback
    elif event.event_type != "rating":
        parts.append(str(event.event_type))
    line = " | ".join(parts)  # no date per line: the order says it, and small models copy dates
    review = " ".join(t for t in (event.review_title, event.review_text) if t)
    if review:
        allow = [item.title] if item else []  # a review naming its own film keeps the title
        line += f"\n  <review>{excerpt(review, REVIEW_CHARS, allow=allow)}</review>"
    return line


def telling(event: Interaction, mean: float | None) -> float:
    """How much an event says about taste: distance from the user's mean rating, plus reviews."""
    score = abs(event.rating - mean) if event.rating is not None and mean is not None else 0.0
    return score + (1.5 if event.review_text else 0.0)


def select_events(
    history: Sequence[Interaction],
    mean: float | None,
    budget_tokens: int,
    lines: dict[int, str],
    max_lines: int | None = None,
) -> list[int]:
    """Indexes of events to show: the most recent few, then the most telling, then the rest
    newest first, while the budget (and `max_lines`) lasts. Returned in time order."""
    newest_first = list(range(len(history) - 1, -1, -1))
    recent = newest_first[:ALWAYS_RECENT]
    rest = sorted(newest_first[ALWAYS_RECENT:], key=lambda i: (-telling(history[i], mean), -i))
    chosen: list[int] = []
    used = 0
    for index in recent + rest:
        if max_lines is not None and len(chosen) >= max_lines:
            break
        cost = estimate_tokens(lines[index])
        if used + cost > budget_tokens:
            if index in recent:
                continue
            break
        chosen.append(index)
        used += cost
    return sorted(chosen)


def history_context(
    history: Sequence[Interaction],
    items: Mapping[str, Item],
    facts: ComputedFacts,
    budget: int,
    numbered: bool = False,
) -> HistoryContext:
    """The lines to show. `numbered`: each line is labelled by its number (1, 2, ...) instead
    of its item id, at most `MAX_LINES` of them (the range of a line-citing schema)."""
    lines = {i: event_line(e, items.get(e.item_id)) for i, e in enumerate(history)}
    chosen = select_events(history, facts.rating_mean, budget, lines,
                           MAX_LINES if numbered else None)  # fmt: skip
    if numbered:
        lines = {i: event_line(history[i], items.get(history[i].item_id), str(n))
                 for n, i in enumerate(chosen, 1)}  # fmt: skip
    return HistoryContext(
        lines=[lines[i] for i in chosen],
        shown_ids=[history[i].item_id for i in chosen],
        shown=len(chosen),
        total=len(history),
    )


def facts_text(facts: ComputedFacts, categories: bool = True) -> str:
    """The facts line of a prompt. Without `categories` it leaves out the category shares,
    which models copy as interests with the shares as weights (seen with Qwen2.5 1.5B)."""
    parts = [f"events: {facts.event_count}"]
    if facts.rating_mean is not None:
        parts.append(f"ratings: {facts.rated_count}, mean {facts.rating_mean:.2f}")
    if facts.review_count:
        parts.append(f"reviews: {facts.review_count}")
    if categories and facts.top_categories:
        shares = ", ".join(f"{c.category} {c.share:.0%}" for c in facts.top_categories)
        parts.append(f"top categories: {shares}")
    if facts.first_event and facts.last_event:
        parts.append(f"active {facts.first_event.date()} to {facts.last_event.date()}")
    return "; ".join(parts)


TASTE_CATEGORIES = 5
TASTE_ERAS = 3


def taste_text(facts: ComputedFacts, categories: bool = True) -> str:
    """How the user rates categories and decades against their own mean: the computed facts a
    small model copies, so they must be the ones that matter. Without `categories`, decades
    only (a grouped prompt names each group's category and its mean in the group's header;
    given the list here as well, the default model wrote it back as every topic)."""
    mean = facts.rating_mean
    if mean is None:
        return "no ratings: taste is shown only by what they chose"
    overall = f" ({overall_label(mean)} overall)" if facts.five_point else ""
    parts = []
    shown = [("categories", facts.category_ratings, TASTE_CATEGORIES)] if categories else []
    for label, rows, limit in [*shown, ("decades", facts.era_ratings, TASTE_ERAS)]:
        above = sorted((r for r in rows if r.mean > mean), key=lambda r: -r.mean)[:limit]
        below = sorted((r for r in rows if r.mean < mean), key=lambda r: r.mean)[:limit]
        said = [
            f"{side} {', '.join(f'{scrub(r.name)} {r.mean:.1f} over {r.count}' for r in found)}"
            for side, found in (("above:", above), ("below:", below))
            if found
        ]
        if said:
            parts.append(f"{label} " + "; ".join(said))
    where = " | ".join(parts) or "no category or decade with 3 ratings"
    return f"mean rating {mean:.2f}{overall}; against it, {where}"
