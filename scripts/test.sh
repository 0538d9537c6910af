#!/usr/bin/env bash
# Set up a virtual environment with the project and its test extras, then run lint and tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e ".[test]"
if ! command -v chromium >/dev/null 2>&1; then
    echo "chromium not found: the browser tests need Debian's chromium (apt-get install chromium)" >&2
    exit 1
fi
"$VENV/bin/ruff" check .
exec "$VENV/bin/python" -m pytest -q "$@"
