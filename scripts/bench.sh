#!/usr/bin/env bash
# The benchmark of issue #5: stack up, project installed with the bench extra, then one run.
# Arguments go to `python -m bench.run` (--quick, --users, --courses, --events, --seed, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/stack.sh up
scripts/bootstrap.sh
# The bench extra (Quix Streams, pyinstrument, py-spy) is not part of the test set-up.
if ! .venv/bin/python -c "import quixstreams, pyinstrument" 2>/dev/null || [ ! -x .venv/bin/py-spy ]; then
  .venv/bin/pip install -q -e '.[test,bench]'
fi
exec .venv/bin/python -m bench.run "$@"
