"""Review text is untrusted input: personal data is removed before any prompt sees it, and it
is shown only inside delimiters, so instructions in it read as quoted text, not as orders."""

from __future__ import annotations

import re

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(
    r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|io|co|ly)(?:/\S*)?\b", re.I
)
_PHONE = re.compile(r"(?<!\w)\+?\d[\d\s().-]{7,}\d(?!\w)")
_DELIMITERS = re.compile(r"</?\s*review\s*>", re.I)
_SPACE = re.compile(r"\s+")


def scrub(text: str) -> str:
    """Replace emails, URLs and phone numbers with placeholders; collapse whitespace; remove
    anything that looks like our own delimiters so text cannot close its quote early."""
    text = _EMAIL.sub("[email]", text)
    text = _URL.sub("[url]", text)
    text = _PHONE.sub("[phone]", text)
    text = _DELIMITERS.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def excerpt(text: str, max_chars: int) -> str:
    """The scrubbed text cut at a word boundary to `max_chars`."""
    clean = scrub(text)
    if len(clean) <= max_chars:
        return clean
    cut = clean[:max_chars].rsplit(" ", 1)[0]
    return cut + "..."
