"""Nothing judged reaches what it is judged with: changing every user's test event (the judged
one) leaves the ranker's training and every user's features unchanged, while changing the
validation event (legitimate input at test time) does change them, so the comparison can see
a difference when there is one. Every way of drawing training candidates is checked, llmrank-ref's
(the whole catalog, the user's own earlier items included) as well as llmrank's and full's."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np

from agent.rank.features import ALL_FEATURES, feature_matrix
from agent.rank.model import RankerParams
from agent.rank.sources import Catalog, fit_sources
from agent.rank.training import Candidates, group_rows, judged_events, prefixes
from agent.recommend.filters import ItemMeta
from agent.recommend.sequential import SasRecParams
from agent.schemas import Interaction
from evals.ranked import RANKER_NO_LLM, Ranking, RankingOptions, fit_ranking
from evals.splits import Stage, build_stage

GENRES = ["Action", "Comedy", "Drama", "Horror"]
START = datetime(2020, 1, 1, tzinfo=UTC)
ITEMS = [f"i{n}" for n in range(60)]


def catalog() -> Catalog:
    meta = {
        item: ItemMeta(frozenset({GENRES[n % 4], GENRES[(n // 4) % 4]}), 1980 + n % 20)
        for n, item in enumerate(ITEMS)
    }
    return Catalog.from_meta(meta)


def histories(users: int = 50, seed: int = 3) -> dict[str, list[Interaction]]:
    """Users who mostly like two genres, in time order; deterministic for the seed."""
    rng = random.Random(seed)
    found = {}
    for u in range(users):
        liked = [i for n, i in enumerate(ITEMS) if n % 4 in (u % 4, (u + 1) % 4)]
        picks = list(dict.fromkeys(rng.sample(liked, 14) + rng.sample(ITEMS, 4)))
        found[f"u{u}"] = [
            Interaction(user_id=f"u{u}", item_id=item, rating=float(rng.randint(1, 5)),
                        timestamp=START + timedelta(days=day))
            for day, item in enumerate(picks)
        ]  # fmt: skip
    return found


def replace_event(
    data: dict[str, list[Interaction]], from_end: int
) -> dict[str, list[Interaction]]:
    """Every user's `from_end`-th last event moved to an item the user never had."""
    changed = {}
    for user, events in data.items():
        had = {e.item_id for e in events}
        other = next(i for i in reversed(ITEMS) if i not in had)
        events = list(events)
        events[-from_end] = events[-from_end].model_copy(update={"item_id": other})
        changed[user] = events
    return changed


OPTIONS = RankingOptions(
    sequential=SasRecParams(epochs=2, dim=16, max_len=10, batch_size=16),
    ranker=RankerParams(rounds=20, min_data_in_leaf=5, early_stopping=5, folds=2),
    depth=10,
)


MODES = [Candidates.SAMPLED, Candidates.SAMPLED_ANY, Candidates.RETRIEVED]


def fit(data: dict[str, list[Interaction]]) -> Ranking:
    modes = MODES
    return fit_ranking(data, catalog(), Stage.TEST.held_out, [RANKER_NO_LLM], modes, OPTIONS)


def judged_features(ranking: Ranking, data: dict[str, list[Interaction]]) -> np.ndarray:
    """Features of every catalog item for every test split, as the eval system builds them."""
    splits = build_stage(data, Stage.TEST, cap=50, min_history=3).splits
    rows = np.arange(len(ranking.sources.catalog))
    return np.stack(
        [
            feature_matrix(ranking.sources, ranking.scored(split), rows, ALL_FEATURES)
            for _, split in sorted(splits.items())
        ]
    )


def boosters(ranking: Ranking) -> list[str]:
    return [r.booster.model_to_string() for r in ranking.rankers[RANKER_NO_LLM].values()]


def test_a_users_judged_event_never_reaches_training_or_features() -> None:
    data = histories()
    base = fit(data)
    moved = replace_event(data, 1)
    assert all(moved[u][-1].item_id != data[u][-1].item_id for u in data)
    other = fit(moved)
    assert boosters(base) == boosters(other)
    np.testing.assert_array_equal(judged_features(base, data), judged_features(other, moved))


def training_groups(
    data: dict[str, list[Interaction]], mode: Candidates
) -> dict[str, tuple[list[Interaction], str, list[str]]]:
    """Per user, what `fit_ranking` trains on at the test stage: the events before the training
    target, the target, and the group's candidates in the order shown."""
    held_out = Stage.TEST.held_out + 1
    sources = fit_sources(prefixes(data, held_out), catalog())
    size = OPTIONS.sampled_size if mode.sampled else OPTIONS.depth
    found = {}
    for user_id, j in judged_events(data, held_out, OPTIONS.min_history).items():
        group = group_rows(sources, j, mode, size, OPTIONS.seed)
        if group is not None:
            items = [sources.catalog.item_ids[r] for r in group[1]]
            found[user_id] = (list(j.before), j.target, items)
    return found


def test_no_test_event_reaches_a_training_group() -> None:
    """Each group is the validation event and the events before it, and its candidates are the
    same whatever the test events are: a user's test item can be drawn as a negative only by a
    draw that never looked at it (excluding it would read the test split)."""
    data = histories()
    moved = replace_event(data, 1)
    for mode in MODES:
        groups = training_groups(data, mode)
        assert groups
        for user_id, (before, target, _) in groups.items():
            assert before == data[user_id][:-2] and target == data[user_id][-2].item_id
        assert training_groups(moved, mode) == {
            u: (moved[u][:-2], target, items) for u, (_, target, items) in groups.items()
        }


def test_the_check_sees_a_change_of_an_event_the_features_may_use() -> None:
    data = histories()
    base = fit(data)
    moved = replace_event(data, 2)  # the validation event: the ranker's label, a test input
    other = fit(moved)
    assert all(a != b for a, b in zip(boosters(base), boosters(other), strict=True))
    assert not np.array_equal(
        judged_features(base, data), judged_features(other, moved), equal_nan=True
    )


def test_one_feature_alone_is_scored_on_the_groups_where_it_is_set() -> None:
    """Group 1: target ranked 2nd by the feature (NDCG 100/log2(3)); group 2: tied with the
    row shown before it, so 2nd as well; group 3: the feature is unset and is left out."""
    import math

    import numpy as np

    from agent.rank.model import Groups
    from evals.ranked import feature_alone

    x = np.array([[0.9], [0.5], [0.1], [0.4], [0.4], [0.2], [np.nan], [np.nan]], dtype=np.float32)
    y = np.array([0, 1, 0, 0, 1, 0, 1, 0], dtype=np.float32)
    found = feature_alone(Groups(x, y, [3, 3, 2], ["a", "b", "c"]), 0)
    assert found["groups"] == 2
    assert found["ndcg@10"] == round(100 / math.log2(3), 2)
