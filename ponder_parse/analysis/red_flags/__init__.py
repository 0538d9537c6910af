"""Red flags: the guide's symptom table, plus a researcher's extras, as rules over a run.

Every finding says where it happened, what was seen, and the guide's action. The rules
live in `rules` (one registered object each: metadata, settings, check, evidence
metrics), the shared machinery and the meaning of "sustained" in `engine`.

Finding columns (`FINDINGS_SCHEMA`): `run, rule, severity, first_step, last_step, n_steps,
evidence, value, action`. `n_steps` counts flagged logged steps (trace checkpoints for
trace rules, events for event rules); `value` is the rule's headline number (documented
per rule in `RULES`). One row per rule and run at most, except `lambda_pinned`, which can
report the lower and the upper clamp separately. A rule whose check raises reports a
warning of its own instead of its findings; the other rules are unaffected.

Rules over the sweep (`SweepRule`, same registry, same settings) flag a run whose metric
is far from its peers' among the shown runs: `sweep_red_flags(runs)`, or per run
`measure_run` (cacheable) then `sweep_flags`. Their findings have the same columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ponder_parse.analysis import catalog
from ponder_parse.analysis.red_flags.engine import (
    CRITICAL,
    FAILED_ACTION,
    FINDINGS_SCHEMA,
    INFO,
    PEER_FACTS,
    SEVERITIES,
    WARNING,
    Above,
    Finding,
    FlagRules,
    Level,
    Measure,
    Outlier,
    RefLine,
    Registry,
    Rule,
    RunMeasures,
    Scope,
    SettingField,
    Sustain,
    SweepRule,
    above,
    counts,
    evaluate,
    measure,
    replace_setting,
    setting_fields,
    sustained,
    sustained_by,
    sweep_evaluate,
)
from ponder_parse.analysis.red_flags.rules import (
    RULES,
    DeadbandSettings,
    DeltaCeSettings,
    DepthFit,
    FlatSettings,
    FrozenSettings,
    GapSettings,
    GradSettings,
    KOutlier,
    LambdaSettings,
    LmOutlier,
    LmSettings,
    NonfiniteSettings,
    NoSettings,
    RateOutlier,
    ThroughputOutlier,
    ThroughputSettings,
    TraceSettings,
    UniformSettings,
)
from ponder_parse.run import Run

DEFAULT = FlagRules()
"""Every rule with its registered settings (the guide's numbers)."""


def red_flags(
    run: Run, rules: FlagRules = DEFAULT, phases_df: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Every rule's findings for one run (typed; empty when nothing is wrong).

    `phases_df` lets the caller apply user phase overrides; by default phases are detected.
    Sorted by severity (critical first), then first step.
    """
    return evaluate(run, RULES, rules, phases_df)


def measure_run(
    run: Run, rules: FlagRules = DEFAULT, phases_df: pl.DataFrame | None = None
) -> RunMeasures:
    """The run's values for the rules over the sweep (the per-run half of the pass)."""
    return measure(run, RULES, rules, phases_df)


def sweep_flags(measured: Sequence[RunMeasures], rules: FlagRules = DEFAULT) -> pl.DataFrame:
    """Findings of the rules over the sweep, for runs measured with `measure_run`."""
    return sweep_evaluate(measured, RULES, rules)


def sweep_red_flags(runs: Sequence[Run], rules: FlagRules = DEFAULT) -> pl.DataFrame:
    """Every run of `runs` against its peers among them (phases detected per run)."""
    return sweep_flags([measure_run(r, rules) for r in runs], rules)


def edit(rules: FlagRules, name: str, path: str, value: object) -> FlagRules:
    """`rules` with one number of rule `name`'s settings (at `path`, as `setting_fields`
    names it) set to `value`: what an editor's input does."""
    rule = RULES[name]
    return rules.with_settings(rule, replace_setting(rules.of(rule), path, value))


def peers_text(findings: pl.DataFrame) -> pl.DataFrame:
    """One `vs peers` text per run with sweep findings (`run`, `vs peers`), for a table
    of runs: the rule's label side and z, e.g. `final LM higher (z +8.2)`."""
    rows: dict[str, list[str]] = {}
    for f in findings.iter_rows(named=True):
        rule = RULES.get(f["rule"])
        if not isinstance(rule, SweepRule) or f["value"] is None:
            continue
        z = float(f["value"])
        side = "higher" if z > 0 else "lower"
        zs = f"{z:+.1f}" if abs(z) != float("inf") else "∞"
        rows.setdefault(f["run"], []).append(f"{rule.label} {side} (z {zs})")
    return pl.DataFrame(
        {"run": list(rows), "vs peers": ["; ".join(v) for v in rows.values()]},
        schema={"run": pl.String, "vs peers": pl.String},
    )


def rules_table() -> pl.DataFrame:
    """Every registered rule in registry order, as the Red flags page lists them."""
    return pl.DataFrame(
        [
            {
                "rule": r.name,
                "checks": r.title,
                "severity": r.severity,
                "where": r.scope,
                "action": r.action,
            }
            for r in RULES.values()
        ],
        schema={c: pl.String for c in ("rule", "checks", "severity", "where", "action")},
    )


def _rule_lines(key: str, rules: FlagRules, run: Run | None = None) -> list[tuple[float, str]]:
    """The thresholds the rules draw on metric `key` with their settings in `rules`: those
    shared by every run, or (given `run`) those relative to that run's own level.

    A rule draws on its own metrics only (`Rule.metrics`, tested), so a run's lines are
    taken from the rules on `key` alone: each reads the run's level from its data."""
    got: list[RefLine] = []
    for rule in RULES.run_rules:
        settings = rules.of(rule)
        if run is None and rule.lines is not None:
            got += rule.lines(settings)
        elif run is not None and rule.run_lines is not None and key in rule.metrics:
            got += rule.run_lines(settings, run)
    return [(line.value, line.label) for line in got if line.metric == key]


def reference_lines(
    column: str, table: str = "steps", rules: FlagRules = DEFAULT
) -> list[tuple[float, str]]:
    """Lines for a chart of `column` shared by every run: the catalog's fixed references
    (zero lines, the trainer's default λ_p clamp and LR, the guide's healthy ranges) and
    the red-flag thresholds on it as `rules` set them (the Red flags page's edits), so a
    line and a finding never disagree."""
    out: list[tuple[float, str]] = []
    for value, label in catalog.reference_lines(column, table) + _rule_lines(
        f"{table}.{column}", rules
    ):
        if value not in {v for v, _ in out}:
            out.append((value, label))
    return out


def run_reference_lines(
    run: Run, column: str, table: str = "steps", rules: FlagRules = DEFAULT
) -> list[tuple[float, str]]:
    """Lines that belong to one run: its own TARGET_K and configured clamps
    (`catalog.run_reference_lines`) and the red-flag thresholds relative to its own level
    (4× its median GRAD, half its median tok/sec)."""
    return catalog.run_reference_lines(run, column, table) + _rule_lines(
        f"{table}.{column}", rules, run
    )


def metric_help(m: catalog.Metric, rules: FlagRules = DEFAULT) -> str:
    """The catalog's help for a metric and the red-flag thresholds drawn on its chart."""
    shared = _rule_lines(m.key, rules)
    flags = [r.name for r in RULES.values() if m.key in r.metrics[:1]]
    parts = [m.help()]
    if shared:
        parts.append("Lines: " + "; ".join(lbl for _, lbl in shared) + ".")
    if flags:
        parts.append("Red flags on it: " + ", ".join(f"`{f}`" for f in flags) + ".")
    return " ".join(parts)


def focus_range(first_step: int, last_step: int, pad_share: float = 0.2) -> tuple[int, int]:
    """The step range that shows a finding with context: its steps plus a fifth of their
    span (at least 50 steps) on each side, never before step 0."""
    pad = max(50, int((last_step - first_step) * pad_share))
    return max(0, first_step - pad), last_step + pad


__all__ = [
    "CRITICAL",
    "DEFAULT",
    "FAILED_ACTION",
    "FINDINGS_SCHEMA",
    "INFO",
    "PEER_FACTS",
    "RULES",
    "SEVERITIES",
    "WARNING",
    "Above",
    "DeadbandSettings",
    "DeltaCeSettings",
    "DepthFit",
    "Finding",
    "FlagRules",
    "FlatSettings",
    "FrozenSettings",
    "GapSettings",
    "GradSettings",
    "KOutlier",
    "LambdaSettings",
    "Level",
    "LmOutlier",
    "LmSettings",
    "Measure",
    "NoSettings",
    "NonfiniteSettings",
    "Outlier",
    "RateOutlier",
    "RefLine",
    "Registry",
    "Rule",
    "RunMeasures",
    "Scope",
    "SettingField",
    "Sustain",
    "SweepRule",
    "ThroughputOutlier",
    "ThroughputSettings",
    "TraceSettings",
    "UniformSettings",
    "above",
    "counts",
    "edit",
    "focus_range",
    "evaluate",
    "measure",
    "measure_run",
    "metric_help",
    "peers_text",
    "red_flags",
    "reference_lines",
    "replace_setting",
    "rules_table",
    "run_reference_lines",
    "setting_fields",
    "sustained",
    "sustained_by",
    "sweep_evaluate",
    "sweep_flags",
    "sweep_red_flags",
]
