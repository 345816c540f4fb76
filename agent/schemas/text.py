"""Text fields for LLM-written models; `clean_text` and `bound` for untrusted text (from
`agent.cleantext`, which the CLI imports without the schemas)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from agent.cleantext import bound as bound
from agent.cleantext import clean_text as clean_text
from agent.cleantext import invisible_at as invisible_at


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


def topic_key(topic: str) -> str:
    """Topics compare without case or punctuation: "Sci-Fi" and "sci fi" are one topic."""
    return " ".join(re.findall(r"\w+", topic.lower()))
