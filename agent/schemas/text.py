"""Text fields for LLM-written models."""

from __future__ import annotations

from pydantic import AfterValidator, StringConstraints


def clip(max_chars: int) -> AfterValidator:
    """Cut text to `max_chars` after decoding. The bound is not in the decoding schema (see
    `agent.runtime.structured.GRAMMAR_UNFRIENDLY`), and a long but valid reply is kept."""
    return AfterValidator(
        lambda text: text if len(text) <= max_chars else text[:max_chars].rstrip()
    )


NonEmpty = StringConstraints(strip_whitespace=True, min_length=1)
