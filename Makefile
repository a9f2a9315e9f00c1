# troupe: `make demo` and `make test` work on a fresh clone with only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test chaos lint typecheck bench install dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e '.[dev,bench]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/troupe demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# Branch coverage of the in-process suite (actors started as subprocesses are not
# measured): an overall floor here, 100 % on protocols/ and actors/*/state.py checked
# by tests/coverage_floor.py, which prints nothing when the floor holds.
PYTEST_COV := --cov=actors --cov=protocols --cov-branch --cov-report=term:skip-covered \
	--cov-fail-under=85

test: lint typecheck
	$(BIN)/pytest $(PYTEST_COV)
	@$(BIN)/python tests/coverage_floor.py

# The full kill-everything run: >= 1,000 workflows, >= 200 SIGKILLs of every process
# kind (actors, nats-server, the supervisor), then the checker's verdict table.
# (300 workflows on a three-node cluster with random node SIGKILLs run in `make test`.)
# A small configuration of the same suite runs in `make test` (tests/chaos).
# Override e.g. `make chaos CHAOS_ARGS="--workflows 200 --kills 40"`.
CHAOS_ARGS ?= --workflows 1000 --kills 200
chaos: $(VENV)/.installed-dev
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .troupe .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
