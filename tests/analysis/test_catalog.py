"""Metric catalog: complete over the schemas, consistent with the guide."""

from __future__ import annotations

import polars as pl
import pytest

from ponder_parse import schema
from ponder_parse.analysis import catalog

KEYS = {"step", "layer", "segment"}
# Every format spec the catalog uses, and what it makes of 1.5.
FORMATTED_1_5 = {
    "+.3f": "+1.500",
    ".1%": "150.0%",
    ".2%": "150.00%",
    ".2e": "1.50e+00",
    ".2f": "1.50",
    ".3f": "1.500",
    ".4f": "1.5000",
    ".6f": "1.500000",
    "d": "1.5",
}


@pytest.mark.parametrize(
    ("table", "columns"),
    [("steps", schema.STEPS), ("layers", schema.LAYERS), ("quality", schema.QUALITY)],
)
def test_every_column_is_described(table: str, columns: dict) -> None:
    described = {m.column for m in catalog.metrics_for(table)}
    assert described == set(columns) - KEYS


def test_metrics_are_well_formed() -> None:
    keys = [m.key for m in catalog.METRICS]
    assert len(keys) == len(set(keys))
    for m in catalog.METRICS:
        assert m.table in catalog.TABLE_LEVELS
        assert m.level == catalog.TABLE_LEVELS[m.table]
        assert m.label and m.meaning and m.unit and m.group
        if m.healthy_low is not None and m.healthy_high is not None:
            assert m.healthy_low <= m.healthy_high
        if m.numeric:
            # The value as the trainer prints it; a count shown a fraction falls back to
            # plain text rather than raising.
            assert m.format(1.5) == FORMATTED_1_5[m.fmt], m.name
            assert m.format(None) == "–"


def test_guide_values() -> None:
    grad = catalog.metric("grad_norm")
    # GRAD is printed before clipping: its level is the model's, no fixed healthy band
    assert (grad.label, grad.healthy_low, grad.healthy_high) == ("GRAD", None, None)
    assert "before clipping" in grad.meaning and "2.5" in grad.healthy_text
    assert grad.higher_is_better is False
    assert catalog.metric("p_near_clamp").unit == "fraction"
    assert catalog.metric("aux_loss").healthy_high is None
    assert "0.3–0.8" in catalog.metric("aux_loss").healthy_text
    assert catalog.metric("lm_loss").label == "LM"
    assert catalog.metric("lambda_p").label == "λ_p"
    assert catalog.metric("tok_per_sec").higher_is_better is True
    assert catalog.metric("delta_ce", "quality").higher_is_better is True
    for col in ("lr", "lambda_p", "total_ponder"):
        assert catalog.metric(col).log_scale
    assert catalog.metric("lambda_p", "layers").log_scale
    assert not catalog.metric("lm_loss").log_scale


def test_levels_and_groups() -> None:
    lv = catalog.levels()
    assert list(lv) == [1, 2, 3, 4]
    assert {m.table for m in lv[1]} == {"steps"}
    assert {m.table for m in lv[2]} == {"layers"}
    assert {m.table for m in lv[4]} == {"quality"}
    groups = catalog.groups()
    assert "Step line · Losses" in groups and "Step line · Controller" in groups
    assert "Step line · Throughput" in groups
    flat = [m for ms in groups.values() for m in ms]
    assert all(m.numeric for m in flat)
    assert "deadband_active" not in {m.column for m in flat}


def test_lookup_errors_and_loose_find() -> None:
    with pytest.raises(KeyError, match="steps"):
        catalog.metric("nope")
    assert catalog.find("lambda_p").table == "steps"
    assert catalog.find("p_mean").table == "layers"
    assert catalog.find("nope") is None


def test_reference_lines() -> None:
    # thresholds are the red-flag rules' (red_flags.reference_lines), not the catalog's
    assert catalog.reference_lines("grad_norm") == []
    assert catalog.reference_lines("avg_gap") == [(0.0, "no gap")]
    assert [v for v, _ in catalog.reference_lines("pl_lm")] == [0.0, 0.05]
    assert catalog.reference_lines("ctrl_err") == [(0.0, "on target")]
    assert [v for v, _ in catalog.reference_lines("lambda_p")] == [1e-4, 5e-2]
    assert catalog.reference_lines("avg_k") == []
    assert catalog.reference_lines("avg_k", target_k=2.4) == [(2.4, "TARGET_K 2.40")]
    assert [v for v, _ in catalog.reference_lines("delta_ce", "quality")] == [0.0]


def test_formatting_and_help() -> None:
    pnr = catalog.metric("p_near_clamp")
    assert pnr.format(0.032) == "3.2%"
    assert pnr.format(None) == "–"
    assert catalog.metric("k_exec", "layers").format(2.0) == "2.0"
    assert "Healthy: low" in pnr.help() and "20" not in pnr.help()  # the rule's number
    from ponder_parse.analysis import red_flags

    assert "red flag: > 20%" in red_flags.metric_help(pnr)
    assert catalog.option_label(catalog.metric("lm_loss")) == "LM (lm_loss)"


def test_column_counts_count_values_and_non_zeros() -> None:
    """What pickers and flat notes are decided from: a null is no value, NaN is a value but
    not a non-zero one, text columns are not counted."""
    from ponder_parse.run import count_columns

    df = pl.DataFrame(
        {
            "step": [1, 2, 3, 4],
            "a": [0.0, None, float("nan"), 2.0],
            "b": [None, None, None, None],
            "label": ["x", "y", "z", "w"],
        },
        schema={"step": pl.Int64, "a": pl.Float64, "b": pl.Float64, "label": pl.String},
    )
    c = count_columns(df)
    assert c == {
        "rows": 4,
        "values": {"step": 4, "a": 3, "b": 0},
        "nonzero": {"step": 4, "a": 1, "b": 0},
    }
    assert count_columns(df.clear())["rows"] == 0
