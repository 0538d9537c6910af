"""The quality-status vocabulary every reader of RECURRENCE QUALITY lines shares."""

from __future__ import annotations

from ponder_parse import schema


def test_quality_statuses_split_into_policy_and_audit() -> None:
    assert schema.QUALITY_STATUSES == ("ECONOMIC WIN", "TAX ONLY", "AUDIT-POS", "AUDIT-NEG")
    assert schema.POLICY_STATUSES == (schema.ECONOMIC_WIN, schema.TAX_ONLY)
    assert schema.AUDIT_STATUSES == (schema.AUDIT_POS, schema.AUDIT_NEG)
    assert not set(schema.POLICY_STATUSES) & set(schema.AUDIT_STATUSES)
    assert all(s.startswith("AUDIT") for s in schema.AUDIT_STATUSES)
