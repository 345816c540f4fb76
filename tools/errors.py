"""The one error a tool raises on purpose."""

from __future__ import annotations


class ToolInputError(ValueError):
    """The model asked for something that does not exist or cannot be done. The message is
    sent back to the model as the tool result, so it says what to do instead."""
