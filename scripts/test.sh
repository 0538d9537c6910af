#!/usr/bin/env bash
# Set up everything the tests need (a virtual environment with the project and its test
# extras; Debian's chromium for the browser tests), then check formatting, lint, types and
# run the tests. Extra arguments go to pytest (e.g. `-m "not browser"` for the quick tier).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ]; then SUDO=""; else SUDO="sudo"; fi
    echo "installing Debian's chromium for the browser tests..." >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq chromium >/dev/null
fi
. "$(dirname "$0")/_venv.sh" -e ".[test]"
"$VENV/bin/ruff" format --check .
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
exec "$VENV/bin/python" -m pytest -q "$@"
