#!/usr/bin/env bash
# The main job on the embedded defaults: bundled MovieLens-100K sample, embedded Chroma,
# local vLLM on CPU with the packaged default model (Qwen2.5-Coder-1.5B-Instruct). Safe to
# rerun: ingest skips duplicates, the index re-embeds only changed items, and profiles of
# unchanged histories are skipped.
#
# One local vLLM server serves the whole job (starting one costs about a minute on a 2-core
# CPU; each command starting its own paid it twice). It starts first and loads while the
# learned ranker is fitted, and it is stopped when the job ends, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
P=.venv/bin/personae
USERS="${PERSONAE_DEMO_USERS:-1,2,3,4,5,6,7,8}"
FIRST="${USERS%%,*}"
PORT="${PERSONAE_DEMO_PORT:-8765}"
LOG="${TMPDIR:-/tmp}/personae-main-job-server.log"
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

if [ -n "${PERSONAE_BASE_URL:-}" ]; then
  step "using the server at $PERSONAE_BASE_URL"
else
  step "starting a local vLLM server on port $PORT (log: $LOG)"
  setsid $P serve --port "$PORT" > "$LOG" 2>&1 &
  SERVER=$!
  stop_server() {
    kill -INT -- "-$SERVER" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$SERVER" 2>/dev/null || return 0; sleep 1; done
    kill -KILL -- "-$SERVER" 2>/dev/null || true
  }
  trap stop_server EXIT
  export PERSONAE_BASE_URL="http://127.0.0.1:$PORT/v1"
fi

step "ingest the bundled sample"
$P ingest movielens-100k --sample
step "index the items"
$P index items
$P stats
# The demo caps the sequential model's training at 15 epochs, so the whole job stays under 10
# minutes: early stopping takes it to about 55-70 epochs on ML-100K (about 5 minutes on 2 cores
# for the validation fit, then the serving fit for the chosen count); by epoch 15 it reaches
# about 10.6 of its 11.6 validation NDCG@10 (full sort). `personae rank fit` trains it fully.
step "fit the learned ranker (the order recommend shows)"
$P rank fit --epochs "${PERSONAE_DEMO_EPOCHS:-15}"
step "wait for the LLM server"
.venv/bin/python scripts/wait_server.py "$PERSONAE_BASE_URL" --log "$LOG"
step "profile users $USERS"
$P profile --users "$USERS"
$P profile show "$FIRST"
# The whole mission on one screen: what personae recommends to that user next, and why.
step "recommend"
$P recommend "$FIRST" --k 5
