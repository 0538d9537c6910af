"""Per-phase summaries and run-versus-baseline comparison.

Comparing two ponder runs over their whole length mixes phases that behave differently by
design (LM falls fastest in the force warmup, λ_p only moves in the economic phase), so
the comparison unit is the phase: the same phase of each run, side by side, with the
difference from a chosen baseline.

Means, medians and end values skip NaN/inf: a diverged stretch is reported by the
red-flag table and would otherwise turn every number of the phase into NaN. Audit steps
(forced k=2 counterfactuals) are left out of every figure unless `include_audit`: they
report the forced depth, not the run's. LM outcomes are windowed means (`OUTCOME_WINDOW`
logged steps): one batch's LM jitters by ±0.3 on real runs, enough to reorder a sweep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from ponder_parse import schema
from ponder_parse.analysis.patterns import dominant_pattern, run_kmax
from ponder_parse.analysis.phases import (
    ECONOMIC,
    assign_phase,
    phase_rank,
    phases,
)
from ponder_parse.analysis.red_flags import DEFAULT as DEFAULT_RULES
from ponder_parse.analysis.red_flags import FlagRules, counts, red_flags
from ponder_parse.analysis.sweep import sweep_table, swept_hparams
from ponder_parse.formatting import fmt
from ponder_parse.run import Run

SUMMARY_SCHEMA: schema.TableSchema = {
    "run": pl.String,
    "phase": pl.String,
    "start": pl.Int64,
    "end": pl.Int64,
    "steps": pl.Int64,
    "lm_start": pl.Float64,
    "lm_end": pl.Float64,
    "lm_mean": pl.Float64,
    "lm_change": pl.Float64,
    "k_mean": pl.Float64,
    "ctrl_err_abs_mean": pl.Float64,
    "lambda_p_end": pl.Float64,
    "win_rate": pl.Float64,
    "audit_pos_rate": pl.Float64,
    "confidence_rate": pl.Float64,
    "p_near_clamp_mean": pl.Float64,
    "grad_mean": pl.Float64,
    "grad_p95": pl.Float64,
    "tok_per_sec_mean": pl.Float64,
    "dominant_pattern": pl.String,
    "dominant_pattern_share": pl.Float64,
}

COMPARED_METRICS: tuple[str, ...] = (
    "steps",
    "lm_start",
    "lm_end",
    "lm_mean",
    "lm_change",
    "k_mean",
    "ctrl_err_abs_mean",
    "lambda_p_end",
    "win_rate",
    "audit_pos_rate",
    "confidence_rate",
    "p_near_clamp_mean",
    "grad_mean",
    "grad_p95",
    "tok_per_sec_mean",
    "dominant_pattern_share",
)
"""Numeric summary columns that get a `<metric>_diff` column in `compare_phases`."""


OUTCOME_WINDOW = 100
"""Logged steps averaged for an LM outcome (final, best, a phase's start and end)."""

OUTCOME_HELP: dict[str, str] = {
    "final_lm": f"Mean LM of the last {OUTCOME_WINDOW} logged steps (audit steps left out "
    "unless included); the raw last value is in the run's details.",
    "best_lm": f"Lowest mean LM over {OUTCOME_WINDOW} consecutive logged steps (a rolling "
    "mean, so one lucky batch does not count).",
    "best_lm_step": f"Last step of the best {OUTCOME_WINDOW}-step window.",
    "lm_start": f"Mean LM of the phase's first {OUTCOME_WINDOW} logged steps (a quarter of "
    f"the phase when it has fewer than {4 * OUTCOME_WINDOW}).",
    "lm_end": f"Mean LM of the phase's last {OUTCOME_WINDOW} logged steps (a quarter of "
    f"the phase when it has fewer than {4 * OUTCOME_WINDOW}).",
    "lm_change": "lm_end − lm_start, both windowed means (negative is good).",
    "k_mean": "Mean AVGS k over the phase's steps (audit steps left out unless included).",
    "k_mean_economic": "Mean AVGS k over the economic phase (audit steps left out unless "
    "included).",
}
"""Column help for the outcome columns (keyed by summary column), shown by the tables."""


def column_help(columns: Sequence[str]) -> dict[str, str]:
    """`OUTCOME_HELP` of the given table columns, a `<metric>_diff` column explained as
    the difference of its metric from the baseline's."""
    out: dict[str, str] = {}
    for c in columns:
        if c in OUTCOME_HELP:
            out[c] = OUTCOME_HELP[c]
        elif c.endswith("_diff") and c[: -len("_diff")] in OUTCOME_HELP:
            out[c] = "Run minus baseline, same phase. " + OUTCOME_HELP[c[: -len("_diff")]]
    return out


def _without_audit(df: pl.DataFrame, include_audit: bool) -> pl.DataFrame:
    if include_audit or "audit" not in df.columns:
        return df
    return df.filter(~pl.col("audit").fill_null(False))


def _finite(col: str) -> pl.Expr:
    c = pl.col(col)
    return pl.when(c.is_finite()).then(c).otherwise(None)


def _phase_of(df: pl.DataFrame, phases_df: pl.DataFrame) -> pl.DataFrame:
    return assign_phase(df, phases_df).filter(pl.col("phase").is_not_null())


def phase_summary(
    run: Run, phases_df: pl.DataFrame | None = None, include_audit: bool = False
) -> pl.DataFrame:
    """One row per phase of `run` (columns: `SUMMARY_SCHEMA`).

    `win_rate` = ECONOMIC WIN / (ECONOMIC WIN + TAX ONLY) quality lines; `audit_pos_rate`
    = AUDIT-POS / audit quality lines; `confidence_rate` = CONFIDENCE+ / policy quality
    lines; all null where the phase has no such lines. `lm_start`/`lm_end` are windowed
    means (`OUTCOME_HELP`), `lm_change` = `lm_end − lm_start` (negative is good).
    `grad_p95` is the 95th percentile of GRAD (linear interpolation). `dominant_pattern`
    is `forced` in the force warmup, where traces reflect the forced passes. Step figures
    leave audit steps out unless `include_audit`.
    """
    if phases_df is None:
        phases_df = phases(run)
    if phases_df.is_empty():
        return pl.DataFrame(schema=SUMMARY_SCHEMA)

    st = _phase_of(run.steps.sort("step"), phases_df)
    steps_n = st.group_by("phase").agg(steps=pl.len().cast(pl.Int64))
    st = _without_audit(st, include_audit)
    lm = st.filter(pl.col("lm_loss").is_finite().fill_null(False))
    w = pl.max_horizontal(pl.lit(1), pl.min_horizontal(pl.lit(OUTCOME_WINDOW), pl.len() // 4))
    lm_stats = lm.group_by("phase").agg(
        lm_start=pl.col("lm_loss").head(w).mean(),
        lm_end=pl.col("lm_loss").tail(w).mean(),
    )
    step_stats = st.group_by("phase").agg(
        lm_mean=_finite("lm_loss").mean(),
        k_mean=_finite("avg_k").mean(),
        ctrl_err_abs_mean=_finite("ctrl_err").abs().mean(),
        lambda_p_end=_finite("lambda_p").drop_nulls().last(),
        p_near_clamp_mean=_finite("p_near_clamp").mean(),
        grad_mean=_finite("grad_norm").mean(),
        grad_p95=_finite("grad_norm").quantile(0.95, interpolation="linear"),
        tok_per_sec_mean=_finite("tok_per_sec").mean(),
    )

    q = _phase_of(run.quality, phases_df)
    status = pl.col("status")
    policy = status.is_in(schema.POLICY_STATUSES)
    audit = status.is_in(schema.AUDIT_STATUSES)
    n_policy = policy.sum()
    n_audit = audit.sum()
    quality_stats = q.group_by("phase").agg(
        win_rate=pl.when(n_policy > 0).then((status == schema.ECONOMIC_WIN).sum() / n_policy),
        audit_pos_rate=pl.when(n_audit > 0).then((status == schema.AUDIT_POS).sum() / n_audit),
        confidence_rate=pl.when(n_policy > 0).then(
            (policy & pl.col("confidence").fill_null(False)).sum() / n_policy
        ),
    )

    dom = dominant_pattern(run, phases_df, include_audit=include_audit).select(
        "phase",
        pl.col("pattern").alias("dominant_pattern"),
        pl.col("share").alias("dominant_pattern_share"),
    )

    out = (
        phases_df.select("phase", "start", "end")
        .join(steps_n, on="phase", how="left")
        .join(lm_stats, on="phase", how="left")
        .join(step_stats, on="phase", how="left")
        .join(quality_stats, on="phase", how="left")
        .join(dom, on="phase", how="left")
        .with_columns(
            run=pl.lit(run.name),
            steps=pl.col("steps").fill_null(0),
            lm_change=pl.col("lm_end") - pl.col("lm_start"),
        )
    )
    return out.select(list(SUMMARY_SCHEMA)).cast(pl.Schema(SUMMARY_SCHEMA))


def compare_phases(
    runs: Sequence[Run],
    baseline: str,
    phase_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    summaries: Mapping[str, pl.DataFrame] | None = None,
    include_audit: bool = False,
) -> pl.DataFrame:
    """Phase summaries of several runs, each with its difference from `baseline`.

    Long format, one row per (run, phase): the `SUMMARY_SCHEMA` columns, `is_baseline`,
    and for every metric in `COMPARED_METRICS` a `<metric>_diff` = run − baseline in the
    same phase (null where the baseline lacks that phase or either value is missing; a
    difference of counts stays a count). Rows follow the order of `runs`, each run's
    phases in training order, so charts list runs as the user does.
    `phase_overrides` maps run name → `phases()` overrides, so each run can use its own
    boundaries; `summaries` maps run name → its `phase_summary` already computed (the app
    caches them), used instead of recomputing; `include_audit` as in `phase_summary`.
    """
    names = [r.name for r in runs]
    if len(set(names)) != len(names):
        raise ValueError("run names must be unique to compare them")
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not one of the runs")
    known = summaries or {}
    overrides = phase_overrides or {}
    parts = [
        known[r.name]
        if r.name in known
        else phase_summary(
            r, phases(r, dict(overrides.get(r.name) or {}) or None), include_audit=include_audit
        )
        for r in runs
    ]
    all_ = pl.concat(parts) if parts else pl.DataFrame(schema=SUMMARY_SCHEMA)
    base = all_.filter(pl.col("run") == baseline).select(
        "phase", *[pl.col(m).alias(f"_b_{m}") for m in COMPARED_METRICS]
    )
    order = {name: i for i, name in enumerate(names)}
    out = (
        all_.join(base, on="phase", how="left")
        .with_columns(
            is_baseline=pl.col("run") == baseline,
            **{f"{m}_diff": pl.col(m) - pl.col(f"_b_{m}") for m in COMPARED_METRICS},
        )
        .sort(pl.col("run").replace_strict(order), phase_rank())
    )
    cols = [*SUMMARY_SCHEMA, "is_baseline", *(f"{m}_diff" for m in COMPARED_METRICS)]
    return out.select(cols)


PHASE_TABLE_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [
            "run",
            "phase",
            "start",
            "end",
            "steps",
            *COMPARED_METRICS,
            "dominant_pattern",
            "dominant_pattern_share",
        ]
    )
)
"""What the phase table shows of `compare_phases`, before the differences."""


def phase_table(comparison: pl.DataFrame, diffs: bool = True) -> pl.DataFrame:
    """`compare_phases` as the phase table reads it: one block per phase in training
    order, runs by name within it, with the `<metric>_diff` columns when `diffs`."""
    cols = [*PHASE_TABLE_COLUMNS, *((f"{m}_diff" for m in COMPARED_METRICS) if diffs else ())]
    return comparison.sort(phase_rank(), "run").select([c for c in cols if c in comparison.columns])


RUN_SUMMARY_SCHEMA: schema.TableSchema = {
    "run": pl.String,
    "variant": pl.String,
    "steps": pl.Int64,
    "first_step": pl.Int64,
    "last_step": pl.Int64,
    "final_lm": pl.Float64,
    "best_lm": pl.Float64,
    "best_lm_step": pl.Int64,
    "k_mean_economic": pl.Float64,
    "ctrl_err_abs_mean_economic": pl.Float64,
    "win_rate": pl.Float64,
    "audit_pos_rate": pl.Float64,
    "lambda_p_end": pl.Float64,
    "dominant_pattern": pl.String,
    "deadband_step": pl.Int64,
    "restarts": pl.Int64,
    "problems": pl.Int64,
    "params": pl.Int64,
    "n_layers": pl.Int64,
    "kmax": pl.Int64,
    "target_k": pl.Float64,
    "n_flags": pl.Int64,
    "n_critical": pl.Int64,
    "n_warning": pl.Int64,
    "n_info": pl.Int64,
}


def lm_outcomes(run: Run, include_audit: bool = False) -> dict[str, Any]:
    """The run's LM outcomes as windowed means (`OUTCOME_HELP`): `final_lm`, `best_lm`,
    `best_lm_step`, and `last_lm`/`last_lm_step`, the raw last finite value, for the
    run's details. None where the run has no finite LM."""
    st = _without_audit(run.steps.sort("step"), include_audit)
    lm = st.filter(pl.col("lm_loss").is_finite().fill_null(False)).select("step", "lm_loss")
    if lm.is_empty():
        return dict.fromkeys(("final_lm", "best_lm", "best_lm_step", "last_lm", "last_lm_step"))
    w = min(OUTCOME_WINDOW, lm.height)
    rolled = lm.with_columns(_m=pl.col("lm_loss").rolling_mean(w)).drop_nulls("_m")
    best = rolled.sort("_m", "step").row(0, named=True)
    return {
        "final_lm": float(lm.select(pl.col("lm_loss").tail(w).mean()).item()),
        "best_lm": float(best["_m"]),
        "best_lm_step": int(best["step"]),
        "last_lm": float(lm["lm_loss"][-1]),
        "last_lm_step": int(lm["step"][-1]),
    }


def run_summary(
    run: Run,
    phases_df: pl.DataFrame | None = None,
    findings: pl.DataFrame | None = None,
    rules: FlagRules = DEFAULT_RULES,
    include_audit: bool = False,
) -> dict[str, Any]:
    """One run in one dict (keys: `RUN_SUMMARY_SCHEMA`), for the home / sweep table.

    `final_lm` and `best_lm` are windowed means of finite LM values (`OUTCOME_HELP`; a
    run that ends in NaN still gets a number, the `nonfinite` flag says why).
    Economic-phase figures are None when the run never reached that phase. Pass
    `findings` to reuse red flags already computed. Audit steps are left out of every
    figure unless `include_audit`.
    """
    if phases_df is None:
        phases_df = phases(run)
    if findings is None:
        findings = red_flags(run, rules, phases_df)
    meta = run.meta or {}
    st = run.steps.sort("step")
    outcomes = lm_outcomes(run, include_audit)
    summary = phase_summary(run, phases_df, include_audit=include_audit)
    econ = summary.filter(pl.col("phase") == ECONOMIC)
    e = econ.row(0, named=True) if econ.height else {}
    c = counts(findings)

    def _int(v: Any) -> int | None:
        try:
            return None if v is None else int(v)
        except (TypeError, ValueError):
            return None

    def _float(v: Any) -> float | None:
        try:
            return None if v is None else float(v)
        except (TypeError, ValueError):
            return None

    return {
        "run": run.name,
        "variant": run.variant,
        "steps": run.n_steps,
        "first_step": _int(st["step"].min()) if st.height else None,
        "last_step": run.last_step,
        "final_lm": outcomes["final_lm"],
        "best_lm": outcomes["best_lm"],
        "best_lm_step": outcomes["best_lm_step"],
        "k_mean_economic": e.get("k_mean"),
        "ctrl_err_abs_mean_economic": e.get("ctrl_err_abs_mean"),
        "win_rate": e.get("win_rate"),
        "audit_pos_rate": e.get("audit_pos_rate"),
        "lambda_p_end": e.get("lambda_p_end"),
        "dominant_pattern": e.get("dominant_pattern"),
        "deadband_step": _int(meta.get("deadband_step")),
        "restarts": _int(meta.get("restarts")) or 0,
        "problems": run.problems.height,
        "params": _int(meta.get("params")),
        "n_layers": _int(meta.get("n_layers")),
        "kmax": run_kmax(run),
        "target_k": _float(meta.get("target_k")),
        "n_flags": findings.height,
        "n_critical": c["critical"],
        "n_warning": c["warning"],
        "n_info": c["info"],
    }


def summary_table(
    runs: Sequence[Run],
    rules: FlagRules = DEFAULT_RULES,
    summaries: Mapping[str, Mapping[str, Any]] | None = None,
    include_audit: bool = False,
) -> pl.DataFrame:
    """`run_summary` of every run as one typed frame (columns: `RUN_SUMMARY_SCHEMA`).

    `summaries` maps run name to a `run_summary` already computed (the app caches them);
    runs without an entry are summarised here.
    """
    known = summaries or {}
    rows = [
        dict(known[r.name])
        if r.name in known
        else run_summary(r, rules=rules, include_audit=include_audit)
        for r in runs
    ]
    return pl.DataFrame(rows, schema=RUN_SUMMARY_SCHEMA)


HEALTHY = "healthy"
WARNING = "warning"
CRITICAL = "critical"
NO_DATA = "no data"
HEALTHS = (CRITICAL, WARNING, HEALTHY, NO_DATA)  # worst first
UNKNOWN = "unknown"  # the summary itself could not be computed (the run store says why)


def health(summary: Mapping[str, Any]) -> str:
    """A run's health in one word, from its `run_summary`: critical if any critical red
    flag, warning if warnings only, healthy if none, no data without a single step line
    (nothing to judge, which is not the same as healthy)."""
    if not summary.get("steps"):
        return NO_DATA
    if summary.get("n_critical"):
        return CRITICAL
    return WARNING if summary.get("n_warning") else HEALTHY


RUNS_TABLE_COLUMNS: dict[str, str] = {
    "variant": "variant",
    "steps": "steps",
    "last_step": "last step",
    "final_lm": "final LM",
    "best_lm": "best LM",
    "k_mean_economic": "mean k (economic)",
    "target_k": "TARGET_K",
    "win_rate": "win rate",
    "dominant_pattern": "dominant trace",
    "restarts": "restarts",
    "problems": "problems",
}
"""`run_summary` keys the runs table shows, and its headers for them."""

RUNS_TABLE_HELP: dict[str, str] = {
    header: OUTCOME_HELP[key] for key, header in RUNS_TABLE_COLUMNS.items() if key in OUTCOME_HELP
}
"""Column help of the runs table, by header."""


def runs_table(
    runs: Sequence[Run],
    summaries: Mapping[str, Mapping[str, Any]] | None = None,
    include_audit: bool = False,
) -> pl.DataFrame:
    """Every run at a glance: `run`, `health`, the settings the sweep varied (as text),
    then outcomes under `RUNS_TABLE_COLUMNS` headers and `red flags` (critical + warning).

    What differs between runs sits next to the name and health, before the outcomes, so
    the table reads as "this setting, this result". `summaries` as in `summary_table`.
    """
    t = summary_table(runs, summaries=summaries, include_audit=include_audit)
    table = t.select(
        "run",
        pl.Series("health", [health(row) for row in t.iter_rows(named=True)], dtype=pl.String),
        *[pl.col(k).alias(v) for k, v in RUNS_TABLE_COLUMNS.items()],
        (pl.col("n_critical") + pl.col("n_warning")).alias("red flags"),
    )
    varying = swept_hparams(runs)
    if not varying:
        return table
    # A setting named like a column of the table (a folder named `variant=smollm`) gets
    # its own header rather than a join suffix.
    names = {k: f"{k} (setting)" if k in table.columns else k for k in varying}
    hp = sweep_table(runs).select(
        "run", *[pl.col(k).cast(pl.String).alias(names[k]) for k in varying]
    )
    shown = list(names.values())
    return table.join(hp, on="run", how="left").select(
        "run", "health", *shown, pl.exclude("run", "health", *shown)
    )


def runs_overview(table: pl.DataFrame) -> dict[str, int]:
    """The runs table's headline counts: `healthy` and `critical` runs, and `problems`
    (log lines not understood, over all runs)."""
    return {
        HEALTHY: int((table["health"] == HEALTHY).sum()),
        CRITICAL: int((table["health"] == CRITICAL).sum()),
        "problems": int(table["problems"].sum()),
    }


def run_facts(run: Run) -> pl.DataFrame:
    """What the log itself said about a run's set-up, and its raw last LM, as `fact`,
    `value` text rows (a missing fact reads as a dash, not as an empty cell)."""
    meta = run.meta
    last = lm_outcomes(run, include_audit=True)
    facts = {
        "layers": meta.get("n_layers"),
        "Kmax": run_kmax(run),
        "TARGET_K": meta.get("target_k"),
        "TARGET_K from": meta.get("target_k_source"),
        "deadband engaged at step": meta.get("deadband_step"),
        "resumed at steps": ", ".join(map(str, meta.get("resume_steps", []))) or None,
        "last LM (raw, one batch)": None
        if last["last_lm"] is None
        else f"{fmt(last['last_lm'], '.4f')} at step {last['last_lm_step']}",
        # A flag, said as words: `fmt(False)` would print the boolean as the number 0.
        "log still being written": None
        if meta.get("truncated") is None
        else ("yes (its last line has no end yet)" if meta["truncated"] else "no"),
    }
    return pl.DataFrame(
        {"fact": list(facts), "value": [fmt(v) for v in facts.values()]},
        schema={"fact": pl.String, "value": pl.String},
    )


def line_kinds_text(run: Run) -> str | None:
    """How the log's lines split into kinds (`6427 lines: 3000 step, 1800 quality, …`);
    None when the reader recorded no kinds."""
    kinds = run.meta.get("line_kinds", {})
    if not kinds:
        return None
    return f"{run.meta.get('n_lines', 0)} lines: " + ", ".join(
        f"{n} {k.replace('_', ' ')}" for k, n in kinds.items()
    )
