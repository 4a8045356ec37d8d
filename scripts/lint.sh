#!/usr/bin/env bash
# ruff (lint + format check) and mypy --strict over the services, the cluster tool and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
.venv/bin/python -m mypy
