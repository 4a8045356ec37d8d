#!/usr/bin/env bash
# What CI runs: lint and type checks, then pytest (fast unit tests first, then the tests that
# start a private cluster: redis shards, MariaDB, nginx and the services, on offset ports).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/lint.sh
# The slowest tests are listed at the end, to keep the whole run within its budget (~12 min).
exec .venv/bin/python -m pytest --durations=25 "$@"
