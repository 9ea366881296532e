# pith — run `make help` for the targets.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
DATA ?= ./data

.DEFAULT_GOAL := help
.PHONY: help install system-deps run test test-fast lint format bench bench-small loadtest clean

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml setup.py kernels/native.c
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip >/dev/null
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[embed,bench,cluster,client,dev]'
	$(PIP) install -e clients/python
	touch $(STAMP)

install: $(STAMP) ## create .venv and install pith with its dependencies

system-deps: ## install the Debian packages tests and the demo use (wordnet-base, nginx)
	@dpkg -s wordnet-base >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wordnet-base)
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || (apt-get update -qq && apt-get install -y -qq nginx)

run: install system-deps ## start the server on $(DATA) with a demo collection (HOST, PORT)
	$(PY) -m server serve --data $(DATA) --host $(HOST) --port $(PORT) --demo

test: install system-deps ## run the whole test suite (unit, property, end-to-end, small benchmark)
	$(PY) -m pytest -q

test-fast: install ## run the tests not marked slow
	$(PY) -m pytest -q -m "not slow"

lint: install ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy core encoders index kernels embed server cluster clients/python/pith_client

format: install ## apply ruff formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: install system-deps ## full benchmark on wordnet-minilm and wordnet-minilm-tokens (builds and caches the datasets)
	$(PY) -m bench --json bench/results/latest.json

bench-small: install ## a small synthetic benchmark run
	$(PY) -m bench --dataset synthetic

loadtest: install ## long reliability runs (200 kill -9 cycles, 5,000 fuzzed requests) and the locust mixed load + RSS soak
	PITH_CRASH_CYCLES=200 PITH_FUZZ_REQUESTS=5000 $(PY) -m pytest -q -s -p no:cacheprovider \
		tests/reliability/test_crash_loop.py tests/reliability/test_fuzz_openapi.py
	$(PY) -m loadtests.mixed --duration-s 60 --users 16
	$(PY) -m loadtests.mixed --duration-s 600 --users 16 --soak

clean: ## remove the virtualenv and caches (not the dataset cache in ~/.cache/pith)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
