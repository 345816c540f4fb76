"""Prompt text for re-rank and explain prompts. Titles, categories and profile text are
untrusted (they come from ingested files, or from an LLM that read them): they are scrubbed of
personal data and of the characters that frame ids and delimiters (`[]`, `<>`), so a title
cannot pose as a candidate id or close a data block."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from agent.profiles.scrub import scrub
from agent.recommend.signals import feedback_label
from agent.schemas import EventType, Interaction, Item
from agent.schemas.profile import UserProfile

_FRAMING = str.maketrans({"[": "(", "]": ")", "<": "(", ">": ")"})
_SPACE = re.compile(r"\s+")
TITLE_CHARS = 120


def untrusted(text: str, max_chars: int = TITLE_CHARS) -> str:
    clean = _SPACE.sub(" ", scrub(text).translate(_FRAMING)).strip()
    return clean if len(clean) <= max_chars else clean[:max_chars].rstrip() + "..."


def item_line(item: Item, with_id: bool = True) -> str:
    """`[id] Title (year) | Cat, Cat` (without the `[id] ` for prompts that label items)."""
    title = untrusted(item.title)
    year = f" ({item.year})" if item.year and f"({item.year})" not in title else ""
    line = f"[{item.item_id}] {title}{year}" if with_id else f"{title}{year}"
    if item.categories:
        line += " | " + ", ".join(untrusted(c, 30) for c in item.categories[:4])
    return line


def history_line(event: Interaction, item: Item | None, with_id: bool = True) -> str:
    """An item line plus what the user did: `rated 4`, `feedback disliked`, `click`."""
    if item is None:
        line = f"[{event.item_id}] (unknown item)" if with_id else "(unknown item)"
    else:
        line = item_line(item, with_id)
    label = feedback_label(event)
    if event.rating is not None:
        line += f" | rated {event.rating:g}"
    elif label is not None:
        line += f" | feedback {untrusted(label, 20)}"
    elif event.event_type is not EventType.RATING:
        line += f" | {event.event_type.value}"
    return line


def history_lines(
    history: Sequence[Interaction],
    items: Mapping[str, Item],
    limit: int,
    with_id: bool = True,
) -> tuple[list[str], list[str]]:
    """Lines for the `limit` most recent events (oldest first) and the item ids they show."""
    recent = list(history[-limit:]) if limit else []
    lines = [history_line(e, items.get(e.item_id), with_id) for e in recent]
    return lines, list(dict.fromkeys(e.item_id for e in recent))


def profile_text(profile: UserProfile) -> str:
    liked = "; ".join(f"{untrusted(i.topic, 40)} ({i.weight:.1f})" for i in profile.interests)
    parts = [f"Likes: {liked or '-'}"]
    if profile.dislikes:
        parts.append("Dislikes: " + "; ".join(untrusted(i.topic, 40) for i in profile.dislikes))
    parts.append(f"Wants: {untrusted(profile.intent, 160)}")
    parts.append(f"Summary: {untrusted(profile.summary, 480)}")
    return "\n".join(parts)
