"""Survival-trace patterns: the guide's four shapes of `s_trace`, as a classifier.

`s_trace` is the survival probability entering each pass, `[s_1 = 1, s_2, …, s_Kmax]`.
The guide reads four shapes off it (healthy sharp drop, not stopping, over-penalised,
stuck at 0.5). The classifier turns those readings into named thresholds so the same rule
can be applied to thousands of traces, tuned by the user, and explained in a tooltip.

Rules, applied in this order (first match wins), with `s_2` the survival entering pass 2
and `s_last` the survival entering the last pass:

1. `over_penalized`: `s_2 ≤ over_penalized_max_s2` — almost every token stops after k=1.
2. `stuck_half`: every value after the first is within `stuck_tol` of `stuck_center`
   — the gate keeps half the tokens alive and never decides.
3. `not_stopping`: `s_last ≥ not_stopping_min_last` — most tokens run every pass
   (ponder collapse, λ_p too low).
4. `healthy`: `s_last ≤ healthy_max_last` — survival falls to near 0 before Kmax.
5. `other`: anything else (typically a trace in transition), and any trace that cannot be
   judged (fewer than 2 values, or a NaN/inf anywhere).

All comparisons are inclusive. Only `s_2` and the tail are used, so the rules work for any
Kmax ≥ 2 and do not depend on `s_1` being printed as exactly 1.00. With Kmax = 2, `s_2` is
also `s_last`, so only a narrow band (0.10 < s_2 ≤ 0.15 by default) reads as healthy: a
two-pass trace has no room to show a drop followed by a clean stop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ponder_parse.analysis.phases import assign_phase, phase_rank
from ponder_parse.analysis.phases import phases as compute_phases
from ponder_parse.run import Run
from ponder_parse.schema import TableSchema

HEALTHY = "healthy"
NOT_STOPPING = "not_stopping"
OVER_PENALIZED = "over_penalized"
STUCK_HALF = "stuck_half"
OTHER = "other"

PATTERNS: tuple[str, ...] = (HEALTHY, NOT_STOPPING, OVER_PENALIZED, STUCK_HALF, OTHER)
"""All pattern names, healthy first (a stable colour/sort order)."""

PATTERN_TITLES: dict[str, str] = {
    HEALTHY: "Healthy: sharp drop",
    NOT_STOPPING: "Not stopping (ponder collapse)",
    OVER_PENALIZED: "Over-penalized: stops after k=1",
    STUCK_HALF: "Gate stuck at 0.5",
    OTHER: "Other / in transition",
}

FORCED = "forced"
"""Not a classifier verdict: a trace logged while k=2 was forced (warmup or audit step)
shows the forcing, not the gate's choice, so timelines mark it instead of classifying it."""
FORCED_TITLE = "Forced k=2 (warmup or audit step)"

TIMELINE_PATTERNS: tuple[str, ...] = (*PATTERNS, FORCED)
"""Everything a pattern timeline can show, in legend order."""

PATTERN_MEANINGS: dict[str, str] = {
    HEALTHY: "Model deciding to stop early.",
    NOT_STOPPING: "Model not stopping: ponder collapse, λ_p too low.",
    OVER_PENALIZED: "Stopping too aggressively after k=1: over-penalized.",
    STUCK_HALF: "Gate stuck at 0.5: not learning when to stop.",
    OTHER: "None of the guide's shapes (often a trace in transition).",
}

REFERENCE_SHAPES: dict[str, tuple[float, ...]] = {
    HEALTHY: (1.00, 0.82, 0.23, 0.04),
    NOT_STOPPING: (1.00, 0.95, 0.90, 0.85),
    OVER_PENALIZED: (1.00, 0.02, 0.00, 0.00),
    STUCK_HALF: (1.00, 0.50, 0.50, 0.50),
}
"""The guide's example trace for each pattern (Kmax = 4), for drawing reference shapes."""


@dataclass(frozen=True)
class PatternThresholds:
    """Named thresholds of the trace classifier (see the module docstring for the rules).

    Defaults sit between the guide's examples: the over-penalized example has s_2 = 0.02
    and the healthy one 0.82; the not-stopping examples end at 0.85 and 0.96, the stuck one
    at 0.50, the healthy one at 0.04.
    """

    over_penalized_max_s2: float = 0.10
    """At most this share of tokens continue past k=1 → over-penalized."""
    stuck_center: float = 0.50
    stuck_tol: float = 0.10
    """Every s_k (k ≥ 2) within `stuck_tol` of `stuck_center` → gate stuck."""
    not_stopping_min_last: float = 0.60
    """At least this share of tokens still alive entering the last pass → not stopping."""
    healthy_max_last: float = 0.15
    """At most this share alive entering the last pass (and not over-penalized) → healthy."""


DEFAULT = PatternThresholds()


def classify_trace(
    s_trace: Sequence[float] | None, thresholds: PatternThresholds = DEFAULT
) -> str | None:
    """Pattern name of one survival trace (None for a missing trace)."""
    if s_trace is None:
        return None
    values = [float(v) if v is not None else math.nan for v in s_trace]
    if len(values) < 2 or not all(math.isfinite(v) for v in values):
        return OTHER
    t = thresholds
    s2, last = values[1], values[-1]
    if s2 <= t.over_penalized_max_s2:
        return OVER_PENALIZED
    if all(abs(v - t.stuck_center) <= t.stuck_tol for v in values[1:]):
        return STUCK_HALF
    if last >= t.not_stopping_min_last:
        return NOT_STOPPING
    if last <= t.healthy_max_last:
        return HEALTHY
    return OTHER


def pattern_expr(column: str = "s_trace", thresholds: PatternThresholds = DEFAULT) -> pl.Expr:
    """The classifier as a Polars expression over a `List(Float64)` column.

    Mirrors `classify_trace` rule for rule, so results agree row by row.
    """
    t = thresholds
    c = pl.col(column)
    n = c.list.len()
    s2 = c.list.get(1, null_on_oob=True)
    last = c.list.last()
    valid = (n >= 2) & c.list.eval(pl.element().is_finite().fill_null(False)).list.all()
    stuck = (
        c.list.slice(1).list.eval((pl.element() - t.stuck_center).abs() <= t.stuck_tol).list.all()
    )
    return (
        pl.when(c.is_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(~valid)
        .then(pl.lit(OTHER))
        .when(s2 <= t.over_penalized_max_s2)
        .then(pl.lit(OVER_PENALIZED))
        .when(stuck)
        .then(pl.lit(STUCK_HALF))
        .when(last >= t.not_stopping_min_last)
        .then(pl.lit(NOT_STOPPING))
        .when(last <= t.healthy_max_last)
        .then(pl.lit(HEALTHY))
        .otherwise(pl.lit(OTHER))
        .cast(pl.String)
    )


def classify_traces(traces: pl.DataFrame, thresholds: PatternThresholds = DEFAULT) -> pl.DataFrame:
    """`traces` plus a `pattern` column (String; null where `s_trace` is null)."""
    return traces.with_columns(pattern_expr("s_trace", thresholds).alias("pattern"))


def pattern_rank(column: str = "pattern") -> pl.Expr:
    """Position of a pattern in `TIMELINE_PATTERNS` (unknown names last): one sort and
    stacking order for every table and chart."""
    return pl.col(column).replace_strict(
        TIMELINE_PATTERNS, list(range(len(TIMELINE_PATTERNS))), default=len(TIMELINE_PATTERNS)
    )


def reference_shapes_frame() -> pl.DataFrame:
    """The guide's reference shapes in long form for charts: `pattern`, `label` (its
    title), `k` (1-based), `s`."""
    rows = [
        {"pattern": name, "label": PATTERN_TITLES[name], "k": i + 1, "s": value}
        for name, shape in REFERENCE_SHAPES.items()
        for i, value in enumerate(shape)
    ]
    return pl.DataFrame(
        rows, schema={"pattern": pl.String, "label": pl.String, "k": pl.Int64, "s": pl.Float64}
    )


def policy_traces(run: Run) -> pl.DataFrame:
    """The run's traces without those logged on audit steps.

    An audit step forces every token through k=2 as a counterfactual, so its trace shows
    the forced passes (`[1.00, 1.00, 0.00, 0.00]`), not what the gate decided: it must
    not count towards the gate's pattern.
    """
    audits = run.steps.filter(pl.col("audit").fill_null(False)).select("step")
    if audits.is_empty():
        return run.traces
    return run.traces.join(audits, on="step", how="anti")


def _classified(
    data: Run | pl.DataFrame,
    need_phase: bool,
    phases_df: pl.DataFrame | None,
    thresholds: PatternThresholds,
) -> pl.DataFrame:
    df = policy_traces(data) if isinstance(data, Run) else data
    if "pattern" not in df.columns:
        df = classify_traces(df, thresholds)
    if need_phase and "phase" not in df.columns:
        if phases_df is None:
            if not isinstance(data, Run):
                raise ValueError("grouping by phase needs a Run or a phases_df")
            phases_df = compute_phases(data)
        df = assign_phase(df, phases_df)
    return df


SHARES_SCHEMA_TAIL: TableSchema = {
    "pattern": pl.String,
    "n": pl.Int64,
    "share": pl.Float64,
}


def pattern_shares(
    data: Run | pl.DataFrame,
    by: Sequence[str] = ("layer",),
    phases_df: pl.DataFrame | None = None,
    thresholds: PatternThresholds = DEFAULT,
) -> pl.DataFrame:
    """How often each pattern occurs within each group of `by` (e.g. layer, phase).

    Columns: `*by`, `pattern`, `n` (traces), `share` (of the group's classified traces).
    `by` may include "phase"; phases are computed from the run unless `phases_df` is given.
    Traces with a null pattern (no trace) and rows outside every phase are not counted.
    """
    by = list(by)
    df = _classified(data, "phase" in by, phases_df, thresholds)
    df = df.filter(pl.col("pattern").is_not_null())
    if "phase" in by:
        df = df.filter(pl.col("phase").is_not_null())
    schema = {c: df.schema[c] for c in by} | SHARES_SCHEMA_TAIL
    if df.is_empty():
        return pl.DataFrame(schema=schema)
    keys = [*by, "pattern"]
    counts = df.group_by(keys).agg(n=pl.len().cast(pl.Int64))
    total = pl.col("n").sum().over(by) if by else pl.col("n").sum()
    out = counts.with_columns(share=pl.col("n") / total)
    order = [pattern_rank()]
    if "phase" in by:
        out = out.sort([*(pl.col(c) for c in by if c != "phase"), phase_rank(), *order])
    else:
        out = out.sort([*(pl.col(c) for c in by), *order])
    return out.select(list(schema)).cast(pl.Schema(schema))


def dominant_pattern(
    run: Run | pl.DataFrame,
    phases_df: pl.DataFrame | None = None,
    thresholds: PatternThresholds = DEFAULT,
) -> pl.DataFrame:
    """Most common pattern per phase, over all layers' traces in that phase.

    Columns: `phase`, `pattern`, `share`, `n` (traces of that pattern), `n_traces`.
    Ties go to the pattern listed first in `PATTERNS`, so the answer is deterministic.
    """
    shares = pattern_shares(run, by=["phase"], phases_df=phases_df, thresholds=thresholds)
    schema = {
        "phase": pl.String,
        "pattern": pl.String,
        "share": pl.Float64,
        "n": pl.Int64,
        "n_traces": pl.Int64,
    }
    if shares.is_empty():
        return pl.DataFrame(schema=schema)
    out = (
        shares.with_columns(n_traces=pl.col("n").sum().over("phase"), _r=pattern_rank())
        .sort(["phase", "n", "_r"], descending=[False, True, False])
        .group_by("phase", maintain_order=True)
        .first()
        .with_columns(_p=phase_rank())
        .sort("_p")
    )
    return out.select(list(schema)).cast(pl.Schema(schema))
