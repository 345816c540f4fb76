"""A user's own edits in recommend's order (`agent.profiles.edits`): categories they never want
become a filter on every path (each source, fusion, the ranker's candidates), and on the fusion
path (no fitted ranker) an item in a category the user added as a dislike is demoted, one in a
category they added as an interest promoted, before the top k is cut.

The adjustment is multiplicative on the fused score: `score × (1 − s)` for a disliked category,
`score × (1 + s)` for a liked one, `s` = the `steer_strength` setting. Reciprocal-rank scores
fall slowly with rank (1/(60+r)), so s = 0.5 moves a top item of one source below rank 60 of
that source. The user's free-text topics match no category: they reach the order through the
profile (the dense query, the ranker's profile features), not here. With a learned ranker the
same factors apply to reciprocal-rank scores of its positions (`reorder_ranked`): an explicit
edit must act at once, whatever weight the ranker learned for the profile columns (a ranker
fitted before any profile has none)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.recommend.filters import ItemFilter, ItemMeta, excluding
from agent.recommend.fusion import Fused
from agent.schemas.profile import Interest, UserProfile
from agent.store.profiles import ProfileStore


@dataclass(frozen=True)
class Steering:
    promote: frozenset[str] = frozenset()
    """Categories of the user's own interests."""
    demote: frozenset[str] = frozenset()
    """Categories of the user's own dislikes."""
    never: tuple[str, ...] = ()
    """Categories never recommended."""

    @classmethod
    def of(cls, profile: UserProfile, never: Iterable[str], categories: Iterable[str]) -> Steering:
        """The steering of a profile's user-made entries whose topic is a catalog category
        (edits store such topics as the catalog spells them)."""
        known = set(categories)

        def named(entries: Sequence[Interest]) -> frozenset[str]:
            return frozenset(e.topic for e in entries if e.source == "user" and e.topic in known)

        return cls(named(profile.interests), named(profile.dislikes), tuple(never))

    @classmethod
    def load(cls, store: ProfileStore, profile: UserProfile, categories: Iterable[str]) -> Steering:
        """The steering of the user's stored edits and latest profile."""
        from agent.profiles.edits import load_edits

        return cls.of(profile, load_edits(store, profile.user_id).never, categories)

    def __bool__(self) -> bool:
        return bool(self.promote or self.demote or self.never)

    def filters(self, filters: ItemFilter) -> ItemFilter:
        """`filters` and, when the user excluded categories, `category!=...` for them."""
        return excluding(filters, self.never)

    def factor(self, meta: ItemMeta | None, strength: float) -> float:
        if meta is None:
            return 1.0
        factor = 1.0
        if meta.categories & self.demote:
            factor *= 1.0 - strength
        if meta.categories & self.promote:
            factor *= 1.0 + strength
        return factor

    def reorder(
        self, fused: Sequence[Fused], meta: Mapping[str, ItemMeta], strength: float
    ) -> list[Fused]:
        """Fused candidates with steered scores, best first (fusion's tie-breaks)."""
        if not (self.promote or self.demote) or strength == 0:
            return list(fused)
        steered = []
        for entry in fused:
            factor = self.factor(meta.get(entry.item_id), strength)
            score = round(entry.score * factor, 6) if factor != 1.0 else entry.score
            steered.append(Fused(entry.item_id, score, dict(entry.hits)))
        return sorted(
            steered,
            key=lambda f: (-f.score, min((h.rank for h in f.hits.values()), default=0), f.item_id),
        )

    def reorder_ranked(
        self, ranked: Sequence[Fused], meta: Mapping[str, ItemMeta], strength: float, k: int = 60
    ) -> list[Fused]:
        """The learned ranker's order steered the same way: its scores are not on one scale
        (they may be negative), so each item's position gives it the reciprocal-rank score
        fusion would, 1/(k + position), which the user's entries scale as above. The ranker's
        own scores are kept; only the order moves."""
        if not (self.promote or self.demote) or strength == 0:
            return list(ranked)
        keyed = [
            (self.factor(meta.get(entry.item_id), strength) / (k + position), position, entry)
            for position, entry in enumerate(ranked, start=1)
        ]
        return [entry for _, _, entry in sorted(keyed, key=lambda t: (-t[0], t[1]))]
