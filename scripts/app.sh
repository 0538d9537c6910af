#!/usr/bin/env bash
# Set up a virtual environment with the project and open the app (on sample_runs/ unless told otherwise).
set -euo pipefail
. "$(dirname "$0")/_venv.sh" -e .
exec "$VENV/bin/python" -m streamlit run app.py "$@"
