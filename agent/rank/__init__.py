"""The ranker stage: a LightGBM LambdaRank model over per-candidate features (every
retriever's score and rank, popularity, item age, category affinity, distance from the user's
recent items, and optional LLM evidence), trained on held-out events with every source fitted
on the events before them.

- `sources`: the retrievers and item statistics, fitted on one set of events;
- `features`: the feature columns and the matrix for one user's candidates;
- `training`: held-out events into LambdaRank groups, without leakage;
- `model`: the booster (train, score, gain importance, per-feature contributions);
- `store`: the production ranker on disk with its manifest.

Modules here import numpy at most at import time; lightgbm and torch are imported by the
modules that need them (`model`, and the sequential retriever)."""
