# The two set-up commands (see README.md): `make up` runs the platform, `make test` runs
# every test. Both create the environment first and install what is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, else a private copy installed from PyPI into .tools/.
UV ?= $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
APPRT := $(VENV)/bin/apprt
PORT ?= 8080
DATA_DIR ?= .apprt

.PHONY: help deps env up test lint typecheck bench clean

help:
	@echo "make up     - start the platform on http://127.0.0.1:$(PORT) (data in $(DATA_DIR)/)"
	@echo "make test   - run every test (lint, types, pytest)"
	@echo "make bench  - run the benchmarks, results in bench/results/"

# System packages the platform and its tests use. Installed when run as root;
# otherwise the script says what to install and stops.
deps:
	@scripts/ensure-system-deps

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv

env: deps $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python python3
	@touch $@

# The platform in the foreground, the demo (examples published and installed into the
# organization "demo") seeded once it answers; URLs and logins are printed.
up: env
	@scripts/up $(PORT) $(DATA_DIR)

lint: env
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

typecheck: env
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/pytest

bench: env
	$(PY) -m bench

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
