#!/usr/bin/env bash
# The main job on the embedded defaults: bundled MovieLens-100K sample, embedded Chroma,
# local vLLM on CPU with the packaged default model (Qwen2.5-Coder-1.5B-Instruct). Safe to
# rerun: ingest skips duplicates, the index re-embeds only changed items, and profiles of
# unchanged histories are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
P=.venv/bin/personae
USERS="${PERSONAE_DEMO_USERS:-1,2,3,4,5,6,7,8}"
FIRST="${USERS%%,*}"

$P ingest movielens-100k --sample
$P index items
$P stats
$P profile --users "$USERS"
$P profile show "$FIRST"
# The whole mission on one screen: what personae recommends to that user next, and why.
$P recommend "$FIRST" --k 5
