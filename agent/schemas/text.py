"""Text fields for LLM-written models."""

from __future__ import annotations

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

    Each bound costs grammar-compile time (xgrammar, ~7 ms per character on this CPU, paid
    per distinct schema), so keep bounds as small as the field needs."""

    max_chars: int

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.cut, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "maxLength": self.max_chars}

    def cut(self, text: str) -> str:
        return text if len(text) <= self.max_chars else text[: self.max_chars].rstrip()


NonEmpty = StringConstraints(strip_whitespace=True, min_length=1)
