"""Validation-only experiments for the sequential model (issue 33): fit on every user's events
before their validation event (the second-to-last; the test event is never read), then report
NDCG@10 (x100) of the validation event on three candidate sets.

    PERSONAE_DATA_DIR=DIR python bench/sasrec_valid.py [--label NAME] [--seeds 1] [--refit]
        [key=value ...]   # SasRecParams fields, e.g. layout=pre dropout=0.2 lr=2e-3

- llmrank: the target and 19 items the user never interacted with (`llmrank_candidates`);
- ref-style: LLMRank's way (`evals.llmrank_reference.sample_lists`: 100 items drawn from all
  items per user, the target dropped, the first 19 kept), with seed `REF_SEED` instead of
  2020 so the test lists' negatives play no part in a choice;
- full: every item except those before the target.

The fit holds out each training sequence's last event for early stopping, as `eval run` and
`rank fit` do one event later. `--refit` also refits on the whole training sequences for the
best epoch count (no early stopping) and reports both; `--seeds N` averages the scores of N
seeds. One JSON line per run goes to stdout and is appended to `--log`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import Settings
from agent.recommend.sequential import SasRecParams, SequentialModel, fit_sequential
from agent.recommend.signals import positive_items
from agent.store.record import RecordStore
from evals.llmrank_reference import INTERACTION_ROWS, recbole_tokens, sample_lists
from evals.metrics import ndcg, rank_of
from evals.sampling import llmrank_candidates, rng_for
from evals.splits import Stage, UserSplit, build_stage, load_histories
from evals.systems import by_score

REF_SEED = 2021
Scorer = Callable[[Sequence[Sequence[str]]], np.ndarray]


def parse_params(pairs: Sequence[str]) -> SasRecParams:
    """`key=value` overrides of SasRecParams, each value cast to the field's default's type."""
    defaults = SasRecParams()
    changes: dict[str, Any] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        kind = type(getattr(defaults, key))
        changes[key] = kind(float(value)) if kind is int else kind(value)
    return dataclasses.replace(defaults, **changes)


def candidate_sets(
    splits: Mapping[str, UserSplit], catalog: Sequence[str], rows: Sequence[tuple[str, str]]
) -> dict[str, dict[str, list[str]]]:
    users, items = recbole_tokens(rows)
    ref = sample_lists(users, items, seed=REF_SEED)
    found: dict[str, dict[str, list[str]]] = {"llmrank": {}, "ref-style": {}}
    for user_id, split in splits.items():
        found["llmrank"][user_id] = llmrank_candidates(split, catalog, 20, 0)
        shown = ref.candidates(split)
        rng_for(0, "llmrank-ref", user_id).shuffle(shown)
        found["ref-style"][user_id] = shown
    return found


def evaluate(
    scores: np.ndarray,
    item_ids: Sequence[str],
    splits: Sequence[UserSplit],
    sets: Mapping[str, Mapping[str, list[str]]],
) -> dict[str, float]:
    """Mean NDCG@10 (x100) per candidate set; an item the model does not know scores last."""
    index = {item: i for i, item in enumerate(item_ids)}
    gains: dict[str, list[float]] = {name: [] for name in [*sets, "full"]}
    for row, split in enumerate(splits):
        s = scores[row]
        for name, by_user in sets.items():
            shown = by_user[split.user_id]
            known = {c: float(s[index[c]]) for c in shown if c in index}
            gains[name].append(ndcg(rank_of(split.target, by_score(shown, known)), 10))
        masked = s.copy()
        masked[[index[i] for i in split.prior if i in index]] = -np.inf
        mine = masked[index[split.target]] if split.target in index else -np.inf
        gains["full"].append(ndcg(1 + int((masked > mine).sum()), 10))
    return {name: round(float(np.mean(g)), 2) for name, g in gains.items()}


def fit_many(seqs: list[list[str]], p: SasRecParams, seeds: int) -> list[SequentialModel]:
    return [fit_sequential(seqs, dataclasses.replace(p, seed=p.seed + k)) for k in range(seeds)]


def averaged(models: Sequence[SequentialModel], histories: Sequence[Sequence[str]]) -> np.ndarray:
    """Mean of the models' scores (all fitted on the same sequences, so one item order)."""
    return np.mean([m.scores_many(histories) for m in models], axis=0)


def facts(models: Sequence[SequentialModel]) -> dict[str, object]:
    return {
        "best_epoch": [m.best_epoch for m in models],
        "epochs_run": [len(m.losses) for m in models],
        "s_per_epoch": [round(m.train_seconds / max(len(m.losses), 1), 2) for m in models],
        "best_valid_ndcg": [max(m.valid_ndcg, default=float("nan")) for m in models],
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", default="")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--refit", action="store_true")
    parser.add_argument("--log", type=Path, default=Path("/work/logs/sasrec_valid.jsonl"))
    parser.add_argument("params", nargs="*")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    p = parse_params(args.params)
    settings = Settings()
    with RecordStore.at(settings.data_dir) as record:
        histories = load_histories(record)
        rows = [(str(u), str(i)) for u, i in record.conn.execute(INTERACTION_ROWS)]
        catalog = [r[0] for r in record.conn.execute("SELECT item_id FROM items ORDER BY 1")]
    data = build_stage(histories, Stage.VALIDATION, settings.eval_history_cap,
                       settings.eval_min_history)  # fmt: skip
    seqs = [positive_items(events[:-2]) for events in histories.values()]
    splits = list(data.splits.values())
    sets = candidate_sets(data.splits, catalog, rows)
    served = [s.prefix_positive for s in splits]
    started = time.perf_counter()
    models = fit_many(seqs, p, args.seeds)
    result: dict[str, object] = {"label": args.label, "params": dataclasses.asdict(p),
                                 "seeds": args.seeds, "users": len(splits)}  # fmt: skip
    result |= facts(models)
    result["valid"] = evaluate(averaged(models, served), models[0].item_ids, splits, sets)
    if args.refit:
        epochs = round(float(np.mean([m.best_epoch for m in models])))
        refit = fit_many(seqs, dataclasses.replace(p, patience=0, epochs=epochs), args.seeds)
        result["refit_epochs"] = epochs
        result["valid_refit"] = evaluate(averaged(refit, served), refit[0].item_ids, splits, sets)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    line = json.dumps(result)
    print(line)
    with args.log.open("a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
