"""Text fields for LLM-written models, and the cleaning and bounding of untrusted text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema


@dataclass(frozen=True)
class clip:  # noqa: N801 - used like a function inside Annotated[...]
    """Bound a text field twice. `maxLength` goes into the JSON schema so constrained decoding
    ends the string at the bound (the small default model otherwise runs a string on until
    `max_tokens`: a repetition loop, or gibberish under a frequency penalty). Validation cuts a
    longer string instead of rejecting it, for servers that ignore the schema.

    Each bound costs grammar-compile time, paid per distinct schema (bench/grammar_compile.py),
    so keep bounds as small as the field needs. `as_pattern` sends the bound as a regex that
    also refuses blank text (see `one_line_pattern`); `digits=False` adds to that regex a
    first letter and no digits."""

    max_chars: int
    as_pattern: bool = False
    digits: bool = True

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.cut, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        if self.as_pattern:
            pattern = one_line_pattern(self.max_chars, digits=self.digits)
            return {**handler(schema), "pattern": pattern}
        return {**handler(schema), "maxLength": self.max_chars}

    def cut(self, text: str) -> str:
        return text if len(text) <= self.max_chars else text[: self.max_chars].rstrip()


NonEmpty = StringConstraints(strip_whitespace=True, min_length=1)


MAX_PATTERN_CHARS = 128
"""xgrammar 0.2.8 compiles a regex repetition of more than 128 characters another way, which
fails a check when its compile cache is on, as vLLM runs it (`per_rule_fsm_hashes`)."""


def one_line_pattern(max_chars: int, *, digits: bool = True) -> str:
    """1..`max_chars` characters, the first not a space, none a quote, backslash or control
    character (no JSON escapes: xgrammar's `maxLength` refuses those too). With
    `digits=False` the first character is an ASCII letter and no character is a digit.

    Why a pattern rather than `maxLength` plus `minLength`: the grammar then refuses a blank
    text, which validation would reject after the model paid for it (`minLength` is left out
    of decoding schemas as costly), and it compiles faster. Measured with xgrammar 0.2.8 on
    this CPU, one string field: `maxLength` 100 in 2.2 s, this pattern in 1.2 s. Unlike
    `maxLength` bounds, which share their states, patterns add up, so this is for a schema's
    one short free-text field, not for several.

    Why `digits=False` exists: the default model, allowed digits in a re-rank reason, wrote
    digit loops (`10.1.1.1...`) to the bound on nearly every pick (see `rerank.Reason`)."""
    if not 1 <= max_chars <= MAX_PATTERN_CHARS:
        raise ValueError(f"a one-line pattern holds 1..{MAX_PATTERN_CHARS} characters")
    if digits:
        return rf'^[^"\\\x00-\x20][^"\\\x00-\x1f]{{0,{max_chars - 1}}}$'
    return rf'^[A-Za-z][^"\\\x00-\x1f0-9]{{0,{max_chars - 1}}}$'


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
