"""The one rule for how a value reads in a table cell."""

from __future__ import annotations

from ponder_parse.formatting import MISSING, fmt


def test_fmt_numbers_missing_and_text() -> None:
    assert fmt(2.123456) == "2.123"
    assert fmt(2.123456, ".4f") == "2.1235"
    assert fmt(None) == MISSING == "–"
    assert fmt(None, missing="-") == "-"
    assert fmt("config.yaml", ".4f") == "config.yaml"  # a spec that does not apply
    assert fmt(0) == "0"  # zero is a value, not missing
