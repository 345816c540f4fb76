# The two commands README.md gives. Both set up first (idempotent, fast the second time).
.PHONY: setup run test lint

setup:
	bash scripts/setup.sh

# The main job on the embedded defaults: ingest the bundled sample, index items, profile
# users with the local vLLM on CPU (packaged model), show a profile.
run: setup
	bash scripts/main_job.sh

# The whole suite, slow tests (real vLLM server, embeddings, Chroma) included.
test: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/pytest -q

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy
