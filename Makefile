# troupe: `make demo` and `make test` work on a fresh clone with only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test lint typecheck bench install dev clean

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

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .troupe .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
