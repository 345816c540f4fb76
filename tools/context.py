"""What every chat tool is bound to: ONE user and the stores, fixed when the session starts.

The model never passes a user id: no tool argument schema has one, and every tool reads
`ToolContext.user_id`, so whatever the model asks for it can only read this user's data.
The context also remembers which item ids the tools showed, so an answer's titles can be
checked against what this user's tools actually returned, and holds the session's `Catalog`
(titles, categories, years), read once."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.profiles.edits import EditRequest
from agent.recommend.service import Recommender
from agent.schemas import Interaction
from agent.store.profile_index import ProfileIndex
from tools.catalog import Catalog
from tools.errors import ToolInputError

__all__ = ["ToolContext", "ToolInputError"]


@dataclass
class ToolContext:
    user_id: str
    recommender: Recommender
    profile_index: ProfileIndex | None = None
    """Profile vectors for `similar_users`; None disables that tool's lookups."""
    surfaced: dict[str, None] = field(default_factory=dict)
    """Item ids shown by tools in this session, in order (an ordered set)."""
    pending_edit: EditRequest | None = None
    """A profile edit the chat proposed and the user has not yet confirmed
    (`tools.edit_tools`): stored only on their yes."""
    _catalog: Catalog | None = field(default=None, repr=False)

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            self._catalog = Catalog.of(self.recommender.record.iter_items())
        return self._catalog

    def surface(self, item_ids: list[str]) -> None:
        for item_id in item_ids:
            self.surfaced.setdefault(item_id, None)

    def history(self) -> list[Interaction]:
        """The user's events, oldest first."""
        return self.recommender.record.history(self.user_id)

    def history_ids(self) -> list[str]:
        """The user's item ids, most recent first."""
        return list(dict.fromkeys(e.item_id for e in reversed(self.history())))
