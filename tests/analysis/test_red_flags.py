"""Red-flag rules: healthy runs stay quiet, each pathology raises its own flag."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import polars as pl
import pytest
from analysis_helpers import PATHOLOGIES, make_run, steps_run
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder_parse import schema
from ponder_parse.analysis import catalog
from ponder_parse.analysis import red_flags as F
from ponder_parse.analysis.phases import phases
from ponder_parse.run import Run

EXPECTED_RULE = {
    "grad": "grad_sustained",
    "not_stopping": "gate_not_stopping",
    "over_penalized": "gate_over_penalized",
    "stuck_half": "gate_stuck_half",
    "p_nr": "p_near_clamp_high",
    "ce_negative": "delta_ce_negative",
    "aux": "aux_high",
    "gap": "gap_high",
    "lm_flat": "lm_not_decreasing",
    "slow": "throughput_low",
    "nan": "nonfinite",
    "lambda_max": "lambda_pinned",
    "restarts": "restarts",
    "problems": "log_problems",
    "no_deadband": "no_deadband",
}


def _rules(df: pl.DataFrame) -> set[str]:
    return set(df["rule"].to_list())


def test_every_rule_is_described() -> None:
    assert set(EXPECTED_RULE.values()) <= set(F.RULES)
    for rule in F.RULES.values():
        assert rule.severity in F.SEVERITIES
        assert rule.action and rule.title and rule.value


# ---- the registry: one object per rule, and the engine runs whatever is registered

# Rules about the log file rather than a logged number: no step line shows their evidence.
FILE_RULES = {"log_problems", "trainer_errors", "log_truncated"}


def test_registry_is_complete_and_consistent() -> None:
    metric_keys = {m.key for m in catalog.METRICS if m.numeric}
    for name, rule in F.RULES.items():
        assert rule.name == name
        assert callable(rule.check)
        settings = rule.settings
        assert dataclasses.is_dataclass(settings) and not isinstance(settings, type)
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.__setattr__("changed", True)
        hash(settings)
        assert F.DEFAULT.of(rule) is settings
        assert set(rule.metrics) <= metric_keys, (name, rule.metrics)
        assert bool(rule.metrics) == (name not in FILE_RULES), name


def _late_steps_registry() -> tuple[F.Registry, type]:
    registry = F.Registry()

    @dataclasses.dataclass(frozen=True)
    class Late:
        from_step: int = 2900

    @registry.rule(
        name="late_steps",
        title="Steps late in the run",
        severity=F.INFO,
        scope="all steps",
        value="number of late steps",
        action="None: a rule for the test.",
        settings=Late(),
        metrics=("steps.lm_loss",),
    )
    def late_steps(scope: F.Scope, s: Late) -> list[F.Finding]:
        late = scope.steps.filter(pl.col("step") >= s.from_step)
        return (
            [F.Finding.over(late, f"{late.height} late steps", late.height)] if late.height else []
        )

    return registry, Late


def test_a_rule_registered_in_one_place_is_evaluated() -> None:
    registry, late = _late_steps_registry()
    f = F.evaluate(make_run("toy"), registry)
    assert f.schema == pl.Schema(F.FINDINGS_SCHEMA)
    assert f.rows(named=True) == [
        {
            "run": "toy",
            "rule": "late_steps",
            "severity": "info",
            "first_step": 2900,
            "last_step": 2999,
            "n_steps": 100,
            "evidence": "100 late steps",
            "value": 100.0,
            "action": "None: a rule for the test.",
        }
    ]
    # settings given by rule name reach the check
    f = F.evaluate(make_run("toy"), registry, F.FlagRules(late_steps=late(2990)))
    assert f["n_steps"].to_list() == [10]


def test_settings_must_name_a_rule_and_fit_it() -> None:
    with pytest.raises(ValueError, match="grad_sustain"):
        F.red_flags(make_run(), F.FlagRules(grad_sustain=F.Sustain()))
    with pytest.raises(TypeError, match="grad_sustained"):
        F.red_flags(make_run(), F.FlagRules(grad_sustained=F.Sustain()))
    assert F.FlagRules(aux_high=F.Above(0.2)) == F.FlagRules(aux_high=F.Above(0.2))
    assert hash(F.FlagRules(aux_high=F.Above(0.2))) == hash(F.FlagRules(aux_high=F.Above(0.2)))
    assert F.FlagRules(aux_high=F.Above(0.2)) != F.DEFAULT


def test_a_failing_rule_does_not_hide_the_others() -> None:
    registry, _ = _late_steps_registry()

    @registry.rule(
        name="broken",
        title="A rule with a bug",
        severity=F.CRITICAL,
        scope="all steps",
        value="none",
        action="Never shown: the check raises.",
        settings=F.NoSettings(),
    )
    def broken(scope: F.Scope, s: F.NoSettings) -> list[F.Finding]:
        raise ZeroDivisionError("a bug in the rule")

    f = F.evaluate(make_run("toy"), registry)
    by_rule = {r["rule"]: r for r in f.iter_rows(named=True)}
    assert set(by_rule) == {"late_steps", "broken"}
    assert by_rule["late_steps"]["n_steps"] == 100
    failed = by_rule["broken"]
    assert failed["severity"] == "warning"
    assert "ZeroDivisionError: a bug in the rule" in failed["evidence"]
    assert failed["action"] == F.FAILED_ACTION
    assert failed["first_step"] is None and failed["value"] is None


def test_a_rule_name_is_registered_once() -> None:
    registry, _ = _late_steps_registry()
    with pytest.raises(ValueError, match="twice"):
        registry.add(registry["late_steps"])


def _default(rule: str) -> Any:
    return F.DEFAULT.of(F.RULES[rule])


def test_chart_lines_are_the_rules_thresholds() -> None:
    """One source per threshold: the lines on a chart are the settings the rules run with,
    the Red flags page's edits included."""
    assert _default("p_near_clamp_high").threshold == 0.20
    assert F.reference_lines("p_near_clamp") == [(0.20, "red flag: > 20%")]
    grad = F.reference_lines("grad_norm")
    assert [v for v, _ in grad] == [1.0, 20.0]
    assert "clipped" in grad[0][1] and "sustained" in grad[1][1]
    assert [v for v, _ in F.reference_lines("aux_loss")] == [1.0]
    assert F.reference_lines("ctrl_err") == catalog.reference_lines("ctrl_err")
    edited = F.edit(F.DEFAULT, "p_near_clamp_high", "threshold", 0.35)
    edited = F.edit(edited, "grad_sustained", "abs_level", None)
    edited = F.edit(edited, "lambda_pinned", "lambda_min", 2e-4)
    assert F.reference_lines("p_near_clamp", rules=edited) == [(0.35, "red flag: > 35%")]
    assert [v for v, _ in F.reference_lines("grad_norm", rules=edited)] == [1.0]
    assert 2e-4 in [v for v, _ in F.reference_lines("lambda_p", rules=edited)]
    assert 2e-4 not in [v for v, _ in F.reference_lines("lambda_p")]
    # thresholds relative to a run's own level are that run's lines
    run = make_run()
    med = float(run.steps["grad_norm"].median())
    own = F.run_reference_lines(run, "grad_norm")
    assert own == [(pytest.approx(4.0 * med, rel=0.05), "red flag: ≈ 4× its median GRAD")]
    rel = F.edit(F.DEFAULT, "grad_sustained", "rel", 6.0)
    six = F.run_reference_lines(run, "grad_norm", rules=rel)[0][0]
    assert six == pytest.approx(6 * med, rel=0.05)
    assert "Red flags on it: `grad_sustained`" in F.metric_help(catalog.metric("grad_norm"))
    hash(F.DEFAULT)  # hashable: usable as a cache key


def test_a_rule_draws_lines_on_its_own_metrics_only() -> None:
    """What lets a chart ask only the rules on its metric for a run's lines (so a chart of
    LM reads no run's GRAD to draw nothing): every line a rule draws is on `Rule.metrics`."""
    run = make_run()
    drawn = 0
    for rule in F.RULES.run_rules:
        settings = F.DEFAULT.of(rule)
        lines = [
            *(rule.lines(settings) if rule.lines else []),
            *(rule.run_lines(settings, run) if rule.run_lines else []),
        ]
        drawn += len(lines)
        assert {line.metric for line in lines} <= set(rule.metrics), rule.name
    assert drawn >= 5
    assert F.run_reference_lines(run, "tok_per_sec")  # still drawn where they belong
    assert not F.run_reference_lines(run, "lm_loss")


def test_grad_and_aux_are_judged_against_the_runs_own_level() -> None:
    """The guide's GRAD 2.0 assumes the clipped norm and its AUX 0.1 another MoE set-up;
    real runs print GRAD before clipping (median 2.5) and AUX at 0.3–0.8."""
    grad, aux = _default("grad_sustained"), _default("aux_high")
    assert (grad.rel, grad.abs_level, grad.clip) == (4.0, 20.0, 1.0)
    assert (aux.rel, aux.abs_level) == (3.0, 1.0)


@pytest.mark.parametrize("kmax", [3, 4, 5])
def test_healthy_run_raises_nothing(kmax: int) -> None:
    f = F.red_flags(make_run(kmax=kmax))
    assert f.schema == pl.Schema(F.FINDINGS_SCHEMA)
    assert f.is_empty(), f.rows()


@pytest.mark.parametrize("pathology", PATHOLOGIES)
def test_each_pathology_raises_its_flag(pathology: str) -> None:
    f = F.red_flags(make_run(pathology, pathology=pathology))
    assert EXPECTED_RULE[pathology] in _rules(f)
    row = f.filter(pl.col("rule") == EXPECTED_RULE[pathology]).row(0, named=True)
    assert row["run"] == pathology
    assert row["action"] == F.RULES[row["rule"]].action
    assert row["evidence"]
    # nothing unrelated fires on a run that differs from the healthy one in one way
    unrelated = _rules(f.filter(pl.col("severity") != "info")) - {EXPECTED_RULE[pathology]}
    assert not unrelated, f.rows()


@pytest.mark.parametrize("kmax", [3, 5])
@pytest.mark.parametrize("pathology", ["not_stopping", "over_penalized", "stuck_half"])
def test_trace_rules_for_other_kmax(kmax: int, pathology: str) -> None:
    f = F.red_flags(make_run(pathology=pathology, kmax=kmax))
    assert EXPECTED_RULE[pathology] in _rules(f)


def test_finding_fields_for_grad() -> None:
    f = F.red_flags(make_run(pathology="grad"))
    row = f.row(0, named=True)
    assert (row["rule"], row["severity"]) == ("grad_sustained", "critical")
    assert (row["first_step"], row["last_step"], row["n_steps"]) == (2000, 2099, 100)
    assert 3.0 <= row["value"] <= 4.0
    assert "2000–2099" in row["evidence"]


# ---- what "sustained" means


def _grad_flag(values: list[float], rules: F.FlagRules = F.DEFAULT) -> pl.DataFrame:
    f = F.red_flags(steps_run(grad_norm=values), rules)
    return f.filter(pl.col("rule") == "grad_sustained")


def test_single_spike_is_not_sustained() -> None:
    values = [0.6] * 200
    values[100] = 50.0
    assert _grad_flag(values).is_empty()


def test_sustained_share_of_window() -> None:
    # 9 of 20 consecutive steps above 2: below the default 50% share
    nine = [0.6] * 100 + [3.0 if i % 2 == 0 else 0.6 for i in range(18)] + [0.6] * 100
    assert _grad_flag(nine).is_empty()
    # 10 of 20 (alternating): sustained even though never two in a row
    ten = [0.6] * 100 + [3.0 if i % 2 == 0 else 0.6 for i in range(20)] + [0.6] * 100
    f = _grad_flag(ten)
    assert f.height == 1
    assert (f["first_step"][0], f["last_step"][0], f["n_steps"][0]) == (100, 118, 10)


def test_episodes_are_counted_separately() -> None:
    values = [0.6] * 400
    values[50:70] = [3.0] * 20
    values[300:320] = [3.0] * 20
    f = _grad_flag(values)
    assert f["n_steps"][0] == 40
    assert "50–69, 300–319" in f["evidence"][0]


def test_short_run_is_one_window() -> None:
    # too few rows for a running level: an absolute level judges them
    at_2 = F.FlagRules(grad_sustained=F.GradSettings(rel=4.0, abs_level=2.0))
    assert _grad_flag([3.0, 3.0, 3.0, 0.5, 0.5], at_2).height == 1
    assert _grad_flag([3.0, 3.0], at_2).is_empty()  # fewer than min_rows


def test_nan_is_not_above_a_threshold() -> None:
    f = F.red_flags(steps_run(grad_norm=[math.nan] * 50))
    assert "grad_sustained" not in _rules(f)
    assert "nonfinite" in _rules(f)


def test_custom_sustain() -> None:
    values = [0.6] * 100
    values[40:45] = [3.0] * 5
    assert _grad_flag(values).is_empty()
    strict = F.FlagRules(
        grad_sustained=dataclasses.replace(
            _default("grad_sustained"), sustain=F.Sustain(window=5, share=1.0, min_rows=5)
        )
    )
    assert _grad_flag(values, strict).height == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([0.5, 3.0]), min_size=1, max_size=80))
def test_flagged_steps_are_always_above_threshold(values: list[float]) -> None:
    run = steps_run(grad_norm=values)
    s = F.Sustain(window=10, share=0.5)
    flagged = F.sustained(run.steps, F.above("grad_norm", 2.0), s)
    assert (flagged["grad_norm"] > 2.0).all()
    # brute-force definition: a row counts when some full window containing it has ≥ need hits
    n = len(values)
    w = min(10, n)
    need = max(s.min_rows, math.ceil(s.share * w))
    hits = [v > 2.0 for v in values]
    expected = [
        i
        for i in range(n)
        if hits[i]
        and any(sum(hits[j : j + w]) >= need for j in range(max(0, i - w + 1), min(i, n - w) + 1))
    ]
    assert flagged["step"].to_list() == expected


# ---- scope: rules only where they mean something


def test_p_nr_only_counts_in_the_economic_phase() -> None:
    run = make_run()
    run.steps = run.steps.with_columns(
        p_near_clamp=pl.when(pl.col("step") < 1100).then(0.5).otherwise(pl.col("p_near_clamp"))
    )
    assert "p_near_clamp_high" not in _rules(F.red_flags(run))


def test_trace_rules_ignore_the_gate_learning_phase() -> None:
    run = make_run()
    stuck = [1.0, 0.95, 0.9, 0.85]
    run.traces = run.traces.with_columns(
        s_trace=pl.when(pl.col("step") < 1200)
        .then(pl.lit(stuck, dtype=pl.List(pl.Float64)))
        .otherwise(pl.col("s_trace"))
    )
    assert "gate_not_stopping" not in _rules(F.red_flags(run))


def test_gap_ignored_during_force_warmup() -> None:
    run = make_run()
    run.steps = run.steps.with_columns(
        avg_gap=pl.when(pl.col("step") < 800).then(0.9).otherwise(pl.col("avg_gap"))
    )
    run.layers = run.layers.with_columns(
        frac_ge2=pl.when(pl.col("step") < 800).then(1.0).otherwise(pl.col("frac_ge2"))
    )
    assert F.red_flags(run).is_empty()


def test_a_large_gap_alone_is_not_the_mismatch() -> None:
    """exec − k is large whenever passes run at moderate survival; the flag is for passes
    run by more tokens than their survival allows (`s_j / tail ≥j` below the setting)."""
    run = make_run(pathology="gap")
    row = F.red_flags(run).filter(pl.col("rule") == "gap_high").row(0, named=True)
    assert row["first_step"] == 1500 and row["value"] < 0.05
    assert "AVGS gap median 0.80" in row["evidence"] and "pass 4" in row["evidence"]
    # the same gap with the tokens stopping as their survival says: no finding
    tracking = make_run(pathology="gap")
    tracking.layers = make_run().layers
    assert "gap_high" not in _rules(F.red_flags(tracking))
    lenient = F.edit(F.DEFAULT, "gap_high", "min_survival", 0.01)
    assert "gap_high" not in _rules(F.red_flags(run, lenient))


def test_recovered_trace_pattern_is_a_warning() -> None:
    run = make_run(pathology="not_stopping")
    run.traces = run.traces.filter(pl.col("step") < 2300)  # shape seen 2000–2250, then…
    healthy = make_run().traces.filter(pl.col("step") >= 2300)
    run.traces = pl.concat([run.traces, healthy])
    row = F.red_flags(run).filter(pl.col("rule") == "gate_not_stopping").row(0, named=True)
    assert row["severity"] == "warning"
    assert "recovered" in row["evidence"]
    assert (row["first_step"], row["last_step"]) == (2000, 2250)


def test_two_checkpoints_are_not_enough() -> None:
    run = make_run(pathology="stuck_half")
    healthy = make_run().traces
    run.traces = pl.concat(
        [
            run.traces.filter(pl.col("step").is_between(2000, 2050)),
            healthy.filter(~pl.col("step").is_between(2000, 2050)),
        ]
    )
    assert "gate_stuck_half" not in _rules(F.red_flags(run))


def test_user_phase_override_moves_scope() -> None:
    run = make_run(pathology="p_nr")
    late = phases(run, {"ponder_start": 2900, "force_end": 800})
    f = F.red_flags(run, phases_df=late)
    assert f.filter(pl.col("rule") == "p_near_clamp_high")["first_step"].to_list() == [2900]


# ---- edge cases


def test_empty_run() -> None:
    f = F.red_flags(Run(name="empty"))
    assert f.is_empty() and f.schema == pl.Schema(F.FINDINGS_SCHEMA)


def test_run_shorter_than_the_ponder_start() -> None:
    f = F.red_flags(make_run(n_steps=1000))
    assert f.is_empty()


def test_single_layer_run() -> None:
    f = F.red_flags(make_run(n_layers=1, pathology="over_penalized"))
    assert "gate_over_penalized" in _rules(f)


def test_lm_rule_needs_a_span() -> None:
    # flat LM but only 400 steps after step 500: too short to judge
    run = steps_run(lm_loss=[3.0] * 900)
    assert "lm_not_decreasing" not in _rules(F.red_flags(run))
    run = steps_run(lm_loss=[3.0] * 1500)
    assert "lm_not_decreasing" in _rules(F.red_flags(run))


def test_uniformly_slow_run_is_not_flagged() -> None:
    run = steps_run(tok_per_sec=[50.0] * 500)
    assert F.red_flags(run).is_empty()


def test_lambda_pinned_at_min() -> None:
    run = make_run()
    run.steps = run.steps.with_columns(
        lambda_p=pl.when(pl.col("step") >= 1200).then(1e-4).otherwise(pl.col("lambda_p"))
    )
    f = F.red_flags(run).filter(pl.col("rule") == "lambda_pinned")
    assert f.height == 1
    assert f["value"][0] == pytest.approx(1e-4)
    assert "min clamp" in f["evidence"][0]
    assert f["severity"][0] == "warning"


def test_lambda_fixed_by_equal_clamps_is_reported_once() -> None:
    run = make_run()
    run.steps = run.steps.with_columns(lambda_p=pl.lit(0.05))
    run.hparams = {"lambda_min": 0.05, "lambda_max": 0.05}
    f = F.red_flags(run).filter(pl.col("rule") == "lambda_pinned")
    assert f.height == 1
    assert f["value"][0] == pytest.approx(0.05)
    assert "min and max clamp" in f["evidence"][0] and "config bound" in f["evidence"][0]


def test_lambda_bounds_from_config_and_observation() -> None:
    run = make_run()
    run.steps = run.steps.with_columns(
        lambda_p=pl.when(pl.col("step") >= 1500).then(0.2).otherwise(pl.col("lambda_p"))
    )
    # λ_p went past the default max and settled: CTRL_ERR stays inside the deadband, so
    # the observed maximum is a resting price, not a clamp
    assert F.red_flags(run).filter(pl.col("rule") == "lambda_pinned").is_empty()
    run.hparams = {"LAMBDA_MAX": 0.2}
    f = F.red_flags(run).filter(pl.col("rule") == "lambda_pinned")
    assert f["severity"].to_list() == ["warning"] and "config bound" in f["evidence"][0]
    run.hparams = {"lambda_max": 0.5}
    assert F.red_flags(run).filter(pl.col("rule") == "lambda_pinned").is_empty()


def test_narrowed_clamp_is_inferred_from_the_controller_push() -> None:
    run = make_run()
    econ = pl.col("step") >= 1200
    run.steps = run.steps.with_columns(
        lambda_p=pl.when(econ).then(pl.min_horizontal(pl.col("lambda_p"), 5e-4)),
        ctrl_err=pl.when(econ).then(0.6).otherwise(pl.col("ctrl_err")),
    )
    f = F.red_flags(run).filter(pl.col("rule") == "lambda_pinned")
    assert f["value"].to_list() == [pytest.approx(5e-4)]
    assert f["severity"].to_list() == ["warning"]
    assert "observed bound" in f["evidence"][0] and "pushing" in f["evidence"][0]
    assert f["first_step"][0] == 1700  # after the economic grace period
    # without the push it is a price that settled, not a clamp
    run.steps = run.steps.with_columns(ctrl_err=pl.lit(0.01))
    assert F.red_flags(run).filter(pl.col("rule") == "lambda_pinned").is_empty()


def test_event_rules() -> None:
    run = make_run()
    extra = pl.DataFrame(
        {
            "line_no": [500, 501, 502, 900],
            "step": [1500, 1500, 1500, 2000],
            "kind": ["traceback", "traceback", "traceback", "json_dump_failed"],
            "text": [
                "Traceback (most recent call last):",
                '  File "x.py", line 1, in <module>',
                "RuntimeError: CUDA out of memory",
                "JSON Dump failed: disk full",
            ],
        },
        schema=schema.EVENTS,
    )
    run.events = pl.concat([run.events, extra])
    run.meta["truncated"] = True
    f = F.red_flags(run)
    by_rule = {r["rule"]: r for r in f.iter_rows(named=True)}
    # training went on after the traceback (step 1500 of 2999): the run recovered
    assert by_rule["traceback"]["severity"] == "info"
    assert "CUDA out of memory" in by_rule["traceback"]["evidence"]
    assert "continued" in by_rule["traceback"]["evidence"]
    assert by_rule["trainer_errors"]["severity"] == "info"
    assert by_rule["log_truncated"]["severity"] == "info"
    # a traceback after the last step line: the run died there
    run.events = run.events.with_columns(
        step=pl.when(pl.col("kind") == "traceback").then(2999).otherwise(pl.col("step"))
    )
    tb = F.red_flags(run).filter(pl.col("rule") == "traceback")
    assert tb["severity"].to_list() == ["warning"]
    # warnings in stderr are not tracebacks
    run2 = make_run()
    run2.events = pl.concat(
        [
            run2.events,
            pl.DataFrame(
                {
                    "line_no": [5],
                    "step": [3],
                    "kind": ["traceback"],
                    "text": ["x.py:1: UserWarning: hi"],
                },
                schema=schema.EVENTS,
            ),
        ]
    )
    assert F.red_flags(run2).is_empty()


def test_restarts_from_events_when_meta_is_missing() -> None:
    run = make_run()
    run.meta = {}
    run.events = pl.concat(
        [
            run.events,
            pl.DataFrame(
                {
                    "line_no": [10, 20],
                    "step": [1250, 2250],
                    "kind": ["resume", "resume"],
                    "text": [
                        "⏩ Resuming from step 1250 (loss: 3.1)",
                        "⏩ Resuming from step 2250",
                    ],
                },
                schema=schema.EVENTS,
            ),
        ]
    )
    f = F.red_flags(run).filter(pl.col("rule") == "restarts").row(0, named=True)
    assert (f["value"], f["first_step"], f["last_step"]) == (2.0, 1250, 2250)


def test_sorted_by_severity() -> None:
    run = make_run(pathology="nan")
    run.meta["restarts"] = 1
    f = F.red_flags(run)
    assert f["severity"].to_list() == sorted(f["severity"].to_list(), key=F.SEVERITIES.index)


def test_counts_of_several_runs() -> None:
    runs = [make_run("ok"), make_run("bad", pathology="grad"), make_run("aux", pathology="aux")]
    f = pl.concat([F.red_flags(r) for r in runs])
    assert set(f["run"].to_list()) == {"bad", "aux"}
    assert F.counts(f) == {"critical": 1, "warning": 1, "info": 0}
    assert F.counts(F.red_flags(make_run("ok"))) == {"critical": 0, "warning": 0, "info": 0}


# ---- end to end: the simulator's sweep, through the real parser

SIM_HEALTHY_DIFFS = {
    "seed",
    "crash_at",
    "crash_traceback",
    "variant",
    "kmax",
    "steps",
    "lr_total_steps",
    "baton",
    "truncate_last_line",
}


def _expected_for(cfg: object, baseline: object) -> set[str] | None:
    """The rules a simulated config should raise (warning/critical), None if unknown."""
    from dataclasses import fields

    diff = {f.name for f in fields(cfg) if getattr(cfg, f.name) != getattr(baseline, f.name)}
    if getattr(cfg, "gate", "learned") == "stuck":
        return {"gate_stuck_half"}
    if cfg.lambda_max < 0.005:
        return {"gate_not_stopping"}
    if cfg.lambda_min > 0.01:
        return {"gate_over_penalized"}
    if getattr(cfg, "regime", "textbook") == "real":
        return None  # read against the real runs' figures in test_red_flags_real
    if cfg.halt_thr < 0.3:
        return {"gap_high"}
    if diff <= SIM_HEALTHY_DIFFS:
        return set()
    return None


def test_simulated_sweep_through_the_parser() -> None:
    sim = pytest.importorskip("ponder_parse.sim.simulate")
    from ponder_parse.files.loader import parse_run

    checked = 0
    for name, cfg in sim.sample_configs().items():
        expected = _expected_for(cfg, sim.SAMPLE_BASELINE)
        if expected is None:
            continue
        run = parse_run(sim.simulate(cfg).log_text, name=name)
        f = F.red_flags(run)
        raised = _rules(f.filter(pl.col("severity") != "info"))
        if expected:
            assert expected <= raised, (name, f.rows())
        else:
            assert not raised, (name, f.rows())
        checked += 1
    assert checked >= 4


def test_rules_table_lists_every_rule_in_registry_order() -> None:
    table = F.rules_table()
    assert table["rule"].to_list() == list(F.RULES)
    assert table.columns == ["rule", "checks", "severity", "where", "action"]
    first = F.RULES[table["rule"][0]]
    assert table.row(0) == (first.name, first.title, first.severity, first.scope, first.action)


def test_focus_range_pads_a_finding() -> None:
    assert F.focus_range(1000, 1100) == (950, 1150)  # at least 50 steps of context
    assert F.focus_range(1000, 3000) == (600, 3400)  # a fifth of the span
    assert F.focus_range(10, 20) == (0, 70)  # never before step 0


def _sustained_by_hand(cond: list[bool], s: F.Sustain) -> list[int]:
    """Positions flagged by the module's definition of "sustained", window by window."""
    n = len(cond)
    w = min(s.window, n)
    need = max(s.min_rows, math.ceil(s.share * w - 1e-9))
    hot = [i for i in range(n - w + 1) if sum(cond[i : i + w]) >= need]
    return [i for i in range(n) if cond[i] and any(h <= i < h + w for h in hot)]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.booleans(), min_size=1, max_size=40), min_size=1, max_size=4),
    st.integers(1, 12),
    st.sampled_from([0.3, 0.5, 1.0]),
    st.integers(1, 4),
)
def test_sustained_by_layer_matches_the_definition(
    layers: list[list[bool]], window: int, share: float, min_rows: int
) -> None:
    # Quiet layers are counted out before any rolling window: what is left must be what
    # judging every layer window by window finds.
    s = F.Sustain(window=window, share=share, min_rows=min_rows)
    df = pl.DataFrame(
        {
            "layer": [li for li, c in enumerate(layers) for _ in c],
            "step": [i for c in layers for i in range(len(c))],
            "c": [v for c in layers for v in c],
        }
    )
    got = {
        int(group["layer"][0]): flagged["step"].to_list()
        for group, flagged in F.sustained_by(df, pl.col("c"), s)
    }
    expected = {li: _sustained_by_hand(c, s) for li, c in enumerate(layers)}
    assert got == {li: rows for li, rows in expected.items() if rows}
    for li in range(len(layers)):
        alone = F.sustained(df.filter(pl.col("layer") == li), pl.col("c"), s)
        assert alone["step"].to_list() == expected[li]
        assert alone.columns == [*df.columns, "_episode"]
