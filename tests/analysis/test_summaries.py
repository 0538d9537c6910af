"""Phase summaries, baseline comparison and the one-line run summary."""

from __future__ import annotations

import math

import polars as pl
import pytest
from analysis_helpers import make_run, steps_run

from ponder_parse import schema
from ponder_parse.analysis.phases import phases
from ponder_parse.analysis.summaries import (
    COMPARED_METRICS,
    RUN_SUMMARY_SCHEMA,
    SUMMARY_SCHEMA,
    compare_phases,
    phase_summary,
    run_summary,
    summary_table,
)
from ponder_parse.run import Run


def test_phase_summary_columns_and_values() -> None:
    run = make_run()
    s = phase_summary(run)
    assert s.schema == pl.Schema(SUMMARY_SCHEMA)
    assert s["phase"].to_list() == ["force_warmup", "gate_learning", "economic"]
    assert s["steps"].to_list() == [800, 400, 1800]
    econ = s.filter(pl.col("phase") == "economic").row(0, named=True)
    st = run.steps.filter(pl.col("step") >= 1200)
    assert econ["lm_start"] == pytest.approx(st["lm_loss"][0])
    assert econ["lm_end"] == pytest.approx(st["lm_loss"][-1])
    assert econ["lm_change"] == pytest.approx(econ["lm_end"] - econ["lm_start"])
    assert econ["k_mean"] == pytest.approx(st["avg_k"].mean())
    assert econ["ctrl_err_abs_mean"] == pytest.approx(st["ctrl_err"].abs().mean())
    assert econ["lambda_p_end"] == pytest.approx(st["lambda_p"][-1])
    assert econ["grad_p95"] == pytest.approx(st["grad_norm"].quantile(0.95, "linear"))
    q = run.quality
    wins = (q["status"] == "ECONOMIC WIN").sum()
    policy = q["status"].is_in(["ECONOMIC WIN", "TAX ONLY"]).sum()
    assert econ["win_rate"] == pytest.approx(wins / policy)
    audits = q["status"].is_in(["AUDIT-POS", "AUDIT-NEG"]).sum()
    assert econ["audit_pos_rate"] == pytest.approx((q["status"] == "AUDIT-POS").sum() / audits)
    assert econ["confidence_rate"] == pytest.approx(q["confidence"].sum() / policy)
    assert econ["dominant_pattern"] == "healthy"
    # no quality lines before the ponder start; no pattern verdict in the force warmup
    early = s.filter(pl.col("phase") != "economic")
    assert early["win_rate"].null_count() == 2
    assert early["dominant_pattern"].to_list() == [None, "other"]


def test_phase_summary_skips_nan() -> None:
    run = make_run(pathology="nan")
    econ = phase_summary(run).filter(pl.col("phase") == "economic").row(0, named=True)
    assert math.isfinite(econ["lm_mean"]) and math.isfinite(econ["grad_mean"])
    assert econ["lm_end"] == pytest.approx(run.steps.filter(pl.col("step") == 2499)["lm_loss"][0])


def test_phase_summary_edge_cases() -> None:
    empty = phase_summary(Run(name="e"))
    assert empty.is_empty() and empty.schema == pl.Schema(SUMMARY_SCHEMA)
    short = phase_summary(make_run(n_steps=900))
    assert short["phase"].to_list() == ["force_warmup", "gate_learning"]
    lonely = phase_summary(steps_run(lm_loss=[3.0, 2.0]))
    assert lonely["steps"].to_list() == [2]
    assert lonely["lm_change"].to_list() == [-1.0]
    assert lonely["win_rate"].to_list() == [None]


def test_phase_summary_with_custom_phases() -> None:
    run = make_run()
    s = phase_summary(run, phases(run, {"ponder_start": 2000}))
    assert s.filter(pl.col("phase") == "economic")["steps"].to_list() == [1000]


def test_compare_phases() -> None:
    base, other = make_run("base"), make_run("other", pathology="lm_flat", seed=3)
    c = compare_phases([other, base], baseline="base")
    assert c["run"].to_list() == ["base", "other"] * 3
    assert c["is_baseline"].to_list() == [True, False] * 3
    baseline = c.filter(pl.col("is_baseline"))
    for m in COMPARED_METRICS:
        assert f"{m}_diff" in c.columns
        # The baseline's own difference: exactly 0 where the metric exists, null where the
        # phase has none (no policy steps before the economic phase, say).
        want = [None if v is None else 0.0 for v in baseline[m].to_list()]
        assert baseline[f"{m}_diff"].to_list() == want, m
    econ = c.filter(pl.col("phase") == "economic")
    b, o = econ.row(0, named=True), econ.row(1, named=True)
    assert o["lm_end_diff"] == pytest.approx(o["lm_end"] - b["lm_end"])
    assert o["lm_end_diff"] > 0.5  # the flat run ends far above the baseline


def test_compare_phases_missing_phase_and_overrides() -> None:
    base, short = make_run("base"), make_run("short", n_steps=1000)
    c = compare_phases([base, short], baseline="short")
    econ = c.filter(pl.col("phase") == "economic")
    assert econ["run"].to_list() == ["base"]
    assert econ["lm_end_diff"].to_list() == [None]
    c = compare_phases(
        [base, short], baseline="base", phase_overrides={"base": {"ponder_start": 2500}}
    )
    assert c.filter((pl.col("run") == "base") & (pl.col("phase") == "economic"))[
        "start"
    ].to_list() == [2500]


def test_compare_phases_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        compare_phases([make_run("a")], baseline="b")
    with pytest.raises(ValueError):
        compare_phases([make_run("a"), make_run("a")], baseline="a")


def test_run_summary() -> None:
    run = make_run(pathology="grad")
    s = run_summary(run)
    assert set(s) == set(RUN_SUMMARY_SCHEMA)
    assert s["steps"] == 3000 and s["last_step"] == 2999 and s["first_step"] == 0
    assert s["final_lm"] == pytest.approx(run.steps["lm_loss"][-1])
    assert s["best_lm"] == pytest.approx(run.steps["lm_loss"].min())
    assert s["k_mean_economic"] == pytest.approx(
        run.steps.filter(pl.col("step") >= 1200)["avg_k"].mean()
    )
    assert s["deadband_step"] == 1600
    assert (s["n_flags"], s["n_critical"]) == (1, 1)
    assert s["kmax"] == 4 and s["target_k"] == pytest.approx(1.3)


def test_run_summary_nan_tail_and_empty() -> None:
    s = run_summary(make_run(pathology="nan"))
    assert math.isfinite(s["final_lm"])
    e = run_summary(Run(name="e"))
    assert e["steps"] == 0 and e["final_lm"] is None and e["k_mean_economic"] is None
    assert e["n_flags"] == 0


def test_summary_table() -> None:
    runs = [make_run("a"), make_run("b", n_steps=500), Run(name="c")]
    t = summary_table(runs)
    assert t.schema == pl.Schema(RUN_SUMMARY_SCHEMA)
    assert t["run"].to_list() == ["a", "b", "c"]
    assert t["k_mean_economic"].to_list()[1:] == [None, None]


def test_quality_without_policy_lines() -> None:
    run = make_run()
    run.quality = schema.conform(
        run.quality.filter(pl.col("status").str.starts_with("AUDIT")), schema.QUALITY
    )
    econ = phase_summary(run).filter(pl.col("phase") == "economic").row(0, named=True)
    assert econ["win_rate"] is None and econ["confidence_rate"] is None
    audits = run.quality.filter(pl.col("step").is_between(econ["start"], econ["end"]))
    assert audits.height > 0
    assert econ["audit_pos_rate"] == pytest.approx((audits["status"] == "AUDIT-POS").mean())
