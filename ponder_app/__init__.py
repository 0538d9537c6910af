"""Streamlit views over ponder_parse: charts, shared state and page helpers."""
