#!/usr/bin/env bash
# Set up a virtual environment with the project and its test extras, then run lint and tests.
set -euo pipefail
. "$(dirname "$0")/_venv.sh" -e ".[test]"
if ! command -v chromium >/dev/null 2>&1; then
    echo "chromium not found: the browser tests need Debian's chromium (apt-get install chromium)" >&2
    exit 1
fi
"$VENV/bin/ruff" check .
exec "$VENV/bin/python" -m pytest -q "$@"
