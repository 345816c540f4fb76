"""Untrusted text made safe to show and to bound: `clean_text` removes what makes a terminal
or a prompt show something other than what is there. Stdlib only, so the CLI's printing
helpers can use it without importing the schemas (pydantic models) at start."""

from __future__ import annotations

import re

_INVISIBLE = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"  # C0 and C1 controls (BEL, ESC, CR, ...), DEL; not \t \n
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f"  # zero-width space, non-joiner, joiner; LRM, RLM
    "\u202a-\u202e"  # bidi embeddings and overrides (U+202E: right-to-left override)
    "\u2060-\u2064\u2066-\u206f"  # word joiner, invisible operators, bidi isolates
    "\ufeff\ufff9-\ufffb"  # byte-order mark / zero-width no-break space, annotations
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"  # tag characters (invisible ASCII look-alikes)
    "\ud800-\udfff"  # lone surrogates (undecodable bytes under surrogateescape)
)
_STRIP = re.compile(f"[{_INVISIBLE}]+")
_LINE_BREAKS = re.compile("[\u2028\u2029]")
_BLANKS = re.compile("[\t\n]")
_NOT_ONE_LINE = re.compile(f"[{_INVISIBLE}\t\n\u2028\u2029]")


def clean_text(text: str, *, keep_newlines: bool = True) -> str:
    """`text` without the characters that make a terminal or a prompt show something other
    than what is there: control characters (BEL, ESC and so ANSI sequences, CR, NUL),
    bidi embeddings, overrides and isolates (U+202E), zero-width and other invisible format
    characters (Unicode category Cf, e.g. U+200B, U+FEFF, tag characters). Tabs and
    newlines stay (U+2028/U+2029 become newlines), or become spaces with
    `keep_newlines=False`. Linear in the length of `text`."""
    text = _LINE_BREAKS.sub("\n", _STRIP.sub("", text))
    return text if keep_newlines else _BLANKS.sub(" ", text)


def invisible_at(text: str) -> int | None:
    """Index of the first character `clean_text` would remove (tabs and newlines count when
    the text must be one line, as ids must), or None."""
    match = _NOT_ONE_LINE.search(text)
    return None if match is None else match.start()


def bound(text: str, max_chars: int) -> str:
    """The first `max_chars` characters: applied to untrusted text before anything else
    looks at it, so no later step (regexes, NER, JSON) sees more than `max_chars`."""
    return text if len(text) <= max_chars else text[:max_chars]
