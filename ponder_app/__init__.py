"""Streamlit views over ponder_parse: charts, shared state and page helpers.

Importing the package itself imports nothing, so `python -m ponder_app` starts the server
at once; the frame (`app.py`) imports `ponder_app.preload` first.
"""
