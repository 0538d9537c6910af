#!/usr/bin/env bash
# Set up a virtual environment with the project and open the app (on sample_runs/ unless told otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e .
exec "$VENV/bin/python" -m streamlit run app.py "$@"
