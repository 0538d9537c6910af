"""The table vocabulary every reader shares: quality statuses, scalars read out of columns."""

from __future__ import annotations

import polars as pl
import pytest

from ponder_parse import schema


def test_quality_statuses_split_into_policy_and_audit() -> None:
    assert schema.QUALITY_STATUSES == ("ECONOMIC WIN", "TAX ONLY", "AUDIT-POS", "AUDIT-NEG")
    assert schema.POLICY_STATUSES == (schema.ECONOMIC_WIN, schema.TAX_ONLY)
    assert schema.AUDIT_STATUSES == (schema.AUDIT_POS, schema.AUDIT_NEG)
    assert not set(schema.POLICY_STATUSES) & set(schema.AUDIT_STATUSES)
    assert all(s.startswith("AUDIT") for s in schema.AUDIT_STATUSES)


def test_scalars_from_numeric_columns_read_as_numbers() -> None:
    steps = pl.Series("step", [300, 100, 200])
    assert schema.as_int(steps.max()) == 300 and isinstance(schema.as_int(steps.max()), int)
    assert schema.as_float(steps.median()) == 200.0
    assert schema.as_int(pl.Series([2.0, 3.5]).min()) == 2


@pytest.mark.parametrize("value", [None, "12", [1, 2]])
def test_a_scalar_that_is_not_a_number_is_an_error(value: object) -> None:
    """An empty column's None must not quietly become a step 0 or a loss of 0.0."""
    with pytest.raises(TypeError):
        schema.as_int(value)
    with pytest.raises(TypeError):
        schema.as_float(value)
