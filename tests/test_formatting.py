"""The one rule for how a value reads in a table cell."""

from __future__ import annotations

import pytest

from ponder_parse.formatting import MISSING, edit_step, fmt


def test_fmt_numbers_missing_and_text() -> None:
    assert fmt(2.123456) == "2.123"
    assert fmt(2.123456, ".4f") == "2.1235"
    assert fmt(None) == MISSING == "–"
    assert fmt(None, missing="-") == "-"
    assert fmt("config.yaml", ".4f") == "config.yaml"  # a spec that does not apply
    assert fmt(0) == "0"  # zero is a value, not missing


def test_edit_step_is_a_tenth_of_the_order_of_magnitude() -> None:
    assert edit_step(1e-4) == pytest.approx(1e-5)
    assert edit_step(500) == 10.0
    assert edit_step(-2.5) == pytest.approx(0.1)
    assert edit_step(0) == 0.01 and edit_step(None) == 0.01 and edit_step(float("nan")) == 0.01
