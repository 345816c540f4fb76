"""Review text is untrusted input: personal data is removed before any prompt sees it, and it
is shown only inside delimiters, so instructions in it read as quoted text, not as orders.

Every path first bounds the text (nothing later sees more than a few thousand characters),
cleans control and bidi characters, and replaces any run of more than LONG_TOKEN
characters without a space (no name, address or number is that long, and such runs are
what made regexes backtrack), then finds personal data with Presidio (`agent.profiles.pii`):

- `excerpt` / `scrub_user_text`, for what users wrote: the `scrub_mode` setting, `full`
  (spaCy NER for names and places plus the pattern recognizers) or `patterns` (the fast
  path for huge batches: no names or places);
- `scrub`, for catalog and machine text (titles, categories, labels, LLM-written profile
  text): pattern recognizers only, never NER, so a title like 'Being John Malkovich'
  stays readable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache, lru_cache

from agent.cleantext import bound, clean_text
from agent.profiles.pii import CATALOG_ENTITIES, ScrubMode, replace

MAX_SCRUB_CHARS = 4_000
"""Longest text scrubbed at all; callers show a few hundred characters."""
LONG_TOKEN = 200
_LONG = re.compile(rf"\S{{{LONG_TOKEN + 1},}}")
_DELIMITERS = re.compile(r"</?\s*review\s*>", re.I)
_SPACE = re.compile(r"\s+")

_configured: dict[str, tuple[ScrubMode, str]] = {}


def configure(mode: ScrubMode | None, pipeline: str | None = None) -> None:
    """Fix the scrub mode of this process (the CLI passes its Settings here); None goes
    back to reading `Settings()` on first use."""
    _configured.clear()
    _mode_from_settings.cache_clear()
    if mode is not None:
        _configured["mode"] = (mode, pipeline or _mode_from_settings()[1])


@cache
def _mode_from_settings() -> tuple[ScrubMode, str]:
    from agent.config import Settings

    settings = Settings()
    return settings.scrub_mode, settings.scrub_pipeline


def current_mode() -> tuple[ScrubMode, str]:
    """(scrub mode, spaCy pipeline) for user text."""
    return _configured.get("mode") or _mode_from_settings()


def _prepare(text: str, max_chars: int) -> str:
    text = clean_text(bound(text, max_chars), keep_newlines=False)
    return _LONG.sub("[...]", text)


def _finish(text: str) -> str:
    return _SPACE.sub(" ", _DELIMITERS.sub(" ", text)).strip()


def scrub(text: str) -> str:
    """Catalog or machine text: bounded, cleaned, what the pattern recognizers find
    (e-mails, URLs, phones, cards, IBANs, SSNs, IPs; not street addresses, which film
    titles look like) replaced by placeholders such as `[email]`, and our delimiters
    removed so the text cannot close its quote early."""
    return _scrub_catalog(bound(text, MAX_SCRUB_CHARS))


@lru_cache(maxsize=65_536)
def _scrub_catalog(text: str) -> str:
    """Cached: the same titles come back in every user's prompts, and Presidio costs about
    3 ms of CPU per text (bench/scrub.py)."""
    prepared = _prepare(text, MAX_SCRUB_CHARS)
    return _finish(replace(prepared, "patterns", entities=CATALOG_ENTITIES))


def scrub_user_text(text: str, *, mode: ScrubMode | None = None, allow: Sequence[str] = ()) -> str:
    """What a user wrote, scrubbed as the `scrub_mode` setting says (or `mode`). Detections
    inside an `allow` phrase (the item's own title) are kept as written."""
    chosen, pipeline = current_mode()
    return _finish(replace(_prepare(text, MAX_SCRUB_CHARS), mode or chosen, pipeline, allow))


def excerpt(
    text: str, max_chars: int, *, mode: ScrubMode | None = None, allow: Sequence[str] = ()
) -> str:
    """A user's text scrubbed and cut at a word boundary to `max_chars`. Only a few times
    `max_chars` are scrubbed (cut at a space, so no e-mail or card is cut in half and let
    through), which keeps NER cost per review flat however long the review is."""
    head = bound(text, max_chars * 4 + 64)
    if len(head) < len(text) and " " in head:
        head = head.rsplit(" ", 1)[0]
    clean = scrub_user_text(head, mode=mode, allow=allow)
    if len(clean) <= max_chars:
        return clean
    cut = clean[:max_chars].rsplit(" ", 1)[0]
    return cut + "..."
