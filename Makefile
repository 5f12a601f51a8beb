# tailops — two commands: `make run` serves, `make test` installs everything and tests.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY_VERSION := $(shell cat .python-version)
# pyenv's python for the pinned version, else a python$(PY_VERSION) on PATH.
PYTHON ?= $(shell PYENV_VERSION=$(PY_VERSION) pyenv which python3 2>/dev/null || command -v python$(PY_VERSION))
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= ./.tailops-data
HOST ?= 127.0.0.1
PORT ?= 8787
PYTEST_ARGS ?=

.PHONY: help run test lint bench venv testbed images conformance-tools molecule verify-catalog clean

help:
	@echo "make run    serve tailops on http://$(HOST):$(PORT)/mcp (data in $(DATA_DIR))"
	@echo "make test   install everything the tests need, then lint and run all tests"
	@echo "make bench  run the benchmarks in tests/bench and print a table"
	@echo "make lint   ruff + mypy"
	@echo "make molecule  every role's molecule scenario (part of make test)"

$(STAMP): pyproject.toml .python-version
	@test -n "$(PYTHON)" || { echo "Python $(PY_VERSION) not found (pyenv or python$(PY_VERSION) on PATH)" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v 'is ignored' || true
	$(BIN)/python -m pip install -q -e '.[test]' 2>&1 | grep -v 'is ignored' || true
	@$(BIN)/python -c 'import tailops, ansible_runner, mcp' || { echo "venv install failed" >&2; exit 1; }
	@touch $@

venv: $(STAMP)

run: $(STAMP)
	@mkdir -p $(DATA_DIR) && chmod 700 $(DATA_DIR)
	@test -f $(DATA_DIR)/keys/token.pub || TAILOPS_SERVER__DATA_DIR=$(DATA_DIR) $(BIN)/tailops token keygen
	@echo "Mint a token for a client (in another shell):"
	@echo "  TAILOPS_SERVER__DATA_DIR=$(DATA_DIR) $(BIN)/tailops token mint --subject me --scopes readonly --ttl 24h"
	TAILOPS_SERVER__DATA_DIR=$(DATA_DIR) $(BIN)/tailops serve --transport http --host $(HOST) --port $(PORT)

testbed:
	scripts/testbed/setup-host.sh

images: testbed
	scripts/testbed/build-images.sh

conformance-tools:
	scripts/testbed/setup-node-tools.sh

lint: $(STAMP)
	$(BIN)/ruff check tailops tests scripts
	$(BIN)/ruff format --check tailops tests scripts
	$(BIN)/mypy

verify-catalog: $(STAMP)
	$(BIN)/tailops playbooks verify

molecule: $(STAMP) images
	scripts/molecule-all.sh

# pytest and the molecule scenarios run side by side (scripts/run-tests.sh says why);
# TAILOPS_TEST_SERIAL=1 runs them one after the other.
test: $(STAMP) images conformance-tools
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory verify-catalog
	scripts/run-tests.sh $(PYTEST_ARGS)

bench: $(STAMP) images
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
