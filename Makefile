# The two front-door commands: `make demo` (runs the benchmark) and `make test` (runs the test suite).
# Both create the environment (.venv, git-ignored) from requirements.lock on first use, with uv (the same versions as
# pip from the same lock, faster to fetch and unpack); pip, which reads pip.conf, if uv cannot reach the index.
# --compile-bytecode as pip does: without the .pyc files every process compiled torch & co. again, and the suite took
# 2914 s instead of ~1650 s (measured on a fresh clone).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

export PATH := $(CURDIR)/$(BIN):$(PATH)
# Offline by construction: nothing in the default pipeline may reach a model hub.
export HF_HUB_OFFLINE := 1
export DVC_NO_ANALYTICS := 1

.PHONY: env demo test lint lock clean-env

$(STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "iadbench needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade -c requirements.lock "pip>=24" uv
	$(BIN)/uv pip install --quiet --native-tls --compile-bytecode --python $(BIN)/python -c requirements.lock -e '.[dev]' \
		|| $(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

env: $(STAMP)

demo: env
	iadbench check
	dvc repro

# One pytest worker per CPU plus one (pytest-xdist), a test module at a time per worker (module fixtures build once):
# the end-to-end modules wait on DVC's queue polls and process starts, so a spare worker keeps the CPUs busy (not a
# clean A/B: on 2 cores a 3-worker run took 1471 s while other tests ran beside it, a 2-worker one 1521 s alone).
# TEST_JOBS=0 runs everything in this process.
TEST_JOBS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: env
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder

lint: env
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

lock: env
	{ head -n 2 requirements.lock; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^iadbench'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean-env:
	rm -rf $(VENV)
