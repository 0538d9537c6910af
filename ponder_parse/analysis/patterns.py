"""Survival-trace patterns: the guide's shapes of `s_trace`, read as the trainer prints it.

`s_trace` lists the survival probability entering each pass that actually *ran*,
`[s_1 = 1, s_2, …]`. The ponder loop stops early once (almost) no token is alive any more,
so a trace shorter than the run's Kmax means the passes it does not list never ran: the
survival entering them was ≈ 0. Every rule reads the trace that way (the *full* trace:
the listed values, then 0 up to Kmax). The guide reads four shapes off it (healthy sharp
drop, not stopping, over-penalised, stuck at 0.5); a gate frozen at 0.5 for every token
gives a fifth (survival halves each pass, 0.5^k). Where the trace alone cannot tell, the
layer line of the same step and layer decides (`p_mu`, `p_std`, `tok avg`).

Rules, applied in this order (first match wins), with `s_2` the survival entering pass 2
and `s_last` the survival entering pass Kmax (0 for a cut-short trace):

1. `over_penalized`: `s_2 ≤ over_penalized_max_s2` — almost every token stops after k=1.
2. `frozen_gate`: the layer line shows one gate value for every token (`p_std ≤
   frozen_max_p_std`) at 0.5 (`|p_mu − 0.5| ≤ frozen_p_tol`) and every listed `s_k` is
   within `frozen_shape_tol` of 0.5^(k−1) — the gate never left its starting point.
3. `stuck_half`: every value of the full trace after the first is within `stuck_tol` of
   `stuck_center` — survival plateaus at half and the gate never decides.
4. `not_stopping`: `s_last ≥ not_stopping_min_last` — most tokens run every pass.
5. `healthy`: `s_last ≤ healthy_max_last` — survival falls to near 0 by Kmax; a
   cut-short trace (the loop stopped early) is one.
6. `not_stopping` again when the trace is in between but the layer line says every token
   ran every pass (`tok avg ≥ Kmax − all_passes_margin`).
7. `other`: anything else (a trace in transition), and any trace that cannot be judged
   (empty, a NaN/inf anywhere, or a single value with no Kmax to read it against).

All comparisons are inclusive. Traces logged while the passes were forced to k=2 (the
force-2 warmup and audit steps) are not the gate's decisions: `classify_run` gives them
the category `forced`, never one of the patterns above.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from ponder_parse.analysis.phases import FORCE_WARMUP, assign_phase, phase_rank
from ponder_parse.analysis.phases import phases as compute_phases
from ponder_parse.run import Run
from ponder_parse.schema import TableSchema

HEALTHY = "healthy"
NOT_STOPPING = "not_stopping"
OVER_PENALIZED = "over_penalized"
STUCK_HALF = "stuck_half"
FROZEN_GATE = "frozen_gate"
OTHER = "other"

PATTERNS: tuple[str, ...] = (HEALTHY, NOT_STOPPING, OVER_PENALIZED, STUCK_HALF, FROZEN_GATE, OTHER)
"""All pattern names, healthy first (a stable colour/sort order)."""

PATTERN_TITLES: dict[str, str] = {
    HEALTHY: "Healthy: sharp drop",
    NOT_STOPPING: "Not stopping (ponder collapse)",
    OVER_PENALIZED: "Over-penalized: stops after k=1",
    STUCK_HALF: "Gate stuck at 0.5",
    FROZEN_GATE: "Gate frozen at 0.5 (survival 0.5^k)",
    OTHER: "Other / in transition",
}

FORCED = "forced"
"""Not a classifier verdict: a trace logged while k=2 was forced (warmup or audit step)
shows the forcing, not the gate's choice, so it is counted as a category of its own."""
FORCED_TITLE = "Forced k=2 (warmup or audit step)"

TIMELINE_PATTERNS: tuple[str, ...] = (*PATTERNS, FORCED)
"""Everything a timeline, share or summary can show, in legend order."""

CATEGORY_TITLES: dict[str, str] = PATTERN_TITLES | {FORCED: FORCED_TITLE}
"""Display title of every category of `TIMELINE_PATTERNS`."""

PATTERN_MEANINGS: dict[str, str] = {
    HEALTHY: "Model deciding to stop early.",
    NOT_STOPPING: "Model not stopping: ponder collapse, λ_p too low.",
    OVER_PENALIZED: "Stopping too aggressively after k=1: over-penalized.",
    STUCK_HALF: "Gate stuck at 0.5: not learning when to stop.",
    FROZEN_GATE: "Gate at 0.5 for every token: nothing learnt yet, every token runs all passes.",
    OTHER: "None of the shapes (often a trace in transition).",
    FORCED: "Passes forced to k=2 (force-2 warmup or audit step): not the gate's decision.",
}

REFERENCE_SHAPES: dict[str, tuple[float, ...]] = {
    HEALTHY: (1.00, 0.82, 0.23, 0.04),
    NOT_STOPPING: (1.00, 0.95, 0.90, 0.85),
    OVER_PENALIZED: (1.00, 0.02, 0.00, 0.00),
    STUCK_HALF: (1.00, 0.50, 0.50, 0.50),
}
"""The guide's example trace for each of its four patterns (Kmax = 4), for drawing
reference shapes (a frozen gate's halving needs its layer line to be told apart)."""

LAYER_COLUMNS: tuple[str, ...] = ("p_mean", "p_std", "avg_exec_token", "k_exec")
"""Per-layer columns the classifier reads where the trace alone cannot tell."""


@dataclass(frozen=True)
class PatternThresholds:
    """Named thresholds of the trace classifier (see the module docstring for the rules).

    Defaults sit between the guide's examples: the over-penalized example has s_2 = 0.02
    and the healthy one 0.82; the not-stopping examples end at 0.85 and 0.96, the stuck one
    at 0.50, the healthy one at 0.04. The frozen-gate bounds accept what the trainer
    prints for a gate at exactly 0.5 (`p_mu=0.50`, `p_std=0.000`, s rounded to 2 places).
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
    frozen_max_p_std: float = 0.005
    """Gate spread across tokens at most this (p_std prints 0.000) → one value for all."""
    frozen_p_tol: float = 0.02
    """p_mu within this of 0.5 → the gate sits at its starting value."""
    frozen_shape_tol: float = 0.03
    """Every s_k within this of 0.5^(k−1) → the trace is the frozen gate's halving."""
    all_passes_margin: float = 0.05
    """`tok avg` at least Kmax minus this → every token ran every pass."""


DEFAULT = PatternThresholds()


def pattern_rules(t: PatternThresholds = DEFAULT) -> dict[str, str]:
    """How each category is decided, in words with the thresholds in force: the one
    explanation a help text shows (in rule order, `forced` first: it is decided first)."""
    return {
        FORCED: "logged in the force-2 warmup or on an audit step (the trainer forced k=2); "
        "not classified.",
        OVER_PENALIZED: f"s₂ ≤ {t.over_penalized_max_s2:g}: almost every token stops after "
        "the first pass (a trace of one value, cut after pass 1, counts as s₂ = 0).",
        FROZEN_GATE: f"the layer line has p_std ≤ {t.frozen_max_p_std:g} and p_mu within "
        f"{t.frozen_p_tol:g} of 0.5, and every sₖ is within {t.frozen_shape_tol:g} of "
        "0.5^(k−1) (e.g. [1.00, 0.50, 0.25, 0.12]).",
        STUCK_HALF: f"every sₖ after the first is within {t.stuck_tol:g} of "
        f"{t.stuck_center:g}, up to Kmax (a cut-short trace is not stuck).",
        NOT_STOPPING: f"survival entering pass Kmax ≥ {t.not_stopping_min_last:g}; or, "
        "for a trace in between, the layer line's tok avg ≥ Kmax − "
        f"{t.all_passes_margin:g} (every token ran every pass).",
        HEALTHY: f"survival entering pass Kmax ≤ {t.healthy_max_last:g}. A trace shorter "
        "than Kmax is one: the loop stopped because nothing survived, so the passes it does "
        "not list had survival ≈ 0 ([1.00, 0.46, 0.21] and [1.00, 0.30] with Kmax 4).",
        OTHER: "anything else: a full-length trace ending between "
        f"{t.healthy_max_last:g} and {t.not_stopping_min_last:g} without a layer line that "
        "decides it, or a trace with a NaN/inf.",
    }


def _num(v: object) -> float:
    if not isinstance(v, int | float | str):
        return math.nan
    try:
        return float(v)
    except ValueError:
        return math.nan


def classify_trace(
    s_trace: Sequence[float] | None,
    thresholds: PatternThresholds = DEFAULT,
    kmax: int | None = None,
    layer: Mapping[str, object] | None = None,
) -> str | None:
    """Pattern name of one survival trace (None for a missing trace).

    `kmax` is the run's Kmax (None: the trace's own length, so nothing is cut short);
    `layer` the same step's layer line (`p_mean`, `p_std`, `avg_exec_token`, `k_exec`)."""
    if s_trace is None:
        return None
    values = [_num(v) for v in s_trace]
    layer = layer or {}
    n = len(values)
    k_exec = _num(layer.get("k_exec"))
    full = max(n, kmax or 0, int(k_exec) if math.isfinite(k_exec) else 0)
    if n < 1 or full < 2 or not all(math.isfinite(v) for v in values):
        return OTHER
    t = thresholds
    cut = n < full
    s2 = values[1] if n >= 2 else 0.0
    last = 0.0 if cut else values[-1]
    if s2 <= t.over_penalized_max_s2:
        return OVER_PENALIZED
    p_mu, p_std = _num(layer.get("p_mean")), _num(layer.get("p_std"))
    if (
        p_std <= t.frozen_max_p_std
        and abs(p_mu - 0.5) <= t.frozen_p_tol
        and all(abs(v - 0.5**i) <= t.frozen_shape_tol for i, v in enumerate(values))
    ):
        return FROZEN_GATE
    tail = [*values[1:], *([0.0] if cut else [])]
    if all(abs(v - t.stuck_center) <= t.stuck_tol for v in tail):
        return STUCK_HALF
    if last >= t.not_stopping_min_last:
        return NOT_STOPPING
    if last <= t.healthy_max_last:
        return HEALTHY
    if _num(layer.get("avg_exec_token")) >= full - t.all_passes_margin:
        return NOT_STOPPING
    return OTHER


def _layer_col(names: Sequence[str], column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Float64) if column in names else pl.lit(None, pl.Float64)


def pattern_expr(
    column: str = "s_trace",
    thresholds: PatternThresholds = DEFAULT,
    kmax: int | None = None,
    columns: Sequence[str] = (),
) -> pl.Expr:
    """The classifier as a Polars expression over a `List(Float64)` column.

    Mirrors `classify_trace` rule for rule, so results agree row by row. `columns` names
    the layer-line columns (`LAYER_COLUMNS`) present in the frame; absent ones read as
    missing, as in `classify_trace`.
    """
    t = thresholds
    c = pl.col(column)
    n = c.list.len()
    k_exec = _layer_col(columns, "k_exec").fill_nan(None).fill_null(0).cast(pl.Int64)
    full = pl.max_horizontal(n, pl.lit(kmax or 0, pl.Int64), k_exec)
    cut = n < full
    s2 = pl.when(n >= 2).then(c.list.get(1, null_on_oob=True)).otherwise(0.0)
    last = pl.when(cut).then(0.0).otherwise(c.list.last())
    valid = (
        (n >= 1) & (full >= 2) & c.list.eval(pl.element().is_finite().fill_null(False)).list.all()
    )
    p_mu, p_std = _layer_col(columns, "p_mean"), _layer_col(columns, "p_std")
    halving = c.list.eval(
        (pl.element() - pl.lit(0.5).pow(pl.int_range(pl.len()))).abs() <= t.frozen_shape_tol
    ).list.all()
    frozen = (
        (p_std <= t.frozen_max_p_std).fill_null(False)
        & ((p_mu - 0.5).abs() <= t.frozen_p_tol).fill_null(False)
        & halving
    )
    stuck = c.list.slice(1).list.eval(
        (pl.element() - t.stuck_center).abs() <= t.stuck_tol
    ).list.all() & (~cut | (abs(0.0 - t.stuck_center) <= t.stuck_tol))
    all_passes = (
        _layer_col(columns, "avg_exec_token") >= full.cast(pl.Float64) - t.all_passes_margin
    ).fill_null(False)
    return (
        pl.when(c.is_null())
        .then(pl.lit(None, dtype=pl.String))
        .when(~valid)
        .then(pl.lit(OTHER))
        .when(s2 <= t.over_penalized_max_s2)
        .then(pl.lit(OVER_PENALIZED))
        .when(frozen)
        .then(pl.lit(FROZEN_GATE))
        .when(stuck)
        .then(pl.lit(STUCK_HALF))
        .when(last >= t.not_stopping_min_last)
        .then(pl.lit(NOT_STOPPING))
        .when(last <= t.healthy_max_last)
        .then(pl.lit(HEALTHY))
        .when(all_passes)
        .then(pl.lit(NOT_STOPPING))
        .otherwise(pl.lit(OTHER))
        .cast(pl.String)
    )


def with_layer_lines(traces: pl.DataFrame, layers: pl.DataFrame | None) -> pl.DataFrame:
    """`traces` plus the `LAYER_COLUMNS` of the same step and layer (null where that layer
    line is missing), for the rules that need them. Columns already present are kept."""
    if layers is None or layers.is_empty():
        return traces
    cols = [c for c in LAYER_COLUMNS if c in layers.columns and c not in traces.columns]
    if not cols:
        return traces
    lay = layers.select("step", "layer", *cols).unique(["step", "layer"], keep="last")
    return traces.join(lay, on=["step", "layer"], how="left", maintain_order="left")


def classify_traces(
    traces: pl.DataFrame,
    thresholds: PatternThresholds = DEFAULT,
    kmax: int | None = None,
    layers: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """`traces` plus a `pattern` column (String; null where `s_trace` is null).

    `kmax`: the run's Kmax, so a shorter trace reads as cut short (None: every trace is
    read at its own length). `layers`: the run's layer lines, joined on step and layer
    for the rules that read them (the added columns stay in the result)."""
    df = with_layer_lines(traces, layers)
    present = [c for c in LAYER_COLUMNS if c in df.columns]
    return df.with_columns(pattern_expr("s_trace", thresholds, kmax, present).alias("pattern"))


def run_kmax(run: Run) -> int | None:
    """The run's Kmax: the largest of what its facts say (`meta["kmax"]`: the longest
    trace or largest `k_exec` of the log), its configured `kmax`, and, for a run built
    without facts, its longest trace and largest `k_exec`."""
    found: list[int] = []
    for v in ((run.meta or {}).get("kmax"), (run.hparams or {}).get("kmax")):
        try:
            if v is not None and not isinstance(v, bool):
                found.append(int(v))
        except (TypeError, ValueError):
            pass
    if not found:
        if run.traces.height and run.traces["s_trace"].is_not_null().any():
            found.append(int(run.traces.select(pl.col("s_trace").list.len().max()).item()))
        if "k_exec" in run.layers.columns and run.layers["k_exec"].is_not_null().any():
            found.append(int(run.layers.select(pl.col("k_exec").max()).item()))
    return max(found) if found else None


def audit_steps(run: Run) -> pl.Series:
    """Steps whose step line has `[AUDIT]` (forced k=2 counterfactuals)."""
    st = run.steps
    if st.is_empty() or "audit" not in st.columns:
        return pl.Series("step", [], dtype=pl.Int64)
    return st.filter(pl.col("audit").fill_null(False))["step"]


def classify_run(
    run: Run,
    thresholds: PatternThresholds = DEFAULT,
    phases_df: pl.DataFrame | None = None,
    include_audit: bool = True,
) -> pl.DataFrame:
    """Every trace of `run` with its `phase`, an `audit` flag and its `pattern`, read with
    the run's Kmax and layer lines; traces of the force-2 warmup and of audit steps get
    `FORCED` instead of a gate pattern. `include_audit=False` leaves audit-step traces out.
    """
    if phases_df is None:
        phases_df = compute_phases(run)
    audits = audit_steps(run)
    df = run.traces.with_columns(audit=pl.col("step").is_in(audits.implode()))
    if not include_audit:
        df = df.filter(~pl.col("audit"))
    df = classify_traces(assign_phase(df, phases_df), thresholds, run_kmax(run), run.layers)
    forced = pl.col("audit") | (pl.col("phase") == FORCE_WARMUP).fill_null(False)
    return df.with_columns(
        pl.when(pl.col("s_trace").is_not_null() & forced)
        .then(pl.lit(FORCED))
        .otherwise(pl.col("pattern"))
        .alias("pattern")
    )


def pattern_rank(column: str = "pattern") -> pl.Expr:
    """Position of a pattern in `TIMELINE_PATTERNS` (unknown names last): one sort and
    stacking order for every table and chart."""
    return pl.col(column).replace_strict(
        TIMELINE_PATTERNS, list(range(len(TIMELINE_PATTERNS))), default=len(TIMELINE_PATTERNS)
    )


def reference_shapes_frame() -> pl.DataFrame:
    """The reference shapes in long form for charts: `pattern`, `label` (its title),
    `k` (1-based), `s`."""
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
    the forced passes (`[1.00, 1.00]`), not what the gate decided: it must not count
    towards the gate's pattern.
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
    include_audit: bool,
) -> pl.DataFrame:
    if isinstance(data, Run):
        return classify_run(data, thresholds, phases_df, include_audit)
    df = data
    if "pattern" not in df.columns:
        df = classify_traces(df, thresholds)
    if need_phase and "phase" not in df.columns:
        if phases_df is None:
            raise ValueError("grouping by phase needs a Run or a phases_df")
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
    include_audit: bool = False,
) -> pl.DataFrame:
    """How often each category occurs within each group of `by` (e.g. layer, phase).

    Columns: `*by`, `pattern`, `n` (traces), `share` (of the group's traces). For a Run,
    forced traces (force-2 warmup; audit steps with `include_audit`) are counted as
    `FORCED`, so shares sum to 1 and no forced trace passes for a gate pattern; audit
    steps are left out by default, like every aggregate. `by` may include "phase"; phases
    are computed from the run unless `phases_df` is given. Traces with a null pattern (no
    trace) and rows outside every phase are not counted.
    """
    by = list(by)
    df = _classified(data, "phase" in by, phases_df, thresholds, include_audit)
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
    include_audit: bool = False,
) -> pl.DataFrame:
    """Most common category per phase, over all layers' traces in that phase (`FORCED`
    in the force-2 warmup, where no trace is the gate's decision).

    Columns: `phase`, `pattern`, `share`, `n` (traces of that pattern), `n_traces`.
    Ties go to the category listed first in `TIMELINE_PATTERNS`, so the answer is
    deterministic.
    """
    shares = pattern_shares(
        run, by=["phase"], phases_df=phases_df, thresholds=thresholds, include_audit=include_audit
    )
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
