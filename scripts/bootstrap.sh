#!/usr/bin/env bash
# Creates .venv and installs the project with its test tools; quick when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)" >&2
  "$PYTHON" -m venv .venv
fi
# Re-install only when pyproject.toml changed since the last install.
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing the project and its test tools" >&2
  # Build back-end warnings are noise here; the log is shown when the install fails.
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[test]'; } \
      >.venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The browser tests (tests/e2e/test_dashboard.py) drive Debian's chromium, headless, through
# its chromium-driver package: Selenium is given both paths and downloads nothing.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then as_root=(); else as_root=(sudo -n); fi
  if command -v apt-get >/dev/null 2>&1 && "${as_root[@]}" true 2>/dev/null; then
    echo "bootstrap: installing chromium and chromium-driver (apt) for the browser tests" >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q chromium chromium-driver >&2
  else
    echo "bootstrap: chromium and chromium-driver are missing and cannot be installed here" \
      "(no apt-get, or no root): the browser tests will fail until they are" >&2
  fi
fi
