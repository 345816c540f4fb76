"""Are the profiles true? Every claim held against the user's own ratings, with no LLM.

Per user, over the history the profile was written from (the training prefix: never the
held-out item), then averaged over users with a bootstrap interval:

- evidence agreement: interests whose cited items the user rated above their mean on average,
  dislikes below it (`agent.profiles.claims`);
- whole-history contradiction: claims whose matching rated items average on the wrong side
  of the user's mean, among claims with 3+ matches (the rest are unchecked);
- bare-genre rate: topics that are only category names;
- example-copy rate: profiles whose topics, intent or summary share a 4-word sequence with
  the prompt's instructions or example (`agent.profiles.copying`);
- for grouped prompts (v5+), the same checks on the claims as the model drafted them (the
  grounding record's `claims`), and the share of topics replaced by computed ones: how much
  of what is stored the model itself wrote.

`python -m evals.profile_truth RUN_DIR` recomputes them for a finished run (its record in
PERSONAE_DATA_DIR), e.g. for a run made before this module existed."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.profiles.claims import check_claims
from agent.profiles.copying import copies, prompt_ngrams
from agent.profiles.grounding import TopicJudge
from agent.schemas import Interaction, Item
from agent.schemas.profile import ClaimCheck, UserProfile
from evals.metrics import bootstrap
from evals.protocols import UserRecord


def copied(profile: UserProfile) -> bool:
    ref = profile.provenance.prompt
    grams = prompt_ngrams(ref.id, ref.version)
    texts = [*(i.topic for i in (*profile.interests, *profile.dislikes)), profile.intent,
             profile.summary]  # fmt: skip
    return any(copies(text, grams) for text in texts)


def rates(check: ClaimCheck) -> dict[str, float]:
    """One user's rates (a rate with nothing to count is left out)."""
    found = {}
    if check.evidence_checked:
        found["evidence_agreement"] = check.evidence_agreeing / check.evidence_checked
    if check.history_checked:
        found["history_contradiction"] = check.history_contradicted / check.history_checked
    if check.claims:
        found["bare_genre"] = check.bare_topics / check.claims
        found["unchecked"] = 1 - check.history_checked / check.claims
    return found


def user_rates(
    profile: UserProfile, history: Sequence[Interaction], items: Mapping[str, Item],
    judge: TopicJudge | None,
) -> dict[str, float]:  # fmt: skip
    ratings = {e.item_id: e.rating for e in history if e.rating is not None}
    mine = {e.item_id: items[e.item_id] for e in history if e.item_id in items}
    stored = check_claims(profile.interests, profile.dislikes, ratings, mine, judge)
    found = {f"stored {k}": v for k, v in rates(stored).items()}
    drafted = profile.grounding.claims or stored  # before v5 nothing was removed or renamed
    found |= {f"drafted {k}": v for k, v in rates(drafted).items()}
    found["example_copy"] = float(copied(profile))
    if drafted.claims:
        found["renamed_topics"] = profile.grounding.renamed_topics / drafted.claims
        found["removed_claims"] = profile.grounding.contradicted_claims / drafted.claims
    return found


def profile_truth(
    records: Sequence[UserRecord],
    histories: Mapping[str, Sequence[Interaction]],
    items: Mapping[str, Item],
    judge: TopicJudge | None,
    samples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    per_user: dict[str, list[float]] = {}
    claims = []
    for record in records:
        profile = record.profile.profile if record.profile is not None else None
        if profile is None or record.user_id not in histories:
            continue
        claims.append(len(profile.interests) + len(profile.dislikes))
        for name, value in user_rates(profile, histories[record.user_id], items, judge).items():
            per_user.setdefault(name, []).append(value)
    found: dict[str, Any] = {"profiles": len(claims),
                             "stored claims per profile": round(statistics.fmean(claims), 2)
                             if claims else None}  # fmt: skip
    for name in sorted(per_user):
        interval = bootstrap(per_user[name], samples, seed)
        found[name] = {"mean": round(interval.mean, 4), "low": round(interval.low, 4),
                       "high": round(interval.high, 4), "users": interval.n}  # fmt: skip
    return found


def main(run_dir: Path) -> None:
    """Recompute a finished run's profile truth from its per-user records and the record."""
    from agent.cli.deferred import load_embedder, record_at
    from agent.config import Settings
    from agent.profiles.grounding import SemanticJudge
    from evals.paired import differences
    from evals.splits import Stage, build_stage, load_histories

    settings = Settings()
    lines = (run_dir / "per_user.jsonl").read_text().splitlines()
    records = [UserRecord.model_validate_json(line) for line in lines if line]
    stage = Stage(records[0].stage) if records else Stage.TEST
    with record_at(settings.data_dir) as record:
        data = build_stage(load_histories(record), stage, settings.eval_history_cap,
                           settings.eval_min_history)  # fmt: skip
        histories = {r.user_id: data.splits[r.user_id].history for r in records}
        wanted = {e.item_id for h in histories.values() for e in h}
        items = {i: item for i in wanted if (item := record.get_item(i)) is not None}
    judge = SemanticJudge(load_embedder(settings))
    found = profile_truth(records, histories, items, judge)
    found["paired ndcg@10"] = [d.model_dump() for d in differences(records, "llmrank", "ndcg@10",
                                                                  1000, 0)]  # fmt: skip
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
