"""Red flags on runs built with the figures of real model3b logs (`real_style`): a normal
real run is not critical, each real pathology raises its own flag at a severity that
makes a broken run stand out; the sweep-relative rules and the editable settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from analysis_helpers import make_run
from real_style import real_run

from ponder_parse.analysis import red_flags as F
from ponder_parse.files.loader import load_run
from ponder_parse.run import Run

ROOT = Path(__file__).resolve().parent.parent.parent

NORMAL: dict[str, dict[str, Any]] = {
    "target 2.40": dict(target_k=2.40),
    "target 1.30": dict(target_k=1.30, seed=2),
    "2 001 steps": dict(n_steps=2001, seed=1),
    "934 steps at D=768": dict(n_steps=934, seed=3, dt_ms=(-1800.0, 3300.0)),
}


def _by_rule(f: pl.DataFrame) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in f.iter_rows(named=True)}


@pytest.fixture(scope="module")
def normal() -> dict[str, pl.DataFrame]:
    return {k: F.red_flags(real_run(k, **kw)) for k, kw in NORMAL.items()}


@pytest.mark.parametrize("name", list(NORMAL))
def test_a_normal_real_run_is_not_critical(normal: dict[str, pl.DataFrame], name: str) -> None:
    f = normal[name]
    assert "critical" not in set(f["severity"]), f.rows()
    # pre-clip GRAD at 2.5 and AUX at 0.3–0.8 are this trainer's normal
    assert not {"grad_sustained", "aux_high"} & set(f["rule"])


def test_a_broken_real_run_stands_out() -> None:
    expected = {
        "diverged": "grad_sustained",
        "frozen": "gate_frozen",
        "collapsed": "gate_not_stopping",
    }
    for pathology, rule in expected.items():
        f = _by_rule(F.red_flags(real_run(pathology, pathology=pathology, seed=4)))
        assert f[rule]["severity"] == "critical", (pathology, f)


def test_grad_finding_says_how_many_updates_were_clipped() -> None:
    row = _by_rule(F.red_flags(real_run(pathology="diverged", seed=4)))["grad_sustained"]
    assert row["first_step"] == 2500
    assert "100% of all updates clipped (GRAD > 1" in str(row["evidence"])
    # a textbook run's clipped share is small
    text = _by_rule(F.red_flags(make_run(pathology="grad")))["grad_sustained"]["evidence"]
    assert "3% of all updates clipped" in str(text)


def test_aux_fires_well_above_the_real_level() -> None:
    row = _by_rule(F.red_flags(real_run(pathology="aux", seed=4)))["aux_high"]
    assert (row["severity"], row["first_step"]) == ("warning", 2000)
    assert "running level" in F.RULES["aux_high"].action and "0.3–0.8" in F.RULES["aux_high"].action


def test_lambda_at_its_floor_under_an_unreachable_target(normal: dict[str, pl.DataFrame]) -> None:
    row = _by_rule(normal["target 2.40"])["lambda_pinned"]
    action = str(row["action"])
    assert "under-ponders even when compute is nearly free" in action
    assert "ponder cost ≈ 0.0% of LM" in action and "Lower TARGET_K" in action
    assert "raise LAMBDA_MAX" not in action and "lower LAMBDA_MIN" not in action.lower().replace(
        "a lower lambda_min would change nothing", ""
    )
    assert "vs TARGET_K 2.40" in str(row["evidence"])
    assert "lambda_pinned" not in set(normal["target 1.30"]["rule"])  # λ_p rises there


def test_lambda_at_its_ceiling_keeps_the_ceiling_advice() -> None:
    row = _by_rule(F.red_flags(make_run(pathology="lambda_max")))["lambda_pinned"]
    assert row["action"] == F.RULES["lambda_pinned"].action
    assert "raise LAMBDA_MAX" in str(row["action"]) and "LAMBDA_MIN" not in str(row["action"])


def test_gate_uniform(normal: dict[str, pl.DataFrame]) -> None:
    row = _by_rule(normal["target 2.40"])["gate_uniform"]
    assert row["severity"] == "warning" and 0.85 <= float(row["value"]) <= 0.95
    assert "tok avg = p95 = k_exec" in str(row["evidence"])
    # a gate that treats tokens differently is not flagged
    run = real_run()
    run.layers = run.layers.with_columns(
        p_std=pl.lit(0.12), avg_exec_token=pl.col("p95_exec_token") - 0.4
    )
    assert "gate_uniform" not in set(F.red_flags(run)["rule"])


def test_gate_frozen_in_gate_learning_only_is_a_warning(normal: dict[str, pl.DataFrame]) -> None:
    row = _by_rule(normal["target 2.40"])["gate_frozen"]
    assert (row["severity"], row["first_step"], row["last_step"]) == ("warning", 800, 1190)
    assert "moved later" in str(row["evidence"])
    short = _by_rule(normal["934 steps at D=768"])["gate_frozen"]
    assert short["severity"] == "warning" and "ends before the economic" in str(short["evidence"])


def test_gate_frozen_through_the_economic_phase_is_critical() -> None:
    row = _by_rule(F.red_flags(real_run(pathology="frozen", seed=4)))["gate_frozen"]
    assert row["severity"] == "critical" and "still frozen" in str(row["evidence"])
    stuck = load_run(ROOT / "sample_runs" / "gate=stuck,seed=0")
    assert _by_rule(F.red_flags(stuck))["gate_frozen"]["severity"] == "critical"


def test_metric_flat(normal: dict[str, pl.DataFrame]) -> None:
    row = _by_rule(normal["target 2.40"])["metric_flat"]
    assert row["severity"] == "info" and row["value"] == 4
    assert "MTP" in str(row["evidence"]) and "ent, d_rel, Δp" in str(row["evidence"])
    # P_NR at 0.0% throughout is a measured share, not a missing metric
    assert "P_NR" not in str(row["evidence"])
    assert "metric_flat" not in set(F.red_flags(make_run())["rule"])


def test_a_slowdown_from_deeper_steps_is_not_memory(normal: dict[str, pl.DataFrame]) -> None:
    f = _by_rule(normal["934 steps at D=768"])
    assert "throughput_low" not in f
    row = f["throughput_depth"]
    assert (row["severity"], row["first_step"]) == ("info", 800)
    assert "AVGS exec is 4.00" in str(row["evidence"]) and "not memory" in str(row["evidence"])
    # swapping at unchanged depth still is
    mem = _by_rule(F.red_flags(real_run(pathology="memory", seed=4)))
    assert mem["throughput_low"]["first_step"] == 2500 and "throughput_depth" not in mem


def test_textbook_slowdown_is_still_memory_pressure() -> None:
    f = _by_rule(F.red_flags(make_run(pathology="slow")))
    assert "throughput_low" in f and "throughput_depth" not in f


# ---- relative to the sweep


def _seeds(n: int) -> list[Run]:
    return [real_run(f"s{i}", seed=10 + i) for i in range(n)]


def _shift_lm(run: Run, by: float) -> Run:
    run.steps = run.steps.with_columns(lm_loss=pl.col("lm_loss") + by)
    return run


def test_a_run_far_from_its_peers_is_flagged() -> None:
    runs = [*_seeds(4), _shift_lm(real_run("worse", seed=20), 0.5)]
    f = F.sweep_red_flags(runs)
    lm = f.filter(pl.col("rule") == "sweep_lm")
    assert lm["run"].to_list() == ["worse"]
    row = lm.row(0, named=True)
    assert row["severity"] == "warning" and row["value"] > 3.5
    assert "median" in row["evidence"] and "5 shown runs" in row["evidence"]
    assert row["last_step"] == 3697 and row["n_steps"] == 100
    assert F.peers_text(f).row(0) == ("worse", f"final LM higher (z {row['value']:+.1f})")


def test_better_than_its_peers_is_info() -> None:
    runs = [*_seeds(4), _shift_lm(real_run("better", seed=20), -0.5)]
    row = F.sweep_red_flags(runs).filter(pl.col("rule") == "sweep_lm").row(0, named=True)
    assert (row["run"], row["severity"]) == ("better", "info")


def test_too_few_runs_or_too_small_a_difference() -> None:
    assert F.sweep_red_flags([*_seeds(2), _shift_lm(real_run("w", seed=20), 0.5)]).is_empty()
    close = [*_seeds(4), _shift_lm(real_run("close", seed=20), 0.05)]  # < 2% of LM
    assert F.sweep_red_flags(close).filter(pl.col("rule") == "sweep_lm").is_empty()


def test_peers_share_trainer_target_and_length() -> None:
    # mean k differs by design under another TARGET_K: no peer
    runs = [*_seeds(4), real_run("low target", target_k=1.30, seed=30)]
    assert F.sweep_red_flags(runs).filter(pl.col("rule") == "sweep_k").is_empty()
    # a run stopped at step 934 is not compared on its final LM
    runs = [*_seeds(4), real_run("stopped", n_steps=934, seed=31)]
    assert F.sweep_red_flags(runs).filter(pl.col("rule") == "sweep_lm").is_empty()


def test_sweep_settings_are_editable_like_any_rule() -> None:
    runs = [*_seeds(4), _shift_lm(real_run("worse", seed=20), 0.5)]
    rules = F.edit(F.DEFAULT, "sweep_lm", "min_runs", 6)
    assert F.sweep_red_flags(runs, rules).filter(pl.col("rule") == "sweep_lm").is_empty()


def test_a_failing_measure_is_reported() -> None:
    rule = F.RULES["sweep_throughput"]

    def boom(scope: F.Scope, s: F.Outlier) -> F.Measure:
        raise ValueError("broken")

    broken = dataclasses.replace(rule, measure=boom)
    registry = F.Registry()
    registry.add(broken)
    m = F.measure(make_run("x"), registry)
    f = F.sweep_evaluate([m], registry)
    assert f.row(0, named=True)["severity"] == "warning"
    assert "ValueError: broken" in f.row(0, named=True)["evidence"]


# ---- editable settings


def test_setting_fields_flatten_nested_settings_with_their_docs() -> None:
    fields = {f.path: f for f in F.setting_fields(F.RULES["grad_sustained"].settings)}
    assert {"rel", "abs_level", "baseline", "clip", "sustain.window", "sustain.share"} <= set(
        fields
    )
    assert fields["abs_level"].optional and fields["sustain.window"].kind is int
    assert "running level" in fields["rel"].help
    lam = {f.path for f in F.setting_fields(F.RULES["lambda_pinned"].settings)}
    assert {"lambda_min", "lambda_max", "grace_steps"} <= lam
    # tuples of column names are not numbers to edit
    assert "columns" not in {f.path for f in F.setting_fields(F.RULES["nonfinite"].settings)}


def test_edit_and_reset() -> None:
    rules = F.edit(F.DEFAULT, "gap_high", "sustain.window", 40)
    assert rules.names == {"gap_high"}
    assert F.DEFAULT.of(F.RULES["gap_high"]).sustain.window == 20
    assert rules.of(F.RULES["gap_high"]).sustain.window == 40
    assert F.edit(rules, "gap_high", "sustain.window", 20) == F.DEFAULT  # back to default
    assert rules.without("gap_high") == F.DEFAULT
    assert rules.key != F.DEFAULT.key and hash(rules) == hash(
        F.edit(F.DEFAULT, "gap_high", "sustain.window", 40)
    )
    with pytest.raises(KeyError):
        F.edit(F.DEFAULT, "gap_high", "no_such", 1)


def test_edited_thresholds_reach_the_summary() -> None:
    from ponder_parse.analysis import summaries

    run = make_run(pathology="gap")
    assert summaries.run_summary(run)["n_warning"] == 1
    lenient = F.edit(F.DEFAULT, "gap_high", "threshold", 5.0)
    assert summaries.run_summary(run, rules=lenient)["n_warning"] == 0
