#!/usr/bin/env bash
# What CI runs: lint and type checks, then pytest in two runs: the pure tests first (`-m "not
# cluster"`, what `make test-fast` runs: a failure there stops before the slow part), then the
# tests that start a private cluster: redis shards, MariaDB, nginx and the services, on offset
# ports. Arguments (paths, -k, -x ...) go to both runs; a run that selects nothing is no failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/lint.sh

pytest() {
  local rc=0
  .venv/bin/python -m pytest "$@" || rc=$?
  # 5: no test selected (e.g. a path with pure tests only, in the cluster run).
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
}
pytest -m "not cluster" -q "$@"
# The slowest tests are listed at the end, to keep the whole run within its budget (~12 min).
pytest -m cluster --durations=25 "$@"
