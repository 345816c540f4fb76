"""A user's own edits of their profile ("no more horror"): what `personae profile edit` and the
chat's edit tool store, and how every later profile version keeps them.

The edit state (`ProfileEdits`) is stored with the user in the record: topics the user added
as interests or dislikes, topics they removed from the model's profile, and categories they
never want recommended. Each edit writes a new profile version of kind `edit` (provenance:
model `user`, no prompt) made from the latest version the LLM wrote and the new state, so
undoing an edit gives back exactly the profile before it. After the LLM writes a new version
(`profile`, `update`), `reapply` puts the state back on it (`Profiler.finish`).

A topic that names a catalog category (without regard to case, plurals or spelling: "sci-fi",
"science fiction", "horror films") is stored as the catalog spells it, so recommend can match
items by category (`agent.recommend.steer`); any other topic is kept as free text. The user's
entries are marked `source="user"`, weight 1.0, with no evidence: the grounding and claim
checks pass them through unchecked (they are the user's word, not a claim about the history).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from agent.profiles.claims import bare_words
from agent.schemas.profile import (
    USER_EDIT_MODEL,
    USER_EDIT_PROMPT,
    Grounding,
    Interest,
    ProfileKind,
    Provenance,
    Sentiment,
    UserProfile,
)
from agent.store.profiles import ProfileStore

if TYPE_CHECKING:
    from agent.store.profile_index import ProfileIndex
    from agent.store.record import RecordStore

MAX_TOPIC_CHARS = 40
"""As long as a profile topic may be (`schemas.profile.Topic`)."""
MAX_EDITS = 20
"""Most entries of each list of the edit state: a profile stays a profile, not a blocklist."""


class EditError(ValueError):
    """An edit that cannot be made: unknown user or category, nothing to remove, too long."""


class ProfileEdits(BaseModel):
    """A user's edit state: what every profile version of theirs must show."""

    interests: list[str] = Field(default_factory=list, description="Topics the user added")
    dislikes: list[str] = Field(default_factory=list, description="Topics the user added")
    removed: list[str] = Field(
        default_factory=list, description="Topics removed from the model's interests and dislikes"
    )
    never: list[str] = Field(
        default_factory=list, description="Catalog categories never recommended (a filter)"
    )

    def __bool__(self) -> bool:
        return bool(self.interests or self.dislikes or self.removed or self.never)


class EditRequest(BaseModel):
    """One edit: what the CLI's options (or a chat tool's arguments) ask for. Applied in this
    order: allow_again, remove, add_interests, add_dislikes, never."""

    add_interests: list[str] = Field(default_factory=list)
    add_dislikes: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    never: list[str] = Field(default_factory=list)
    allow_again: list[str] = Field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.add_interests, self.add_dislikes, self.remove, self.never,
                    self.allow_again))  # fmt: skip


@dataclass
class EditOutcome:
    user_id: str
    edits: ProfileEdits
    profile: UserProfile | None
    """The new edit version, or the latest one when the edit changed nothing."""
    changed: bool
    notes: list[str] = field(default_factory=list)
    """What was done, in words ("'sci-fi' is the catalog category Sci-Fi", ...)."""


# -- topics -------------------------------------------------------------------------------


def catalog_categories(record: RecordStore) -> set[str]:
    """Every category name in the record's catalog."""
    import json

    rows = record.conn.execute("SELECT DISTINCT categories FROM items")
    return {c for row in rows for c in json.loads(row[0])}


def category_named(text: str, categories: Iterable[str]) -> str | None:
    """The catalog category `text` names ("sci-fi" -> "Sci-Fi"), or None."""
    wanted, folded = bare_words(text), text.strip().casefold()
    for name in sorted(categories):
        if name.casefold() == folded or (wanted and bare_words(name) == wanted):
            return name
    return None


def resolve_topic(text: str, categories: Iterable[str]) -> str:
    """A catalog category when the text names one, else the text with spaces tidied."""
    clean = " ".join(text.split())
    if not clean:
        raise EditError("an empty topic")
    if len(clean) > MAX_TOPIC_CHARS:
        raise EditError(f"topic {clean!r} is longer than {MAX_TOPIC_CHARS} characters")
    return category_named(clean, categories) or clean


def same_topic(a: str, b: str) -> bool:
    """The same topic, whatever the case, plurals or filler words."""
    return a.strip().casefold() == b.strip().casefold() or (
        bool(bare_words(a)) and bare_words(a) == bare_words(b)
    )


def names_topic(topic: str, key: str) -> bool:
    """Whether an entry's topic is `key`, or leads with it: computed topics read
    "<category> like <titles>" (`profiles.naming`), so removing "Sci-Fi" removes
    "Sci-Fi like Alien and Gattaca"."""
    return same_topic(topic, key) or same_topic(topic.split(" like ", 1)[0], key)


# -- the state on a profile ---------------------------------------------------------------


def user_entry(topic: str, liked: bool) -> Interest:
    sentiment = "positive" if liked else "negative"
    return Interest(topic=topic, weight=1.0, sentiment=sentiment, evidence=[], source="user")


def steered_entries(
    interests: Sequence[Interest], dislikes: Sequence[Interest], edits: ProfileEdits
) -> tuple[list[Interest], list[Interest]]:
    """The model's entries the state leaves (not removed, not contradicted by a user entry of
    the other side, not the same topic as a user entry of the same side), after the user's."""

    def kept(entries: Sequence[Interest], against: list[str], same: list[str]) -> list[Interest]:
        return [
            e
            for e in entries
            if e.source == "model"
            and not any(names_topic(e.topic, k) for k in [*edits.removed, *against])
            and not any(same_topic(e.topic, k) for k in same)
        ]

    liked = [user_entry(t, True) for t in edits.interests]
    disliked = [user_entry(t, False) for t in edits.dislikes]
    return (
        liked + kept(interests, edits.dislikes, edits.interests),
        disliked + kept(dislikes, edits.interests, edits.dislikes),
    )


def reapply(profile: UserProfile, edits: ProfileEdits) -> UserProfile:
    """`profile` with the user's edits put back (after the LLM wrote it)."""
    if not edits and not any(e.source == "user" for e in [*profile.interests, *profile.dislikes]):
        return profile
    interests, dislikes = steered_entries(profile.interests, profile.dislikes, edits)
    return profile.model_copy(update={"interests": interests, "dislikes": dislikes})


def load_edits(store: ProfileStore, user_id: str) -> ProfileEdits:
    stored = store.edits(user_id)
    return ProfileEdits.model_validate_json(stored) if stored else ProfileEdits()


def edit_version(
    base: UserProfile | None, edits: ProfileEdits, version: int, blank: UserProfile | None = None
) -> UserProfile:
    """The edit version: `base` (the latest profile the LLM wrote) with the state applied, or,
    for a user the LLM never profiled, `blank` (facts only, no entries) with it."""
    start = base or blank
    if start is None:
        raise EditError("an edit needs a profile or a history to start from")
    interests, dislikes = steered_entries(start.interests, start.dislikes, edits)
    p = start.provenance
    provenance = Provenance(
        model=USER_EDIT_MODEL,
        prompt=USER_EDIT_PROMPT,
        history_hash=p.history_hash,
        history_events=p.history_events,
        created_at=datetime.now(UTC),
        version=version,
        kind=ProfileKind.EDIT,
    )
    return start.model_copy(
        update={"interests": interests, "dislikes": dislikes, "provenance": provenance}
    )


def blank_profile(record: RecordStore, user_id: str) -> UserProfile | None:
    """A profile with the computed facts of the user's history and no entries, for a user
    the LLM has not profiled (None: no history either)."""
    from agent.profiles.facts import compute_facts, history_hash
    from agent.profiles.naming import computed_summary

    history = record.history(user_id)
    if not history:
        return None
    items = {i: it for i in {e.item_id for e in history} if (it := record.get_item(i))}
    newest = record.conn.execute("SELECT max(ts_ms) FROM interactions").fetchone()[0]
    facts = compute_facts(history, items, datetime.fromtimestamp(newest / 1000, tz=UTC))
    return UserProfile(
        user_id=user_id,
        interests=[],
        dislikes=[],
        sentiment=Sentiment(label="neutral", score=0.0),
        intent="",
        summary=computed_summary(facts) or "",
        confidence="low",
        facts=facts,
        grounding=Grounding(score=0.0),
        provenance=Provenance(
            model=USER_EDIT_MODEL,
            prompt=USER_EDIT_PROMPT,
            history_hash=history_hash(history),
            history_events=len(history),
            created_at=datetime.now(UTC),
            version=1,
            kind=ProfileKind.EDIT,
        ),
    )


# -- one edit -----------------------------------------------------------------------------


def _drop(entries: list[str], key: str) -> list[str]:
    return [e for e in entries if not same_topic(e, key)]


def _add(entries: list[str], topic: str, what: str) -> list[str]:
    kept = _drop(entries, topic)
    if len(kept) >= MAX_EDITS:
        raise EditError(f"at most {MAX_EDITS} {what}: remove one first")
    return [*kept, topic]


def edited(
    current: ProfileEdits,
    request: EditRequest,
    categories: set[str],
    profile: UserProfile | None,
) -> tuple[ProfileEdits, list[str]]:
    """The new state and notes. `profile`: the latest version, for what `remove` matches."""
    state = current.model_copy(deep=True)
    notes: list[str] = []

    def topic(text: str) -> str:
        found = resolve_topic(text, categories)
        if found in categories and found != text.strip():
            notes.append(f"{text.strip()!r} is the catalog category {found}")
        return found

    def category(text: str) -> str:
        found = category_named(text, categories)
        if found is None:
            listed = ", ".join(sorted(categories)) or "none"
            raise EditError(f"{text!r} is not a catalog category; the catalog has: {listed}")
        return found

    for text in request.allow_again:
        name = category(text)
        if name not in state.never:
            raise EditError(f"{name} is not excluded (--never); nothing to allow again")
        state.never.remove(name)
        notes.append(f"{name} may be recommended again")
    for text in request.remove:
        key = topic(text)
        users = [t for t in [*state.interests, *state.dislikes] if same_topic(t, key)]
        if users:  # the user's own entry: undo it, the model's entries come back
            state.interests, state.dislikes = (
                _drop(state.interests, key),
                _drop(state.dislikes, key),
            )
            notes.append(f"removed your entry {users[0]!r}")
            continue
        if any(same_topic(r, key) for r in state.removed):
            notes.append(f"{key!r} is already removed")
            continue
        entries = [*profile.interests, *profile.dislikes] if profile else []
        matched = [e.topic for e in entries if names_topic(e.topic, key)]
        if not matched:
            shown = ", ".join(repr(e.topic) for e in entries) or "none"
            raise EditError(f"no interest or dislike matches {text!r}; the profile has: {shown}")
        state.removed = _add(state.removed, key, "removed topics")
        notes.append(f"removed {', '.join(repr(m) for m in matched)}")
    for text in request.add_interests:
        key = topic(text)
        state.dislikes, state.removed = _drop(state.dislikes, key), _drop(state.removed, key)
        state.interests = _add(state.interests, key, "added interests")
    for text in request.add_dislikes:
        key = topic(text)
        state.interests, state.removed = _drop(state.interests, key), _drop(state.removed, key)
        state.dislikes = _add(state.dislikes, key, "added dislikes")
    for text in request.never:
        name = category(text)
        state.never = [*[c for c in state.never if c != name], name]
        notes.append(f"{name} is never recommended (--allow-again {name} lifts it)")
    return state, notes


def apply_edit(
    record: RecordStore,
    user_id: str,
    request: EditRequest,
    index: ProfileIndex | None = None,
) -> EditOutcome:
    """Apply one edit and store it: the new state and a new profile version of kind `edit`,
    in one transaction; with `index`, the profile's vector too. An edit that changes nothing
    stores nothing. For the CLI (`personae profile edit`) and a chat tool alike."""
    store = ProfileStore(record)
    latest = store.get(user_id)
    if latest is None and not record.history(user_id, limit=1):
        raise EditError(f"user {user_id!r} has neither a profile nor events in the record")
    current = load_edits(store, user_id)
    state, notes = edited(current, request, catalog_categories(record), latest)
    if state == current:
        return EditOutcome(user_id, state, latest, changed=False, notes=notes)
    base = store.latest_written(user_id)
    blank = None if base is not None else blank_profile(record, user_id)
    version = store.latest_version(user_id) + 1
    profile = edit_version(base, state, version, blank)
    store.add(profile, edits=state.model_dump_json())
    if index is not None:
        index.upsert([profile])
    return EditOutcome(user_id, state, profile, changed=True, notes=notes)
