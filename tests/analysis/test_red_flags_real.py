"""Red flags on runs of the realistic simulator (`SimConfig(regime="real")`, written and
read back with `load_run`): a normal real run is not critical, each real pathology raises
its own flag at a severity that makes a broken run stand out; the sweep-relative rules
and the editable settings.

Where the simulator has no knob for a pathology (an AUX blow-up, a swapping machine, a
worse seed) a simulated run gets it injected into the one column it is named for."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from analysis_helpers import make_run, real_run, simulated_run

from ponder_parse.analysis import red_flags as F
from ponder_parse.files.loader import load_run
from ponder_parse.run import Run
from ponder_parse.sim.simulate import SAMPLE_BASELINE

ROOT = Path(__file__).resolve().parent.parent.parent

NORMAL: dict[str, dict[str, Any]] = {
    "target 2.40": {},
    "target 1.30": {"target_k": 1.30},
    "934 steps at D=768": {"d_model": 768, "steps": 934, "seed": 1},
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
    # pre-clip GRAD at 2.5, AUX at 0.3–0.8 and an exec − k gap of 0.7–2 are this trainer's
    # normal
    assert not {"grad_sustained", "aux_high", "gap_high"} & set(f["rule"])


def test_a_broken_real_run_stands_out() -> None:
    expected = {
        "diverged": ({"diverge_at": 1800}, "grad_sustained"),
        "frozen": ({"gate": "stuck"}, "gate_frozen"),
    }
    for name, (changes, rule) in expected.items():
        f = _by_rule(F.red_flags(real_run(name, **changes)))
        assert f[rule]["severity"] == "critical", (name, f)


def test_grad_finding_says_how_many_updates_were_clipped() -> None:
    f = _by_rule(F.red_flags(real_run("diverged", diverge_at=1800)))
    row = f["grad_sustained"]
    # GRAD climbs over the 200 steps before the losses go nan at step 1800
    assert 1600 <= row["first_step"] < 1800 and row["last_step"] < 1800
    assert "100% of all updates clipped (GRAD > 1" in str(row["evidence"])
    assert f["nonfinite"]["first_step"] == 1800
    # a textbook run's clipped share is small
    text = _by_rule(F.red_flags(make_run(pathology="grad")))["grad_sustained"]["evidence"]
    assert "3% of all updates clipped" in str(text)


def test_aux_fires_well_above_the_real_level() -> None:
    run = real_run()
    run.steps = run.steps.with_columns(
        aux_loss=pl.when(pl.col("step") >= 1500).then(2.5).otherwise(pl.col("aux_loss"))
    )
    row = _by_rule(F.red_flags(run))["aux_high"]
    assert (row["severity"], row["first_step"]) == ("warning", 1500)
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
    for name in ("target 2.40", "target 1.30"):
        row = _by_rule(normal[name])["gate_uniform"]
        assert row["severity"] == "warning" and 0.75 <= float(row["value"]) <= 0.95
        assert "tok avg = p95 = k_exec" in str(row["evidence"])
    # a gate that treats tokens differently is not flagged
    run = real_run()
    run.layers = run.layers.with_columns(
        p_std=pl.lit(0.12), avg_exec_token=pl.col("p95_exec_token") - 0.4
    )
    assert "gate_uniform" not in set(F.red_flags(run)["rule"])


def test_gate_frozen_in_gate_learning_only_is_a_warning(normal: dict[str, pl.DataFrame]) -> None:
    row = _by_rule(normal["target 2.40"])["gate_frozen"]
    assert (row["severity"], row["first_step"]) == ("warning", 800)
    # the gate leaves 0.5 within a few layer lines once λ_p prices compute (step 1200)
    assert 1190 <= row["last_step"] < 1300
    assert "moved later" in str(row["evidence"])
    short = _by_rule(normal["934 steps at D=768"])["gate_frozen"]
    assert short["severity"] == "warning" and "ends before the economic" in str(short["evidence"])


def test_gate_frozen_through_the_economic_phase_is_critical() -> None:
    row = _by_rule(F.red_flags(real_run("frozen", gate="stuck")))["gate_frozen"]
    assert row["severity"] == "critical" and "still frozen" in str(row["evidence"])
    assert (row["first_step"], row["value"]) == (800, 1.0)
    stuck = load_run(ROOT / "sample_runs" / "gate=stuck,seed=0")
    assert _by_rule(F.red_flags(stuck))["gate_frozen"]["severity"] == "critical"


def test_metric_flat(normal: dict[str, pl.DataFrame]) -> None:
    row = _by_rule(normal["target 2.40"])["metric_flat"]
    assert row["severity"] == "info" and row["value"] == 4
    evidence = str(row["evidence"])
    assert "MTP (on all 2000 step lines)" in evidence and "ent, d_rel, Δp" in evidence
    # P_NR at 0.0% through the economic phase is a measured share, not a missing metric
    assert "P_NR" not in evidence
    assert "metric_flat" not in set(F.red_flags(make_run())["rule"])


def test_a_slowdown_from_deeper_steps_is_not_memory(normal: dict[str, pl.DataFrame]) -> None:
    f = _by_rule(normal["934 steps at D=768"])
    assert "throughput_low" not in f
    row = f["throughput_depth"]
    assert (row["severity"], row["first_step"]) == ("info", 800)
    assert "AVGS exec is 4.00" in str(row["evidence"]) and "not memory" in str(row["evidence"])
    # swapping at unchanged depth still is
    swapping = real_run()
    swapping.steps = swapping.steps.with_columns(
        tok_per_sec=pl.when(pl.col("step").is_between(1500, 1699))
        .then(pl.col("tok_per_sec") / 3.0)
        .otherwise(pl.col("tok_per_sec"))
    )
    mem = _by_rule(F.red_flags(swapping))
    assert mem["throughput_low"]["first_step"] == 1500 and "throughput_depth" not in mem


def test_textbook_slowdown_is_still_memory_pressure() -> None:
    f = _by_rule(F.red_flags(make_run(pathology="slow")))
    assert "throughput_low" in f and "throughput_depth" not in f


def test_gap_separates_a_lagging_hard_stop_from_a_real_run() -> None:
    """Both runs show an AVGS gap above 1 with halt_thr 0.10: the textbook one because
    tokens run passes their survival says they should have stopped before (`s_j / tail
    ≥j` far below 0.05), the realistic one because a pass runs down to 10% survival."""
    textbook = simulated_run(dataclasses.replace(SAMPLE_BASELINE, halt_thr=0.1, steps=2200))
    real = real_run()
    for run in (textbook, real):
        econ = run.steps.filter((pl.col("step") >= 1500) & ~pl.col("audit"))
        assert econ["avg_gap"].median() > 0.7
    row = _by_rule(F.red_flags(textbook))["gap_high"]
    assert row["severity"] == "warning" and row["value"] < 0.05
    assert "AVGS gap median" in str(row["evidence"])
    assert "gap_high" not in _by_rule(F.red_flags(real))
    lenient = F.edit(F.DEFAULT, "gap_high", "min_survival", 0.0)
    assert "gap_high" not in _by_rule(F.red_flags(textbook, lenient))


# ---- relative to the sweep


def _seeds(n: int) -> list[Run]:
    return [real_run(f"s{i}", seed=10 + i, n_layers=2) for i in range(n)]


def _shift_lm(run: Run, by: float) -> Run:
    run.steps = run.steps.with_columns(lm_loss=pl.col("lm_loss") + by)
    return run


def _other(name: str, by: float = 0.0, **changes: Any) -> Run:
    return _shift_lm(real_run(name, seed=20, n_layers=2, **changes), by)


def test_a_run_far_from_its_peers_is_flagged() -> None:
    runs = [*_seeds(4), _other("worse", 0.5)]
    f = F.sweep_red_flags(runs)
    lm = f.filter(pl.col("rule") == "sweep_lm")
    assert lm["run"].to_list() == ["worse"]
    row = lm.row(0, named=True)
    assert row["severity"] == "warning" and row["value"] > 3.5
    assert "median" in row["evidence"] and "5 shown runs" in row["evidence"]
    assert row["last_step"] == 1999 and row["n_steps"] == 100
    assert F.peers_text(f).row(0) == ("worse", f"final LM higher (z {row['value']:+.1f})")


def test_better_than_its_peers_is_info() -> None:
    runs = [*_seeds(4), _other("better", -0.5)]
    row = F.sweep_red_flags(runs).filter(pl.col("rule") == "sweep_lm").row(0, named=True)
    assert (row["run"], row["severity"]) == ("better", "info")


def test_too_few_runs_or_too_small_a_difference() -> None:
    assert F.sweep_red_flags([*_seeds(2), _other("w", 0.5)]).is_empty()
    close = [*_seeds(4), _other("close", 0.05)]  # < 2% of LM
    assert F.sweep_red_flags(close).filter(pl.col("rule") == "sweep_lm").is_empty()


def test_peers_share_trainer_target_and_length() -> None:
    # mean k differs by design under another TARGET_K: no peer
    runs = [*_seeds(4), _other("low target", target_k=1.30)]
    assert F.sweep_red_flags(runs).filter(pl.col("rule") == "sweep_k").is_empty()
    # a run stopped at step 934 is not compared on its final LM
    runs = [*_seeds(4), _other("stopped", steps=934)]
    assert F.sweep_red_flags(runs).filter(pl.col("rule") == "sweep_lm").is_empty()


def test_sweep_settings_are_editable_like_any_rule() -> None:
    runs = [*_seeds(4), _other("worse", 0.5)]
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
    assert F.DEFAULT.of(F.RULES["gap_high"]).sustain.window == 6
    assert rules.of(F.RULES["gap_high"]).sustain.window == 40
    assert F.edit(rules, "gap_high", "sustain.window", 6) == F.DEFAULT  # back to default
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
    lenient = F.edit(F.DEFAULT, "gap_high", "min_survival", 0.0)
    assert summaries.run_summary(run, rules=lenient)["n_warning"] == 0


def test_lm_rising_when_the_gate_takes_over_is_not_a_stall(
    normal: dict[str, pl.DataFrame],
) -> None:
    """Real LM rises through gate learning (5.7 → 6.4) and falls again once λ_p prices
    compute: by step 2 000 it is barely below its step-500 level, but it is learning."""
    run = real_run()
    lm = run.steps.filter(pl.col("step").is_between(500, 699))["lm_loss"].median()
    late = run.steps.filter(pl.col("step") >= 1800)["lm_loss"].median()
    assert late > 0.98 * lm  # the step-500 comparison alone would flag it
    assert "lm_not_decreasing" not in set(normal["target 2.40"]["rule"])
    # LM that stays where the gate left it through the economic phase is a stall
    stalled = real_run()
    stalled.steps = stalled.steps.with_columns(
        lm_loss=pl.when(pl.col("step") >= 1200).then(6.4).otherwise(pl.col("lm_loss"))
    )
    row = _by_rule(F.red_flags(stalled))["lm_not_decreasing"]
    assert row["severity"] == "warning" and "nor below the 6.4000" in str(row["evidence"])
