#!/usr/bin/env bash
# Sets everything up (Kafka, PostgreSQL, Redis, the virtualenv) and runs lint and all tests.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k duplicate
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/stack.sh up
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/pytest "$@"
