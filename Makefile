# Quartet: every target is a thin wrapper over one command. `make help` lists them.
SHELL := /bin/bash
PY := .venv/bin/python
STAMP := .venv/.quartet-installed

.DEFAULT_GOAL := help
.PHONY: help install run up down status clean test test-fast lint format generate loadtest bench overload image chaos monitor

help: ## this list
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install Debian packages (as root, only missing ones) and the pinned virtualenv
	@scripts/bootstrap.sh

run: install ## the whole local cluster in the foreground; Ctrl-C stops it all
	@$(PY) -m cluster run

up: install ## the local cluster, detached; returns once every service is ready
	@$(PY) -m cluster up

down: ## stop what `make up` started, gracefully
	@if [ -x $(PY) ]; then $(PY) -m cluster down; fi

status: ## what is running
	@$(PY) -m cluster status

clean: ## stop, then delete all local cluster state (.run/: data, logs, secrets)
	@if [ -x $(PY) ]; then $(PY) -m cluster clean; else rm -rf .run; fi

test: install ## lint, type checks and every test (starts its own cluster on other ports)
	@scripts/test.sh

test-fast: install ## the pure tests only (no servers, no lint; under 30 s): pytest -m "not cluster"
	@$(PY) -m pytest -m "not cluster" -q

image: install ## build (or reuse) the service and mtail images with Docker; prints tags, ids, sizes, bases
	@$(PY) -m cluster.image

lint: install ## ruff and mypy
	@scripts/lint.sh

format: install ## apply ruff's formatting and safe fixes
	@$(PY) -m ruff format . && $(PY) -m ruff check --fix .

monitor: install ## the cluster at a glance from Prometheus, refreshed every 2 s (ARGS=--once, --prometheus URL)
	@$(PY) -m cluster.monitor $(ARGS)

generate: install ## rewrite the files generated from services/common/description.py (CHECK=1: only list stale ones)
	@$(PY) -m cluster.generate $(if $(CHECK),--check)

# Load profiles and benchmarks, against the running local cluster (`make up`).
PROFILE ?= 100
LOADTEST_OUT := loadtest/results/$(PROFILE)-$(shell date +%Y%m%d-%H%M%S)

loadtest: install ## a locust profile, headless (PROFILE=smoke|10|100|1000); CSV + HTML in loadtest/results/
	@ADMIN_TOKEN=$${ADMIN_TOKEN:-$$(cat .run/secrets/admin_token)} LOCUST_ADMIN_HOST=$${LOCUST_ADMIN_HOST:-http://127.0.0.1:8081} $(PY) -m locust -f loadtest/locustfile.py --config loadtest/profiles/$(PROFILE).conf --csv $(LOADTEST_OUT)/locust --html $(LOADTEST_OUT)/report.html

bench: install ## wrk over every hot endpoint vs the trivial one; JSON + PNG in bench/results/ (BENCH_ARGS=...)
	@$(PY) bench/run.py $(BENCH_ARGS)

overload: install ## one endpoint at 2x its measured capacity: admitted, refused, errors (OVERLOAD_ARGS=...)
	@$(PY) bench/overload.py $(OVERLOAD_ARGS)

CHAOS_ARGS ?=
chaos: install ## faults under mixed load against the running cluster, then its invariants (CHAOS_ARGS=--duration 60)
	@$(PY) -m cluster.chaos $(CHAOS_ARGS)
