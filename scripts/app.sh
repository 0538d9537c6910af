#!/usr/bin/env bash
# Set up a virtual environment with the project and open the app (on sample_runs/ unless told otherwise).
set -euo pipefail
. "$(dirname "$0")/_venv.sh" -e .
# `python -m ponder_app` is `streamlit run app.py` with the first page's imports and parsing
# started as soon as the server listens (see ponder_app/warm.py).
exec "$VENV/bin/python" -m ponder_app "$@"
