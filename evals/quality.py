"""Profile and reason quality, read from the per-user records: is the profile consistent with
the ratings, does it cover what the user watched next, is it grounded, did the model stay in
its schema, do reasons cite real history items, and does the LLM favour early positions."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from agent.profiles.grounding import words
from agent.schemas import Item
from agent.schemas.profile import UserProfile
from evals.llm import RerankResult
from evals.protocols import LLM, Protocol, UserRecord

POSITION_BUCKETS = ((1, 5), (6, 10), (11, 15), (16, 20))


def rate(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def expected_sentiment(ratings: Sequence[float]) -> set[str] | None:
    """Labels consistent with a user's mean rating on the 1-5 scale (None: no ratings)."""
    if not ratings:
        return None
    mean = statistics.fmean(ratings)
    if mean >= 3.5:
        return {"positive"}
    if mean <= 2.5:
        return {"negative"}
    return {"neutral", "mixed"}


def category_coverage(profile: UserProfile, target: Item | None) -> float | None:
    """Share of the held-out item's categories that some profile interest names."""
    if target is None or not target.categories:
        return None
    topics = (
        set().union(*(words(i.topic) for i in profile.interests)) if profile.interests else set()
    )
    covered = [c for c in target.categories if words(c) & topics]
    return len(covered) / len(target.categories)


def profile_quality(
    records: Sequence[UserRecord],
    ratings: Mapping[str, list[float]],
    items: Mapping[str, Item],
) -> dict[str, float | int | None]:
    results = [r.profile for r in records if r.profile is not None]
    profiles = [(r, r.profile.profile) for r in records if r.profile and r.profile.profile]
    attempts = sum(p.meta.attempts for p in results)
    agree, judged, coverage = 0, 0, []
    cited = invalid = dropped = interests = 0
    for record, profile in profiles:
        expected = expected_sentiment(ratings.get(record.user_id, []))
        if expected is not None:
            judged += 1
            agree += profile.sentiment.label in expected
        share = category_coverage(profile, items.get(record.target))
        if share is not None:
            coverage.append(share)
        g = profile.grounding
        cited, invalid, dropped = (
            cited + g.cited,
            invalid + g.invalid_evidence,
            dropped + g.dropped_interests,
        )
        interests += len(profile.interests) + len(profile.dislikes) + g.dropped_interests
    grounding = [p.grounding.score for _, p in profiles]
    return {
        "profiles_attempted": len(results),
        "profiles_valid": len(profiles),
        "schema_valid_rate": rate(len(profiles), len(results)),
        "reask_rate": rate(sum(p.meta.reasks for p in results), attempts),
        "evidence_grounding_rate": round(statistics.fmean(grounding), 4) if grounding else None,
        "invented_evidence_rate": rate(invalid, cited),
        "dropped_interest_rate": rate(dropped, interests),
        "sentiment_agreement": rate(agree, judged),
        "target_category_coverage": round(statistics.fmean(coverage), 4) if coverage else None,
    }


def reranks_of(
    records: Sequence[UserRecord], protocol: Protocol
) -> list[tuple[UserRecord, RerankResult]]:
    found = []
    for record in records:
        entry = record.protocols.get(protocol.value)
        if entry is not None and entry.rerank is not None:
            found.append((record, entry.rerank))
    return found


def rerank_quality(
    records: Sequence[UserRecord], protocol: Protocol
) -> dict[str, float | int | str | None]:
    pairs = reranks_of(records, protocol)
    runs = sum(r.runs for _, r in pairs)
    failed = sum(r.failed_runs for _, r in pairs)
    returned = sum(r.picks_requested * (r.runs - r.failed_runs) for _, r in pairs)
    picks = citing = foreign = 0
    for record, result in pairs:
        history = set(record.history_ids)
        for pick in result.picks.values():
            picks += 1
            citing += bool(pick.cited)
            foreign += any(c not in history for c in pick.cited)
    scored = [r for _, r in pairs if r.mode == "scored"]
    labels = sum(len(r.scores) * r.runs for r in scored)
    return {
        "users": len(pairs),
        "mode": ",".join(sorted({r.mode for _, r in pairs})) or None,
        "runs": runs,
        # scored: (candidate, order) pairs whose label was outside the returned top log-probs
        "missing_label_rate": rate(sum(r.missing_labels for r in scored), labels),
        "schema_valid_rate": rate(runs - failed, runs),
        "reask_rate": rate(sum(r.reasks for _, r in pairs), sum(r.attempts for _, r in pairs)),
        # ids are enum-constrained, so a dropped pick is a repeat the re-asks did not fix
        # (or an id outside the candidates from a server that ignores the schema)
        "dropped_pick_rate": rate(sum(r.dropped for _, r in pairs), returned),
        "reasons_citing_history": rate(citing, picks),
        "reasons_citing_outside_prefix": rate(foreign, picks),
    }


def position_bias(
    records: Sequence[UserRecord], systems: Sequence[str] = (LLM, "random")
) -> dict[str, dict[str, float | None]]:
    """llmrank NDCG@10 by the held-out item's position in the shown list: flat for an
    unbiased ranker, falling for one that prefers what it read first."""
    table: dict[str, dict[str, float | None]] = {}
    for system in systems:
        row: dict[str, float | None] = {}
        for low, high in POSITION_BUCKETS:
            values = [
                entry.systems[system].metrics["ndcg@10"]
                for r in records
                if (entry := r.protocols.get(Protocol.LLMRANK.value)) is not None
                and system in entry.systems
                and entry.target_position is not None
                and low <= entry.target_position <= high
            ]
            row[f"{low}-{high}"] = round(statistics.fmean(values), 2) if values else None
        if any(v is not None for v in row.values()):
            table[system] = row
    return table
