"""Phase summaries, baseline comparison and the one-line run summary."""

from __future__ import annotations

import math

import polars as pl
import pytest
from analysis_helpers import make_run, steps_run

from ponder_parse import schema
from ponder_parse.analysis import summaries
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
    # LM at the phase's ends: means of its first / last 100 logged steps; every step
    # figure leaves audit steps out
    st = run.steps.filter((pl.col("step") >= 1200) & ~pl.col("audit"))
    assert econ["lm_start"] == pytest.approx(st["lm_loss"].head(100).mean())
    assert econ["lm_end"] == pytest.approx(st["lm_loss"].tail(100).mean())
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
    # no quality lines before the ponder start; the force warmup's traces are forced,
    # a category of their own, not a gate verdict
    early = s.filter(pl.col("phase") != "economic")
    assert early["win_rate"].null_count() == 2
    assert early["dominant_pattern"].to_list() == ["forced", "other"]


def test_phase_summary_skips_nan() -> None:
    run = make_run(pathology="nan")
    econ = phase_summary(run).filter(pl.col("phase") == "economic").row(0, named=True)
    assert math.isfinite(econ["lm_mean"]) and math.isfinite(econ["grad_mean"])
    finite = run.steps.filter((pl.col("step") <= 2499) & ~pl.col("audit"))
    assert econ["lm_end"] == pytest.approx(finite["lm_loss"].tail(100).mean())


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
    assert c["run"].to_list() == ["other"] * 3 + ["base"] * 3  # in the order given
    assert c["phase"].to_list() == ["force_warmup", "gate_learning", "economic"] * 2
    assert c["is_baseline"].to_list() == [False] * 3 + [True] * 3
    assert c.schema["steps_diff"] == pl.Int64  # a difference of counts is a count
    baseline = c.filter(pl.col("is_baseline"))
    for m in COMPARED_METRICS:
        assert f"{m}_diff" in c.columns
        # The baseline's own difference: exactly 0 where the metric exists, null where the
        # phase has none (no policy steps before the economic phase, say).
        want = [None if v is None else 0.0 for v in baseline[m].to_list()]
        assert baseline[f"{m}_diff"].to_list() == want, m
    econ = c.filter(pl.col("phase") == "economic")
    o, b = econ.row(0, named=True), econ.row(1, named=True)
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


def test_compare_phases_reuses_given_summaries() -> None:
    base, other = make_run("base"), make_run("other", seed=3)
    given = phase_summary(other).with_columns(lm_end=pl.lit(100.0))
    c = compare_phases([base, other], baseline="base", summaries={"other": given})
    o = c.filter(pl.col("run") == "other")
    assert o["lm_end"].to_list() == [100.0] * 3
    b = c.filter(pl.col("run") == "base")
    assert (o["lm_end_diff"] - (100.0 - b["lm_end"])).abs().max() < 1e-9


def test_phase_table_orders_by_phase_then_name_and_toggles_diffs() -> None:
    runs = [make_run("zeta"), make_run("alpha", seed=2), make_run("short", n_steps=900)]
    c = compare_phases(runs, baseline="zeta")
    t = summaries.phase_table(c)
    assert list(zip(t["phase"], t["run"], strict=True)) == [
        ("force_warmup", "alpha"),
        ("force_warmup", "short"),
        ("force_warmup", "zeta"),
        ("gate_learning", "alpha"),
        ("gate_learning", "short"),
        ("gate_learning", "zeta"),
        ("economic", "alpha"),
        ("economic", "zeta"),
    ]
    assert t.columns == [*summaries.PHASE_TABLE_COLUMNS, *(f"{m}_diff" for m in COMPARED_METRICS)]
    assert "is_baseline" not in t.columns
    plain = summaries.phase_table(c, diffs=False)
    assert plain.columns == list(summaries.PHASE_TABLE_COLUMNS)
    assert len(set(plain.columns)) == len(plain.columns)


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
    policy = run.steps.filter(~pl.col("audit"))
    assert s["final_lm"] == pytest.approx(policy["lm_loss"].tail(100).mean())
    assert s["best_lm"] == pytest.approx(policy["lm_loss"].rolling_mean(100).min())
    assert s["k_mean_economic"] == pytest.approx(
        policy.filter(pl.col("step") >= 1200)["avg_k"].mean()
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


def test_summary_table_reuses_given_summaries() -> None:
    runs = [make_run("a"), make_run("b", n_steps=500)]
    given = run_summary(runs[0]) | {"final_lm": 123.0}
    t = summary_table(runs, summaries={"a": given})
    assert t["final_lm"][0] == 123.0  # not recomputed
    assert t["final_lm"][1] == pytest.approx(run_summary(runs[1])["final_lm"])


@pytest.mark.parametrize(
    ("steps", "critical", "warning", "expected"),
    [
        (0, 0, 0, "no data"),
        (0, 2, 0, "no data"),  # nothing to judge, whatever the counts say
        (10, 1, 3, "critical"),
        (10, 0, 3, "warning"),
        (10, 0, 0, "healthy"),
    ],
)
def test_health(steps: int, critical: int, warning: int, expected: str) -> None:
    s = {"steps": steps, "n_critical": critical, "n_warning": warning}
    assert summaries.health(s) == expected


def _tagged(run: Run, source: str = "folder name", **hp: object) -> Run:
    run.hparams = dict(hp)
    run.meta["hparam_sources"] = dict.fromkeys(hp, source) | {"params": "log"}
    return run


def test_runs_table_columns_health_and_swept_settings() -> None:
    runs = [
        _tagged(make_run("ok"), lr=0.001, seed=1, params=10),
        _tagged(make_run("bad", pathology="not_stopping"), lr=0.003, seed=1, params=20),
        _tagged(Run(name="empty"), lr=0.002, seed=1),
    ]
    t = summaries.runs_table(runs)
    # lr varies and comes from the folder; seed is the same; params only the log says
    assert t.columns == [
        "run",
        "health",
        "lr",
        *summaries.RUNS_TABLE_COLUMNS.values(),
        "red flags",
    ]
    assert t["health"].to_list() == ["healthy", "critical", "no data"]
    assert t["lr"].to_list() == ["0.001", "0.003", "0.002"]
    s = run_summary(runs[1])
    bad = t.row(1, named=True)
    assert bad["red flags"] == s["n_critical"] + s["n_warning"] > 0
    assert bad["final LM"] == pytest.approx(s["final_lm"])
    assert bad["last step"] == 2999


def test_a_setting_named_like_a_column_gets_its_own_header() -> None:
    """A sweep folder `variant=smollm,...` next to runs without it: the setting and the
    run's model variant are two columns, neither lost to a join suffix."""
    runs = [
        _tagged(make_run("a"), variant="smollm", seed=0),
        _tagged(make_run("b"), seed=0),
    ]
    t = summaries.runs_table(runs)
    assert t.columns[:4] == ["run", "health", "variant (setting)", "variant"]
    assert not [c for c in t.columns if c.endswith("_right")]
    assert t["variant (setting)"].to_list() == ["smollm", None]
    assert t["variant"].to_list() == ["model3b", "model3b"]


def test_runs_table_without_swept_settings_and_overview() -> None:
    runs = [make_run("a"), make_run("b", pathology="problems")]
    t = summaries.runs_table(runs)
    assert t.columns[:3] == ["run", "health", "variant"]
    assert summaries.runs_overview(t) == {
        "healthy": int((t["health"] == "healthy").sum()),
        "critical": int((t["health"] == "critical").sum()),
        "problems": runs[1].problems.height,
    }
    assert runs[1].problems.height > 0


def test_run_facts_formats_and_dashes() -> None:
    run = make_run(pathology="restarts")
    run.meta |= {"n_layers": 4, "kmax": 4, "target_k": 1.3}
    facts = dict(summaries.run_facts(run).iter_rows())
    assert facts["layers"] == "4"
    assert facts["TARGET_K"] == "1.3"
    assert facts["resumed at steps"] == "1250"
    run.meta["truncated"] = False
    assert dict(summaries.run_facts(run).iter_rows())["log still being written"] == "no"
    run.meta["truncated"] = True
    assert dict(summaries.run_facts(run).iter_rows())["log still being written"].startswith("yes")
    empty = dict(summaries.run_facts(Run(name="e")).iter_rows())
    assert set(empty.values()) == {"–"}


def test_line_kinds_text() -> None:
    run = Run(name="r", meta={"n_lines": 5, "line_kinds": {"step": 3, "lr_check": 2}})
    assert summaries.line_kinds_text(run) == "5 lines: 3 step, 2 lr check"
    assert summaries.line_kinds_text(Run(name="e")) is None
