"""The no-LLM reason for an item EASE recommends, put into words from its computed evidence.

One template ("People who liked A and B also liked this") for every item made the reasons
users see read alike (distinct-2 0.19 over 500 shown reasons, issue 29). The evidence holds
more that is true and worth saying: how the user rated the drivers, the categories the item
shares with a driver, whether the drivers are recent in the history, the item's decade when
the user rates that decade above their average, the item's popularity. Each shape below
states only such facts, and only when the evidence backs them; `agent.reasons.facts` checks
every one of them in the text.

The shape is chosen deterministically: of the shapes the evidence supports, the one this
user's list has used least, the first on ties (`Phrasing` carries what the list used), so
one user's reasons differ from each other and the same evidence always reads the same. The
drivers named are among the item's top 3 (faithfulness stays 1), those not yet named in the
list first."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agent.reasons.evidence import CITABLE_DRIVERS, Driver, ItemEvidence
from agent.reasons.text import NOT_CATEGORIES

LIKED = 4.0
"""A driver rated at least this is one the user liked (said as "you rated A 5/5")."""
ERA_MIN_RATINGS = 3
ERA_MARGIN = 0.3
"""The decade is worth saying when the user rated at least `ERA_MIN_RATINGS` of its items,
on average this much above their overall mean."""
POPULAR_TIERS = (10, 25, 50, 100)
TITLE_CHARS = 60
ARTICLES = ("The", "A", "An")


def display(title: str) -> str:
    """The title as read ("Usual Suspects, The" -> "The Usual Suspects"), bounded."""
    from agent.recommend.context import untrusted

    clean = untrusted(title, TITLE_CHARS)
    for article in ARTICLES:
        if clean.endswith(f", {article}"):
            return f"{article} {clean[: -len(article) - 2]}"
    return clean


def rated(driver: Driver) -> str:
    return f"{display(driver.title)} {driver.rating:g}/5"


def liked(driver: Driver) -> bool:
    return driver.rating is not None and driver.rating >= LIKED


def both(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass
class Phrasing:
    """What one user's list has said so far (drivers named, shapes used)."""

    named: list[str] = field(default_factory=list)
    shapes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Facts:
    """What the evidence backs, for the drivers to be named."""

    evidence: ItemEvidence
    drivers: list[Driver]

    @property
    def liked(self) -> list[Driver]:
        return [d for d in self.drivers if liked(d)]

    @property
    def recent(self) -> list[Driver]:
        return [d for d in self.drivers if d.recent]

    def shared(self, driver: Driver) -> list[str]:
        return [c for c in self.evidence.categories
                if c in driver.categories and c.lower() not in NOT_CATEGORIES]  # fmt: skip

    @property
    def sharing(self) -> Driver | None:
        return next((d for d in self.drivers if self.shared(d)), None)

    @property
    def era(self) -> bool:
        e = self.evidence
        return (
            e.decade is not None
            and e.decade_mean is not None
            and e.user_mean is not None
            and e.decade_count >= ERA_MIN_RATINGS
            and round(e.decade_mean, 1) >= round(e.user_mean, 1) + ERA_MARGIN
        )

    @property
    def tier(self) -> int | None:
        rank = self.evidence.popularity_rank
        return next((t for t in POPULAR_TIERS if rank is not None and rank <= t), None)


def choose_drivers(evidence: ItemEvidence, named: list[str], n: int = 2) -> list[Driver]:
    """`n` of the item's top 3 drivers, those not named yet in the list first (each group in
    the order of their contributions)."""
    top = evidence.drivers[:CITABLE_DRIVERS]
    fresh = [d for d in top if d.item_id not in named]
    return sorted((fresh + [d for d in top if d not in fresh])[:n], key=top.index)


def names(drivers: list[Driver]) -> str:
    return both([display(d.title) for d in drivers])


def ratings_shape(f: Facts) -> str | None:
    if not f.drivers or len(f.liked) < len(f.drivers):
        return None
    return f"You rated {both([rated(d) for d in f.drivers])}; their fans liked this."


def category_shape(f: Facts) -> str | None:
    driver = f.sharing
    if driver is None:
        return None
    kind = "-".join(c.lower() for c in f.shared(driver)[:2])
    rest = [d for d in f.drivers if d is not driver]
    said = display(driver.title) + (f" ({driver.rating:g}/5 from you)" if liked(driver) else "")
    article = "An" if kind[:1].lower() in "aeiou" else "A"
    first = f"{article} {kind} film like {said}"
    return f"{first}; fans of {names(rest)} liked it too." if rest else f"{first}."


def recent_shape(f: Facts) -> str | None:
    recent = f.recent
    if not recent:
        return None
    rest = [d for d in f.drivers if d not in recent]
    first = f"Close to {names(recent)}, among your latest films"
    return f"{first}; {names(rest)} points here too." if rest else f"{first}."


def era_shape(f: Facts) -> str | None:
    e = f.evidence
    if not f.era or e.decade_mean is None or e.user_mean is None:
        return None
    return (
        f"From the {e.decade}s, a decade you rate {e.decade_mean:.1f} on average (overall "
        f"{e.user_mean:.1f}); fans of {names(f.drivers)} liked it."
    )


def popular_shape(f: Facts) -> str | None:
    if f.tier is None:
        return None
    return f"One of the {f.tier} most-liked films, and a pick of fans of {names(f.drivers)}."


def fans_shape(f: Facts) -> str | None:
    return f"Fans of {names(f.drivers)} liked this too."


def people_shape(f: Facts) -> str | None:
    return f"People who liked {names(f.drivers)} also liked this."


SHAPES: dict[str, tuple[Callable[[Facts], str | None], int]] = {
    "ratings": (ratings_shape, 2),
    "category": (category_shape, 2),
    "recent": (recent_shape, 2),
    "era": (era_shape, 2),
    "popular": (popular_shape, 2),
    "fans": (fans_shape, CITABLE_DRIVERS),
    "people": (people_shape, CITABLE_DRIVERS),
}
"""In order of preference, with the drivers each names at most; the last two need only the
drivers."""


def evidence_reason(
    evidence: ItemEvidence, phrasing: Phrasing | None = None
) -> tuple[str, list[str]] | None:
    """The reason for an item with EASE drivers and the ids it cites (None: no driver)."""
    phrasing = phrasing if phrasing is not None else Phrasing()
    made: dict[str, tuple[str, list[Driver]]] = {}
    for name, (shape, n) in SHAPES.items():
        drivers = choose_drivers(evidence, phrasing.named, n)
        if drivers and (text := shape(Facts(evidence, drivers))) is not None:
            made[name] = (text, drivers)
    if not made:
        return None
    name = min(made, key=phrasing.shapes.count)  # the least used; ties: the first
    text, drivers = made[name]
    phrasing.shapes.append(name)
    phrasing.named += [d.item_id for d in drivers]
    return text, [d.item_id for d in drivers]
