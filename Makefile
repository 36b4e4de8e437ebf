# GDPR-compliant real-time analytics platform. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.DEFAULT_GOAL := help
.PHONY: help install up down status demo test test-unit lint format docs clean bench prometheus

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed ## create .venv and install everything (runtime, tests, lint)

up: install ## start the embedded stack (Tansu + PostgreSQL + a local SMTP server writing to .local/mail/) and print its URLs
	$(PY) -m devstack up

down: install ## stop the embedded stack (its PostgreSQL data stays in .local/)
	$(PY) -m devstack down

status: install ## is the embedded stack running, and where
	$(PY) -m devstack status

demo: install ## the whole pipeline end to end on the embedded stack, then both reports
	$(PY) -m demo

# Most of the suite waits on services (consumer group joins, outages, processes starting), so
# workers, each starting its own isolated stack, pay even on two cores: 2,031 tests took 11.4
# minutes in two workers and 9.4 in three (1,365 tests once took 11.5 in one, 7.3 in two).
# TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
test: install ## the whole test suite in TEST_WORKERS workers (4), each with its own isolated stack on free ports
	$(PY) -m pytest -n $(TEST_WORKERS)

test-unit: install ## only the tests that need no services
	$(PY) -m pytest tests/unit

lint: install ## ruff (with security rules) and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

docs: install ## write docs/configuration.md from the settings models (core/config.py)
	$(PY) -m core.settings_doc

format: install ## apply ruff's formatting and safe fixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean: ## remove the virtual environment and caches (not .local/ data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

SCALE ?= small
bench: install ## benchmarks with same-run baselines (SCALE=small|large), the consumers scaled out (SCALE=scaleout), costs over 400 days of history (SCALE=history); results in bench/results/ and docs/benchmarks.md
	$(PY) -m bench.run --scale $(SCALE)

prometheus: ## Prometheus with the alert rules, scraping the services on this machine (Debian: apt-get install prometheus); data in .local/prometheus
	prometheus --config.file=ops/prometheus/prometheus.yml --storage.tsdb.path=.local/prometheus
