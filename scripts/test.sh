#!/usr/bin/env bash
# Sets everything up (Kafka, PostgreSQL, Redis, the virtualenv) and runs lint and the tests.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -k duplicate. The tiers:
# tests/unit (no services), tests/integration (the real stack, in-process), tests/e2e (the
# service as subprocesses, and the fault tests that stop and start the stack's services).
set -euo pipefail
cd "$(dirname "$0")/.."

# Whether the pytest arguments may reach a test that needs the stack: yes unless they name
# test paths and every one is under tests/unit. A word that is not a path (an option's value,
# a -k expression) says nothing; anything unclear counts as needing it.
needs_stack() {
  local unit arg path named=0
  unit="$(realpath -m tests/unit)"
  for arg in "$@"; do
    [[ "$arg" == -* ]] && continue
    path="${arg%%::*}"
    [ -e "$path" ] || continue
    named=1
    case "$(realpath -m -- "$path")/" in
      "$unit"/*) ;;
      *) return 0 ;;
    esac
  done
  [ "$named" -eq 0 ]
}

if needs_stack "$@"; then
  scripts/stack.sh up
fi
scripts/bootstrap.sh

# Lint, whatever the tests asked for.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/lint-imports
# docs/openapi.json and docs/asyncapi.json must be what the code generates.
.venv/bin/progress contract --check

.venv/bin/pytest "$@"
