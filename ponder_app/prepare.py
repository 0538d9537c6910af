"""Runs → the small frames charts draw, and the choices page widgets offer. Pure Polars,
no Streamlit, so every page's data can be tested (and benchmarked) without a server.

The rule everywhere: compute on full-resolution data (smoothing, bucket means), then
reduce to what a browser can draw (`downsample`), never the other way round.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ponder_parse import schema
from ponder_parse.analysis import catalog, patterns, red_flags, smoothing
from ponder_parse.analysis.downsample import downsample
from ponder_parse.analysis.phases import PHASE_LABELS, with_phase_labels
from ponder_parse.format import grammar
from ponder_parse.run import Run, TableCounts

# Points a chart may send to the browser in total (all runs of one metric together, the
# raw and the smoothed line counted apiece). The browser's work on a redraw grows with
# it (Streamlit's Vega evaluates every encoding per point, interpreted; measured, the
# data, not the spec, is four fifths of a Step line redraw): 6 000 gives 8 runs 375
# points each, 187 min/max buckets, about 6 px apiece across a wide plot, every spike
# kept; zooming in re-samples the visible range.
POINT_BUDGET = 6_000
MIN_POINTS_PER_RUN = 250
MAX_POINTS_PER_RUN = 2_000


QUALITY_PER_STEP: tuple[str, ...] = ("delta_ce", "delta_h", "coupon")
"""The `quality` columns `per_step` joins onto the steps."""
AXIS_COLUMNS: tuple[str, ...] = ("step", "audit", "dt_ms", "tok_per_sec", "avg_k")
"""The `steps` columns `per_step` always reads: the step, the audit mark the lines leave
out, and what the elapsed-time, token and compute axes are summed from."""
PER_STEP_AXES: tuple[str, ...] = ("elapsed_min", "tokens", "compute")
"""The x axes `per_step` adds to the steps."""


def per_step(run: Run, columns: Collection[str] | None = None) -> pl.DataFrame:
    """Every per-step number of a run in one frame: `steps` joined with `quality`, plus
    the alternative x axes (elapsed minutes from the summed dt, tokens from tok/sec × dt).

    With `columns`, only those metrics (of `steps` or `quality`) and `AXIS_COLUMNS` are
    read: a stored run reads just those columns from disk."""
    if columns is None:
        steps = run.steps
        q_cols: list[str] = list(QUALITY_PER_STEP)
    else:
        steps = run.table("steps", [*AXIS_COLUMNS, *(c for c in columns if c not in AXIS_COLUMNS)])
        q_cols = [c for c in QUALITY_PER_STEP if c in columns]
    q = run.table("quality", ["step", *q_cols]) if q_cols else pl.DataFrame()
    df = (
        steps.join(q, on="step", how="left")
        if q.height
        else steps.with_columns(pl.lit(None, pl.Float64).alias(c) for c in q_cols)
    )
    dt_s = pl.col("dt_ms").fill_nan(None).fill_null(0.0).clip(lower_bound=0) / 1000.0
    return df.with_columns(
        (dt_s.cum_sum() / 60.0).alias("elapsed_min"),
        (dt_s * pl.col("tok_per_sec").fill_nan(None).fill_null(0.0).clip(lower_bound=0))
        .cum_sum()
        .alias("tokens"),
        # Compute spent so far: each step runs every layer `avg_k` passes on average,
        # so the running sum of avg_k counts layer passes per token (a fixed-depth run
        # at k=2 climbs twice as fast as one at k=1).
        (
            pl.col("avg_k").fill_nan(None).fill_null(0.0).clip(lower_bound=0).cum_sum()
            if "avg_k" in steps.columns
            else pl.lit(None, pl.Float64)
        ).alias("compute"),
    )


def per_step_columns(frame: pl.DataFrame, columns: Collection[str]) -> pl.DataFrame:
    """The columns of a whole `per_step` frame that `per_step(run, columns)` gives."""
    wanted = {*AXIS_COLUMNS, *columns, *PER_STEP_AXES}
    return frame.select([c for c in frame.columns if c in wanted])


def step_extent(frames: Iterable[pl.DataFrame]) -> tuple[int, int]:
    """The steps a range slider spans over these frames: `(first, last)`, never a single
    point (a slider needs two), `(0, 1)` when no frame has a row."""
    steps = [f["step"] for f in frames if f.height]
    if not steps:
        return 0, 1
    lo, hi = (
        pl.concat(steps)
        .to_frame("step")
        .select(pl.col("step").min(), pl.col("step").max().alias("hi"))
        .row(0)
    )
    return int(lo), max(int(hi), int(lo) + 1)


def clamp_range(chosen: tuple[int, int], lo: int, hi: int) -> tuple[int, int]:
    """A step range the user chose, clamped into `[lo, hi]` (the runs shown may have
    changed since, and a slider refuses a value outside its bounds)."""
    a, b = chosen
    return max(lo, min(a, hi)), max(lo, min(b, hi))


def value_domain(
    frames: Iterable[pl.DataFrame], column: str = "value"
) -> tuple[float, float] | None:
    """`(min, max)` of `column` over all frames: one colour scale shared by every panel,
    so colours compare across runs. None when there are no values."""
    parts = [f.select(column) for f in frames if f.height]
    if not parts:
        return None
    lo, hi = pl.concat(parts).select(pl.col(column).min(), pl.col(column).max().alias("_hi")).row(0)
    return float(lo), float(hi)


def with_run(frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """Frames keyed by run name as one frame with a leading `run` column: what a view
    drawing every run at once offers as its data download."""
    parts = [
        f.select(pl.lit(name).alias("run"), pl.all()) for name, f in frames.items() if f.height
    ]
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


def points_per_run(n_runs: int) -> int:
    return max(MIN_POINTS_PER_RUN, min(MAX_POINTS_PER_RUN, POINT_BUDGET // max(1, 2 * n_runs)))


AUDIT_POINT_BUDGET = 400
"""Audit-step marks a chart may send in total. A mark costs the browser about three line
points (each is its own symbol); evenly spaced audits are a regular sample of the same
forced-k=2 value, so a thinned set shows the same thing; a zoom re-samples the visible
range and shows each one once a run has no more than its share there."""
MIN_AUDIT_POINTS_PER_RUN = 25


def audit_points_per_run(n_runs: int) -> int:
    return max(MIN_AUDIT_POINTS_PER_RUN, AUDIT_POINT_BUDGET // max(1, n_runs))


def audit_points_note(n_runs: int) -> str:
    """What a chart's open circles are, cap included: said wherever `audit_points` draws."""
    return (
        "Open circles: values on audit steps (forced k=2; at most "
        f"{audit_points_per_run(n_runs)} per run, evenly spaced), left out of the lines and "
        "the smoothing."
    )


PAGE_SMOOTHING = "page"
"""A chart's smoothing choice meaning "as the page's" (the others are `smoothing.SMOOTHERS`)."""


def smoothing_title(method: str, weight: float) -> str:
    """What a chart with a smoothing of its own says of it in its title."""
    if weight <= 0:
        return "own smoothing: none"
    return f"own smoothing: {smoothing.SMOOTHERS.get(method, method)}, {weight:g}"


def step_series(
    frames: Mapping[str, pl.DataFrame],
    column: str,
    *,
    x: str = "step",
    weight: float = 0.6,
    step_range: tuple[int, int] | None = None,
    max_points: int | None = None,
    thin: bool = True,
    include_audit: bool = False,
    method: str = smoothing.EMA,
) -> pl.DataFrame:
    """Long rows `run, <x>, step, value, smooth` for one metric across runs, smoothed
    by `method` (`smoothing.SMOOTHERS`) at strength `weight`.

    Audit steps (forced k=2) are left out unless `include_audit`: their forced values
    would put a sawtooth into every smoothed depth and controller curve (`audit_points`
    gives them as marks). Smoothing runs on the full series; then the visible step range
    is cut out and, with `thin`, bucketed so every spike survives (min and max of each
    bucket are kept).
    """
    out = []
    for name, df in frames.items():
        if column not in df.columns or df[column].is_null().all():
            continue
        if not include_audit and "audit" in df.columns:
            df = df.filter(~pl.col("audit").fill_null(False))
        s = df.select("step", x, column) if x != "step" else df.select("step", column)
        s = s.filter(pl.col(column).is_not_null())
        s = smoothing.smooth(s, column, method=method, weight=weight, x="step")
        if step_range is not None:
            s = s.filter(pl.col("step").is_between(step_range[0], step_range[1]))
        if s.is_empty():
            continue
        out.append(
            s.select(
                pl.lit(name).alias("run"),
                *([pl.col(x)] if x != "step" else []),
                "step",
                pl.col(column).alias("value"),
                pl.col(f"{column}_smooth").alias("smooth"),
            )
        )
    if not out:
        return pl.DataFrame(
            schema={"run": pl.String, "step": pl.Int64, "value": pl.Float64, "smooth": pl.Float64}
        )
    series = pl.concat(out, how="diagonal_relaxed")
    return thin_series(series, max_points or points_per_run(len(out))) if thin else series


def audit_points(
    frames: Mapping[str, pl.DataFrame],
    column: str,
    *,
    x: str = "step",
    step_range: tuple[int, int] | None = None,
    max_points: int | None = None,
) -> pl.DataFrame:
    """The metric's values on audit steps, as marks beside the line they were left out
    of: rows `run, x, step, value` (empty when no run has an audit step in range), at
    most `max_points` per run (`audit_points_per_run` of the runs given), evenly spaced."""
    max_points = max_points or audit_points_per_run(len(frames))
    out = []
    for name, df in frames.items():
        if column not in df.columns or "audit" not in df.columns:
            continue
        a = df.filter(pl.col("audit").fill_null(False) & pl.col(column).is_not_null())
        if step_range is not None:
            a = a.filter(pl.col("step").is_between(*step_range))
        if a.is_empty():
            continue
        every = max(1, -(-a.height // max_points))
        out.append(
            a.gather_every(every).select(
                pl.lit(name).alias("run"),
                pl.col(x).cast(pl.Float64).alias("x"),
                "step",
                pl.col(column).cast(pl.Float64).alias("value"),
            )
        )
    return pl.concat(out) if out else pl.DataFrame()


def run_refs(
    runs: Sequence[Run],
    column: str,
    table: str = "steps",
    rules: red_flags.FlagRules = red_flags.DEFAULT,
) -> pl.DataFrame:
    """Each run's own reference lines for a metric: rows `run, y, what, label`, drawn in the
    run's colour. TARGET_K on the depth metrics (each run is judged against its own
    target, not the baseline's); the λ_p clamps a run's configuration names on λ_p; the
    red-flag thresholds relative to the run's own level, as `rules` set them."""
    rows: list[dict[str, object]] = []
    for run in runs:
        for value, what in red_flags.run_reference_lines(run, column, table, rules):
            rows.append({"run": run.name, "y": value, "what": what, "label": f"{run.name}: {what}"})
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame(
        rows, schema={"run": pl.String, "y": pl.Float64, "what": pl.String, "label": pl.String}
    )


def reference_labels(refs: pl.DataFrame) -> pl.DataFrame:
    """One right-edge label per reference line of `run_refs` (`run, y, label, runs`): a
    line of one run says whose it is; a line several runs share says what it is and how
    many share it (their names, which can fill a screen, go in `runs` for the tooltip)."""
    if "what" not in refs.columns:
        refs = refs.with_columns(what=pl.col("label"))
    return (
        refs.group_by("y", maintain_order=True)
        .agg(
            pl.col("run").first().alias("first"),
            pl.col("run"),
            pl.col("label"),
            pl.col("what").unique(maintain_order=True),
        )
        .with_columns(
            text=pl.when(pl.col("run").list.len() == 1)
            .then(pl.col("label").list.first())
            .otherwise(
                pl.col("what").list.join("; ")
                + " ("
                + pl.col("run").list.len().cast(pl.String)
                + " runs)"
            ),
            runs=pl.col("run").list.join(", "),
        )
        .select(pl.col("first").alias("run"), "y", pl.col("text").alias("label"), "runs")
    )


RunCounts = Mapping[str, TableCounts]
"""A run's `Run.column_counts`: what pickers and the flat notes are decided from."""


def counts_of(runs: Sequence[Run], counts: Mapping[str, RunCounts] | None) -> dict[str, RunCounts]:
    """Each run's column counts by name: from `counts` (a caller's cached ones) where
    given, else from the run."""
    given = counts or {}
    return {r.name: given[r.name] if r.name in given else r.column_counts() for r in runs}


def _values(counts: RunCounts, table: str) -> Mapping[str, int]:
    t = counts.get(table)
    return {} if t is None else t["values"]


def flat_in(
    runs: Sequence[Run],
    rules: red_flags.FlagRules = red_flags.DEFAULT,
    counts: Mapping[str, RunCounts] | None = None,
) -> dict[str, list[str]]:
    """Metric key → the runs that printed it as 0 on every line (`catalog.flat_metrics`,
    with the `metric_flat` rule's settings: a greyed metric and the finding agree)."""
    min_lines = rules.of(red_flags.RULES["metric_flat"]).min_lines
    by_name = counts_of(runs, counts)
    out: dict[str, list[str]] = {}
    for run in runs:
        for key in sorted(catalog.flat_metrics(run, min_lines, by_name[run.name])):
            out.setdefault(key, []).append(run.name)
    return out


def flat_note(
    key: str,
    flat: Mapping[str, Sequence[str]],
    runs: Sequence[Run],
    counts: Mapping[str, RunCounts] | None = None,
) -> str | None:
    """What a picker or chart says of a metric printed as 0 on every line: for all the
    runs that print it, or naming the runs where it is; None when it is measured."""
    names = list(flat.get(key, ()))
    if not names:
        return None
    table, column = key.split(".", 1)
    by_name = counts_of(runs, counts)
    printing = [r.name for r in runs if _values(by_name[r.name], table).get(column, 0) > 0]
    if set(printing) <= set(names):
        return catalog.FLAT_NOTE
    return f"{catalog.FLAT_NOTE} in {', '.join(names)}"


def thin_series(series: pl.DataFrame, max_points: int) -> pl.DataFrame:
    """Keep, per run, the steps where the raw value reaches each bucket's min or max."""
    if series.is_empty():
        return series
    # downsample's long output has a `value` column of its own.
    raw = series.select("run", "step", pl.col("value").alias("_raw"))
    kept = downsample(raw, x="step", columns=["_raw"], max_points=max_points, by="run")
    return series.join(kept.select("run", "step").unique(), on=["run", "step"], how="semi").sort(
        "run", "step", maintain_order=True
    )


def seed_group_series(
    series: pl.DataFrame,
    groups: Mapping[str, Sequence[str]],
    x: str = "step",
    max_points: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Seed groups as mean lines with a min–max band: `group_series` with its default band."""
    return group_series(series, groups, x, "minmax", max_points)


def phase_bands(
    phases_df: pl.DataFrame, frame: pl.DataFrame | None = None, x: str = "step"
) -> pl.DataFrame:
    """Phase spans in x units (`start, end, label, source`) for shading behind a chart."""
    if phases_df.is_empty():
        return pl.DataFrame()
    df = phases_df.with_columns(
        pl.col("phase").replace_strict(PHASE_LABELS, default=pl.col("phase")).alias("label"),
        (pl.col("end") + 1).alias("end"),
    )
    if x != "step" and frame is not None and x in frame.columns:
        lookup = frame.select("step", x).sort("step")
        to_x = lambda c: (  # noqa: E731 - tiny local mapping
            df.select(pl.col(c).alias("step")).join_asof(lookup, on="step", strategy="backward")[x]
        )
        df = df.with_columns(start=to_x("start"), end=to_x("end"))
    return df.select(
        pl.col("start").cast(pl.Float64), pl.col("end").cast(pl.Float64), "label", "source"
    )


def event_markers(
    runs: Sequence[Run],
    frames: Mapping[str, pl.DataFrame],
    x: str,
    step_range: tuple[int, int] | None,
    audits: bool,
) -> pl.DataFrame:
    """Vertical markers: deadband engagement, restarts, and (optionally) audit steps."""
    rows = []
    for run in runs:
        marks = []
        deadband_step = run.meta.get("deadband_step")
        if deadband_step is not None:
            marks.append((int(deadband_step), "deadband engaged"))
        marks += [(int(s), "resumed from checkpoint") for s in run.meta.get("resume_steps", [])]
        if audits:
            marks += [
                (int(s), "audit step")
                for s in run.table("steps", ["step", "audit"])
                .filter(pl.col("audit"))["step"]
                .to_list()
            ]
        for step, kind in marks:
            if step_range is None or step_range[0] <= step <= step_range[1]:
                rows.append({"run": run.name, "step": step, "kind": kind})
    if not rows:
        return pl.DataFrame()
    df = pl.DataFrame(rows, schema={"run": pl.String, "step": pl.Int64, "kind": pl.String})
    if x == "step":
        return df.with_columns(pl.col("step").cast(pl.Float64).alias("x"))
    parts = []
    for name, part in df.group_by("run", maintain_order=True):
        frame = frames.get(str(name[0]))
        if frame is None:
            continue
        parts.append(
            part.sort("step")
            .join_asof(frame.select("step", x).sort("step"), on="step")
            .rename({x: "x"})
        )
    return pl.concat(parts) if parts else pl.DataFrame()


HEATMAP_CELLS = 32_000
"""Cells a layer-heatmaps page starts with at most, every map's layers × columns together
(the runs' heatmaps and their differences from the baseline). The browser draws each cell
as a mark: 20 runs of 8 layers at 200 columns are 39 maps and 62 000 cells, which took it
2.5 s to redraw on every change of the page's controls."""


def default_heatmap_columns(
    runs: Sequence[Run], with_diffs: bool, lo: int = 50, hi: int = 200, step: int = 25
) -> int:
    """The step buckets a heatmap starts with: `hi`, fewer when the page's maps would
    pass `HEATMAP_CELLS`, never under `lo`, on the columns slider's steps. Only where to
    start: the slider still offers every width."""
    layers = [
        int(r.layers["layer"].n_unique())
        for r in runs
        if r.layers.height and "layer" in r.layers.columns
    ]
    rows = sum(layers) + (sum(layers) - max(layers) if with_diffs and len(layers) > 1 else 0)
    fit = HEATMAP_CELLS // max(1, rows)
    return max(lo, min(hi, fit // step * step))


def grid_buckets(
    runs: Sequence[Run], max_cols: int = 200, step_range: tuple[int, int] | None = None
) -> tuple[int, int] | None:
    """One bucketing `(first step, width)` for the layer grids of several runs, so their
    cells line up and a difference from the baseline compares the same steps (runs of
    different lengths would otherwise get different buckets, and the difference
    stripes). A whole number of logging intervals per bucket: otherwise some buckets
    hold one sample and others two, and the picture stripes. None without layer lines."""
    steps = [
        r.layers["step"].drop_nulls()
        for r in runs
        if r.layers.height and r.layers["step"].is_not_null().any()
    ]
    if step_range is not None:
        steps = [s.filter(s.is_between(*step_range)) for s in steps]
    steps = [s.unique().sort() for s in steps if s.len()]
    if not steps:
        return None
    lo = min(int(s[0]) for s in steps)
    hi = max(int(s[-1]) for s in steps)
    # sorted unique steps: every difference is a positive logging interval
    gaps = [int(s.to_frame().select(pl.first().diff().min()).item()) for s in steps if s.len() > 1]
    spacing = min(gaps) if gaps else 1
    return lo, spacing * max(1, -(-(hi - lo + 1) // (spacing * max_cols)))


def layer_grid(
    run: Run,
    column: str,
    max_cols: int = 200,
    step_range: tuple[int, int] | None = None,
    include_audit: bool = False,
    buckets: tuple[int, int] | None = None,
) -> pl.DataFrame:
    """Per-layer metric bucketed into at most `max_cols` step spans (bucket mean).

    Rows `layer, start, end, value`. Means over spans keep the picture honest at any width;
    the per-step values are a click away on the step line. Layer lines of audit steps
    (every layer forced to k=2) are left out unless `include_audit`: they would paint a
    stripe at every audit step (`audit_marks` shows where they were); a bucket left
    empty by that is covered by the cell before it, not drawn as a white gap.
    `buckets` (from `grid_buckets`) shares one bucketing between runs; by default the
    run's own logged steps decide it, audit steps included, so the toggle does not move
    the cells.
    """
    if buckets is None:
        buckets = grid_buckets([run], max_cols, step_range)
    df = run.layers.select("step", "layer", column).filter(pl.col(column).is_finite())
    if not include_audit:
        df = df.join(patterns.audit_steps(run).to_frame("step"), on="step", how="anti")
    if step_range is not None:
        df = df.filter(pl.col("step").is_between(*step_range))
    if df.is_empty() or buckets is None:
        return pl.DataFrame(
            schema={"layer": pl.Int32, "start": pl.Int64, "end": pl.Int64, "value": pl.Float64}
        )
    lo, width = buckets
    start = pl.col("_b") * width + lo
    nxt = start.shift(-1).over("layer")
    return (
        df.with_columns(((pl.col("step") - lo) // width).alias("_b"))
        .group_by("layer", "_b")
        .agg(pl.col(column).mean().alias("value"))
        .sort("layer", "_b")
        .select(
            "layer",
            start.alias("start"),
            pl.when(nxt - start == 2 * width).then(nxt).otherwise(start + width).alias("end"),
            "value",
        )
    )


def audit_marks(run: Run, step_range: tuple[int, int] | None = None) -> pl.DataFrame:
    """Audit steps that have a layer line, as `step` rows for marks above a heatmap."""
    steps = patterns.audit_steps(run)
    if step_range is not None:
        steps = steps.filter(steps.is_between(*step_range))
    logged = run.layers["step"].unique() if run.layers.height else steps.clear()
    return steps.filter(steps.is_in(logged.implode())).unique().sort().to_frame("step")


def layer_diff(grid: pl.DataFrame, base: pl.DataFrame) -> pl.DataFrame:
    """Run minus baseline, cell by cell: each of the run's cells against the baseline cell
    covering its first step. Matching on equal starts only would leave a white stripe
    wherever one grid has a cell widened over a bucket the other has (an audit step
    left out); a cell the baseline does not cover (past its end) stays out."""
    if grid.is_empty() or base.is_empty():
        return grid.clear().select("layer", "start", "end", "value")
    b = base.select(
        "layer",
        pl.col("start").alias("start"),
        pl.col("end").alias("_b_end"),
        pl.col("value").alias("_b"),
    ).sort("start")
    return (
        grid.sort("start")
        .join_asof(b, on="start", by="layer", strategy="backward", check_sortedness=False)
        .filter(pl.col("_b").is_not_null() & (pl.col("start") < pl.col("_b_end")))
        .select("layer", "start", "end", (pl.col("value") - pl.col("_b")).alias("value"))
        .sort("layer", "start")
    )


def layer_diffs(grids: Mapping[str, pl.DataFrame], baseline: str) -> dict[str, pl.DataFrame]:
    """`layer_diff` of every grid but the baseline's against the baseline's, in order
    (empty when the baseline has no grid: there is nothing to subtract)."""
    if baseline not in grids:
        return {}
    return {n: layer_diff(g, grids[baseline]) for n, g in grids.items() if n != baseline}


def picker_label(m: catalog.Metric, note: str | None) -> str:
    """A metric's picker entry, with the note of a metric printed as 0 on every line."""
    label = catalog.option_label(m)
    return f"{label} — {note}" if note else label


def layer_metrics(runs: Sequence[Run]) -> list[catalog.Metric]:
    """Per-layer numeric metrics (not the step and layer keys) that some run logged."""
    return [
        m
        for m in catalog.metrics_for("layers", numeric_only=True)
        if m.column not in ("step", "layer")
        and any(
            m.column in r.layers.columns and r.layers[m.column].is_not_null().any() for r in runs
        )
    ]


def trace_timeline(
    run: Run,
    thresholds: patterns.PatternThresholds = patterns.DEFAULT,
    step_range: tuple[int, int] | None = None,
    force_end: int | None = None,
) -> pl.DataFrame:
    """Classified traces as timeline cells: `layer, step, start, end, pattern, s_trace_text`.

    Traces are read with the run's Kmax and layer lines (`patterns.classify_traces`).
    Traces logged while passes were forced to k=2 (audit steps, and the force-2 warmup
    before `force_end`) show the forcing, not the gate's choice: they are marked as
    forced instead of classified.
    """
    tr = run.traces
    if step_range is not None:
        tr = tr.filter(pl.col("step").is_between(*step_range))
    if tr.is_empty():
        return pl.DataFrame()
    tr = patterns.classify_traces(tr, thresholds, patterns.run_kmax(run), run.layers)
    forced = pl.col("step").is_in(patterns.audit_steps(run).implode())
    if force_end is not None:
        forced = forced | (pl.col("step") < force_end)
    tr = tr.with_columns(
        pl.when(forced).then(pl.lit(patterns.FORCED)).otherwise(pl.col("pattern")).alias("pattern")
    )
    steps = tr["step"].unique().sort()
    spacing = schema.as_int(steps.diff().drop_nulls().min() or 50) if steps.len() > 1 else 50
    return tr.select(
        "layer",
        "step",
        pl.col("step").alias("start"),
        (pl.col("step") + spacing).alias("end"),
        pl.col("pattern").fill_null(patterns.OTHER),
        (
            "["
            + pl.col("s_trace").list.eval(pl.element().round(2).cast(pl.String)).list.join(", ")
            + "]"
        ).alias("s_trace_text"),
    )


def runs_with(runs: Sequence[Run], table: str) -> list[Run]:
    """The runs whose `table` (`traces`, `generations`, ...) has at least one row."""
    return [r for r in runs if getattr(r, table).height]


def trace_steps(runs: Sequence[Run]) -> list[int]:
    """Every step at which some run logged traces, ascending."""
    return sorted({int(s) for r in runs for s in r.traces["step"].drop_nulls().unique()})


def traces_of(runs: Sequence[Run], step: int) -> pl.DataFrame:
    """`traces_at` of every run, one `series` per run named with the step its traces are
    from (the nearest earlier trace step when a run did not log at `step`)."""
    parts = []
    for run in runs:
        data = traces_at(run, step)
        if data.height:
            at = int(data["step"][0])
            parts.append(data.with_columns(pl.lit(f"{run.name} @ {at}").alias("series")))
    return pl.concat(parts) if parts else pl.DataFrame()


def pattern_share_bars(
    runs: Sequence[Run], phases_by_run: Mapping[str, pl.DataFrame], include_audit: bool = False
) -> pl.DataFrame:
    """Pattern shares per run and phase (`patterns.pattern_shares` by phase, with `run`),
    labelled and ranked for a stacked bar chart; empty when no run has classified traces.
    `phases_by_run` maps run name to its phases (the app's, with the user's overrides);
    forced traces are their own category, audit ones counted only with `include_audit`."""
    parts = []
    for run in runs:
        sh = patterns.pattern_shares(
            run,
            by=("phase",),
            phases_df=phases_by_run.get(run.name),
            include_audit=include_audit,
        )
        if sh.height:
            parts.append(sh.with_columns(pl.lit(run.name).alias("run")))
    if not parts:
        return pl.DataFrame()
    shares = with_phase_labels(pl.concat(parts, how="diagonal_relaxed"))
    return shares.with_columns(patterns.pattern_rank().alias("pattern_rank"))


def pattern_share_table(shares: pl.DataFrame) -> pl.DataFrame:
    """The numbers behind `pattern_share_bars`, as a table sorted by run, phase, pattern."""
    return shares.select("run", "phase", "pattern", "n", "share").sort("run", "phase", "pattern")


def generation_failures(run: Run) -> pl.DataFrame:
    """The run's failed generations (`Generation failed: …` lines) as `step, message`: the
    trainer goes on training, and the researcher should see that it tried."""
    failed = run.events.filter(pl.col("kind") == "generation_failed")
    return failed.select(
        "step",
        pl.col("text")
        .str.strip_prefix(grammar.GENERATION_FAILED)
        .str.strip_chars()
        .alias("message"),
    )


def runs_with_generations(runs: Sequence[Run]) -> list[Run]:
    """The runs that logged generation samples or tried and failed to."""
    return [r for r in runs if r.generations.height or generation_failures(r).height]


def generation_steps(runs: Sequence[Run]) -> list[int]:
    """Every step at which some run logged generation samples or a failed generation,
    ascending."""
    found = {int(s) for r in runs for s in r.generations["step"].drop_nulls()}
    found |= {int(s) for r in runs for s in generation_failures(r)["step"].drop_nulls()}
    return sorted(found)


def default_generation_step(runs: Sequence[Run]) -> int | None:
    """The step the page opens on: the latest at which at least half of the runs sampled
    (or tried to). Runs of different lengths sample at different last steps, and opening
    on the longest run's last step would show every other run empty."""
    steps = generation_steps(runs)
    if not steps:
        return None
    counts = {s: 0 for s in steps}
    for r in runs:
        mine = set(r.generations["step"].drop_nulls().to_list())
        mine |= set(generation_failures(r)["step"].drop_nulls().to_list())
        for s in mine:
            counts[int(s)] += 1
    enough = [s for s in steps if 2 * counts[s] >= len(runs)]
    return enough[-1] if enough else steps[-1]


def failures_at(run: Run, step: int) -> list[str]:
    """What the page says of the run's generations that failed at `step`."""
    failed = generation_failures(run).filter(pl.col("step") == step)
    return [f"generation failed at step {step}: {m}" for m in failed["message"].to_list()]


def samples_at(run: Run, step: int) -> pl.DataFrame:
    """The run's generation samples at exactly `step` (none if it did not sample there)."""
    return run.generations.filter(pl.col("step") == step)


def latest_samples_at(run: Run, step: int) -> tuple[int | None, pl.DataFrame]:
    """The run's most recent generation samples at or before `step`, and the step they
    are from (None, empty when it sampled nothing by then): runs sample at different
    steps, and a side-by-side view should show each run's latest, not a blank."""
    earlier = run.generations.filter(pl.col("step") <= step)
    if earlier.is_empty():
        return None, earlier
    at = schema.as_int(earlier["step"].max())
    return at, earlier.filter(pl.col("step") == at)


def traces_at(run: Run, step: int) -> pl.DataFrame:
    """Every layer's trace at `step` (or the nearest earlier trace step) as `layer, k, s`."""
    tr = run.traces.filter(pl.col("step") <= step)
    if tr.is_empty():
        return pl.DataFrame()
    at = schema.as_int(tr["step"].max())
    return (
        tr.filter(pl.col("step") == at)
        .select("step", "layer", "s_trace")
        .explode("s_trace")
        .with_columns((pl.int_range(pl.len()).over("layer") + 1).alias("k"))
        .rename({"s_trace": "s"})
    )


def rolling_rates(
    run: Run, window: int = 100, max_points: int = MAX_POINTS_PER_RUN
) -> pl.DataFrame:
    """ECONOMIC WIN share of policy steps and CONFIDENCE+ share, over a trailing window of steps."""
    q = run.quality.sort("step")
    policy = q.filter(pl.col("status").is_in(schema.POLICY_STATUSES))
    if policy.height == 0:
        return pl.DataFrame()
    w = min(window, policy.height)
    rates = policy.select(
        pl.lit(run.name).alias("run"),
        "step",
        (pl.col("status") == schema.ECONOMIC_WIN)
        .cast(pl.Float64)
        .rolling_mean(w, min_samples=max(1, w // 4))
        .alias("win_rate"),
        pl.col("confidence")
        .cast(pl.Float64)
        .rolling_mean(w, min_samples=max(1, w // 4))
        .alias("confidence_rate"),
    )
    # Two series share the kept steps: half the budget each keeps the union within it.
    kept = downsample(
        rates, x="step", columns=["win_rate", "confidence_rate"], max_points=max(4, max_points // 2)
    )
    return rates.join(kept.select("step").unique(), on="step", how="semi").sort("step")


def rolling_rates_of(runs: Sequence[Run], window: int = 100) -> pl.DataFrame:
    """`rolling_rates` of every run that has policy steps, in one frame (empty if none),
    with the point budget shared between the runs."""
    budget = points_per_run(len(runs))
    parts = [r for r in (rolling_rates(run, window, budget) for run in runs) if r.height]
    return pl.concat(parts) if parts else pl.DataFrame()


def as_series(data: pl.DataFrame, column: str) -> pl.DataFrame:
    """One column of a per-run frame as a metric chart's `run, step, value, smooth` rows
    (unsmoothed: `smooth` repeats the value), steps without a value left out."""
    return data.select(
        "run", "step", pl.col(column).alias("value"), pl.col(column).alias("smooth")
    ).drop_nulls("value")


def metric_options(counts: Iterable[RunCounts]) -> list[catalog.Metric]:
    """Per-step metrics (step line and quality) that at least one run actually has: a
    value on some line, by the runs' column counts (no table read)."""
    present: dict[str, set[str]] = {"steps": set(), "quality": set()}
    for c in counts:
        for table, cols in present.items():
            cols |= {col for col, n in _values(c, table).items() if n > 0}
    return [
        m
        for table in ("steps", "quality")
        for m in catalog.metrics_for(table, numeric_only=True)
        if m.column in present[table] and m.column != "step"
    ]


DEFAULT_STEP_METRICS: tuple[str, ...] = ("steps.lm_loss", "steps.avg_k", "steps.lambda_p")
"""What the step line opens with: the loss, the depth it buys, and the price of depth."""


def default_step_metrics(available: Iterable[str]) -> list[str]:
    """The `DEFAULT_STEP_METRICS` keys among the `available` metric keys, in their order."""
    have = set(available)
    return [k for k in DEFAULT_STEP_METRICS if k in have]


def step_columns(metrics: Iterable[catalog.Metric]) -> tuple[str, ...]:
    """The per-step columns the step line reads for these metrics (sorted: the same set
    picked in another order is the same read, and the same cache entry)."""
    return tuple(sorted({m.column for m in metrics}))


def default_step_columns(counts: Iterable[RunCounts]) -> tuple[str, ...]:
    """The columns the step line reads when it opens on runs with these column counts."""
    by_key = {m.key: m for m in metric_options(counts)}
    return step_columns(by_key[k] for k in default_step_metrics(by_key))


def histogram_bins(data: pl.DataFrame, value: str, bins: int = 40, by: str = "run") -> pl.DataFrame:
    """Counts per bin and run over a shared set of bins: rows `run, lo, hi, n`.

    The range is the 0.5–99.5 percentile of all finite values so one outlier does not
    squash every bar into a single bin; values beyond it land in the edge bins.
    """
    finite = data.filter(pl.col(value).is_finite())
    if finite.is_empty():
        return pl.DataFrame(
            schema={by: pl.String, "lo": pl.Float64, "hi": pl.Float64, "n": pl.UInt32}
        )
    lo = schema.as_float(finite[value].quantile(0.005))
    hi = schema.as_float(finite[value].quantile(0.995))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    width = (hi - lo) / bins
    idx = ((pl.col(value) - lo) / width).floor().clip(0, bins - 1).cast(pl.Int64)
    return (
        finite.group_by(by, idx.alias("_b"))
        .agg(pl.len().alias("n"))
        .select(
            by,
            (lo + pl.col("_b") * width).alias("lo"),
            (lo + (pl.col("_b") + 1) * width).alias("hi"),
            "n",
        )
        .sort(by, "lo")
    )


# --- zoom, hover, y range ---------------------------------------------------------------------

HOVER_POINTS = 300
"""x positions the crosshair snaps to across a chart's width (a grid the page's charts share)."""


@dataclass(frozen=True)
class Hover:
    """Each run's value at the x positions of a grid: `frame` has the x column and a
    column per run (`v0`, `v1`, … — a run name need not be a valid field name);
    `columns` maps those columns to run names."""

    frame: pl.DataFrame
    columns: dict[str, str]


def x_domain(
    series: pl.DataFrame, x: str, step_range: tuple[int, int] | None
) -> tuple[float, float] | None:
    """The x axis of a zoomed chart: exactly the chosen step range on a step axis; on an
    elapsed-time or token axis, where the chosen steps land (over the series shown)."""
    if x == "step" and step_range is not None:
        return float(step_range[0]), float(step_range[1])
    if series.is_empty() or x not in series.columns:
        return None
    lo, hi = series.select(pl.col(x).min(), pl.col(x).max().alias("_hi")).row(0)
    if lo is None or hi is None or not hi > lo:
        return None
    return float(lo), float(hi)


def hover_grid(domain: tuple[float, float], x: str = "step", n: int = HOVER_POINTS) -> pl.Series:
    """`n` evenly spaced x positions over `domain`, whole steps on a step axis. It depends
    on the domain alone, so every chart of a page (each metric logged at its own steps)
    gets the same positions and one hovered x lights the crosshair in all of them."""
    lo, hi = domain
    if x == "step":
        first, last = math.ceil(lo), math.floor(hi)
        spacing = max(1, math.ceil((last - first) / max(1, n - 1)))
        return pl.Series(x, range(first, last + 1, spacing), dtype=pl.Int64)
    return pl.Series(x, [lo + (hi - lo) * i / max(1, n - 1) for i in range(n)], dtype=pl.Float64)


def hover_table(
    series: pl.DataFrame,
    x: str,
    domain: tuple[float, float] | None,
    column: str = "smooth",
    n: int = HOVER_POINTS,
) -> Hover | None:
    """Every run's `column` at each grid position: its last value at or before it (as
    TensorBoard's tooltip reads a line), none before the run's first point or after its
    last. `series` should be the full-resolution series: thinned points would shift the
    values."""
    if domain is None or series.is_empty() or column not in series.columns:
        return None
    grid = hover_grid(domain, x, n)
    out = grid.to_frame()
    columns: dict[str, str] = {}
    for i, ((name,), part) in enumerate(series.group_by("run", maintain_order=True)):
        col = f"v{i}"
        p = (
            part.select(pl.col(x).cast(grid.dtype), pl.col(column).cast(pl.Float64).alias(col))
            .drop_nulls(x)
            .sort(x)
        )
        if p.is_empty():
            continue
        first, last = p[x][0], p[x][-1]
        out = out.join_asof(p, on=x, strategy="backward").with_columns(
            pl.when(pl.col(x).is_between(first, last)).then(pl.col(col)).alias(col)
        )
        columns[col] = str(name)
    if not columns:
        return None
    return Hover(out, columns)


@dataclass(frozen=True)
class PanelData:
    """What one step-line panel is drawn from (`panel_data`): the plotted series, the
    group band, the x axis, the crosshair's table, the audit marks and each run's own
    reference lines."""

    series: pl.DataFrame
    band: pl.DataFrame | None
    x_domain: tuple[float, float] | None
    hover: Hover | None
    audit_points: pl.DataFrame | None
    run_refs: pl.DataFrame


def panel_data(
    frames: Mapping[str, pl.DataFrame],
    runs: Sequence[Run],
    column: str,
    table: str = "steps",
    *,
    x: str = "step",
    weight: float = 0.6,
    method: str = smoothing.EMA,
    step_range: tuple[int, int] | None = None,
    include_audit: bool = False,
    groups: Mapping[str, Sequence[str]] | None = None,
    band_kind: str = "minmax",
    rules: red_flags.FlagRules = red_flags.DEFAULT,
) -> PanelData:
    """One metric's panel data across runs: smoothed on the full series, then reduced to
    each group's mean and band (`groups`) or thinned to the page's point budget. Kept
    apart from the drawing so a toggle that changes only how a panel looks reuses it."""
    full = step_series(
        frames,
        column,
        x=x,
        weight=weight,
        method=method,
        step_range=step_range,
        thin=False,
        include_audit=include_audit,
    )
    band: pl.DataFrame | None = None
    if groups:
        series, band = group_series(full, groups, x, band_kind)
    else:
        series = thin_series(full, points_per_run(len(frames)))
    domain = x_domain(series, x, step_range)
    return PanelData(
        series=series,
        band=band,
        x_domain=domain,
        # the hover reads the full series (thinned points would shift its values); a
        # group's own line is its mean
        hover=hover_table(
            full if not groups else series, x, domain, "smooth" if weight > 0 else "value"
        ),
        audit_points=None
        if include_audit
        else audit_points(frames, column, x=x, step_range=step_range),
        run_refs=run_refs(runs, column, table, rules),
    )


def clip_spans(
    spans: pl.DataFrame | None, domain: tuple[float, float] | None
) -> pl.DataFrame | None:
    """Shaded spans (`start, end`, e.g. phase bands) cut to the visible x range: a band
    outside the zoom is dropped, one across its edge ends at the edge."""
    if spans is None or spans.is_empty() or domain is None:
        return spans
    lo, hi = domain
    return spans.filter((pl.col("end") > lo) & (pl.col("start") < hi)).with_columns(
        pl.col("start").clip(lower_bound=lo), pl.col("end").clip(upper_bound=hi)
    )


OUTLIER_QUANTILE = 0.01
"""Share of the plotted values cut at each end when outliers are ignored (1st–99th percentile)."""


def y_domain(
    series: pl.DataFrame,
    columns: Sequence[str] = ("value", "smooth"),
    *,
    log: bool = False,
    ignore_outliers: bool = False,
    band: pl.DataFrame | None = None,
    q: float = OUTLIER_QUANTILE,
) -> tuple[float, float] | None:
    """The y range to draw, padded by 5 %: for a log axis always fitted to the values (a
    nice log range turns 4–12 into 1–100); with `ignore_outliers`, the `q`…`1 − q`
    quantiles of every plotted value, so one spike does not flatten the curves (the
    spike is clipped at the edge, as TensorBoard's "ignore outliers" does). None: let the
    axis fit the data itself (linear, outliers kept)."""
    if not (log or ignore_outliers):
        return None
    parts = [series[c].cast(pl.Float64) for c in columns if c in series.columns]
    if band is not None and not band.is_empty():
        parts += [band[c].cast(pl.Float64) for c in ("lo", "hi") if c in band.columns]
    if not parts:
        return None
    vals = pl.concat(parts)
    vals = vals.filter(vals.is_finite())
    if log:
        vals = vals.filter(vals > 0).log10()
    if vals.is_empty():
        return None
    if ignore_outliers:
        lo = float(vals.quantile(q, "linear"))  # type: ignore[arg-type]
        hi = float(vals.quantile(1 - q, "linear"))  # type: ignore[arg-type]
    else:
        lo, hi = float(vals.min()), float(vals.max())  # type: ignore[arg-type]
    span = hi - lo
    pad = 0.05 * span if span > 0 else (0.05 if log else max(abs(lo) * 0.05, 1e-9))
    lo, hi = lo - pad, hi + pad
    return (10**lo, 10**hi) if log else (lo, hi)


# --- groups -------------------------------------------------------------------------------------

SEED_GROUPS = "(seed groups)"
"""The group-by choice for runs that differ only in seed (`sweep.repeated_seed_groups`);
not a valid config key, so it cannot clash with one."""

BANDS: dict[str, str] = {
    "minmax": "min–max",
    "std": "mean ± std",
    "stderr": "mean ± standard error",
}
"""The band a group line is drawn with, with what the picker says of each."""


def group_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys runs can be grouped by: those with at least two distinct values among
    the runs and at least one value shared by two runs (else every group is one run)."""
    keys: list[str] = []
    for key in dict.fromkeys(k for r in runs for k in r.hparams):
        values = [repr(r.hparams.get(key)) for r in runs]
        if len(set(values)) > 1 and len(set(values)) < len(values):
            keys.append(str(key))
    return keys


def config_groups(runs: Sequence[Run], key: str) -> dict[str, list[str]]:
    """Runs by their value of one config key (`target_k=2.4`), in order of first run;
    runs without the key form `key=?`. Groups of one run are kept (drawn as that run)."""
    out: dict[str, list[str]] = {}
    for r in runs:
        value: Any = r.hparams.get(key)
        out.setdefault(f"{key}={'?' if value is None else value}", []).append(r.name)
    return out


def group_series(
    series: pl.DataFrame,
    groups: Mapping[str, Sequence[str]],
    x: str = "step",
    band: str = "minmax",
    max_points: int | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Replace each group of two or more runs by its mean line and a band (`BANDS`:
    min–max, ±std or ± standard error of the runs' smoothed values at each step).

    `series` is the full-resolution output of `step_series(..., thin=False)`: runs are
    averaged step by step on every logged step, and only then is the result thinned
    for the browser (thinning first would average different steps of different runs).
    Runs outside every multi-run group are thinned as they are. Returns (`lines`,
    `band` rows `run, <x>, lo, hi`). NaN counts as absent.
    """
    if band not in BANDS:
        raise ValueError(f"unknown band {band!r}; one of {', '.join(BANDS)}")
    multi = {g: list(m) for g, m in groups.items() if len(m) > 1}
    member = {r: g for g, rs in multi.items() for r in rs}
    rest = series.filter(~pl.col("run").is_in(list(member)))
    grouped = series.filter(pl.col("run").is_in(list(member)))
    n_lines = rest["run"].n_unique() + len({member[r] for r in grouped["run"].unique()})
    max_points = max_points or points_per_run(max(1, n_lines))
    if grouped.is_empty():
        return thin_series(series, max_points), pl.DataFrame()
    sm = pl.col("smooth").fill_nan(None)
    mean, sd, n = sm.mean(), sm.std(ddof=1).fill_null(0.0), sm.count()
    spread = {
        "minmax": (sm.min(), sm.max()),
        "std": (mean - sd, mean + sd),
        "stderr": (mean - sd / n.sqrt(), mean + sd / n.sqrt()),
    }[band]
    order = {g: i for i, g in enumerate(multi)}
    full = (
        grouped.with_columns(pl.col("run").replace_strict(member).alias("_g"))
        .group_by("_g", "step")
        .agg(
            *([pl.col(x).mean()] if x != "step" else []),
            pl.col("value").fill_nan(None).mean().alias("value"),
            mean.alias("smooth"),
            spread[0].alias("lo"),
            spread[1].alias("hi"),
        )
        .sort(pl.col("_g").replace_strict(order, return_dtype=pl.Int64), "step")
        .rename({"_g": "run"})
        .select("run", *([x] if x != "step" else []), "step", "value", "smooth", "lo", "hi")
    )
    full = thin_series(full, max_points)
    lines = full.drop("lo", "hi")
    band_rows = full.select("run", pl.col(x), "lo", "hi")
    return pl.concat([thin_series(rest, max_points), lines], how="diagonal_relaxed"), band_rows


# --- the sweep's compute frontier ---------------------------------------------------------------


def pareto_front(data: pl.DataFrame, x: str, y: str) -> pl.DataFrame:
    """`data` with a boolean `on_front`: the rows no other row beats on both `x` and `y`
    (lower is better on both: less compute, lower loss). Rows with a missing or
    non-finite value are never on the front. Sorted by `x`. Both columns come back as
    floats: a sweep table's column of runs that all lack a value is not typed as numbers,
    and what is not a number is missing here."""
    data = data.with_columns(pl.col(x, y).cast(pl.Float64, strict=False))
    ok = pl.col(x).is_finite().fill_null(False) & pl.col(y).is_finite().fill_null(False)
    df = data.with_columns(ok.alias("_ok")).sort(x, y, nulls_last=True)
    # Sorted by x (ties by y): a row is on the front when its y is below every y of the
    # rows before it, i.e. it beats the running minimum.
    prev_min = pl.when(pl.col("_ok")).then(pl.col(y)).cum_min().forward_fill().shift(1)
    return df.with_columns(
        (pl.col("_ok") & (prev_min.is_null() | (pl.col(y) < prev_min))).alias("on_front")
    ).drop("_ok")


COMPUTE_SPENT = "passes_x_tokens"
"""Column of `compute_spent`: layer passes times tokens, summed over the run."""


SPENT_COLUMNS: tuple[str, ...] = ("avg_k",)
"""The metrics `compute_spent` needs from `per_step` (tokens are one of its axes)."""


def compute_spent(frames: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """Each run's compute as `run, passes_x_tokens`: Σ over steps of mean passes k times
    the tokens of that step (from `per_step`'s cumulative tokens). Null when the log
    gives no throughput (tokens stay 0)."""
    rows: list[tuple[str, float | None]] = []
    for name, df in frames.items():
        if "avg_k" not in df.columns or "tokens" not in df.columns:
            rows.append((name, None))
            continue
        step_tokens = pl.col("tokens").diff().fill_null(pl.col("tokens"))
        total = df.select((pl.col("avg_k").fill_nan(None) * step_tokens).sum()).item()
        rows.append((name, float(total) if total else None))
    return pl.DataFrame(rows, schema={"run": pl.String, COMPUTE_SPENT: pl.Float64}, orient="row")


def layer_profile(
    runs: Sequence[Run],
    column: str,
    step_range: tuple[int, int] | None = None,
    include_audit: bool = False,
) -> pl.DataFrame:
    """Mean of a per-layer metric for each layer and run over the step range: rows
    `run, layer, value, n` (how deep in the stack a run spends its depth, side by side).
    Audit steps' layer lines (forced k=2) are left out unless `include_audit`."""
    parts = []
    for run in runs:
        if column not in run.layers.columns:
            continue
        df = run.layers.select("step", "layer", column).filter(pl.col(column).is_finite())
        if not include_audit:
            df = df.join(patterns.audit_steps(run).to_frame("step"), on="step", how="anti")
        if step_range is not None:
            df = df.filter(pl.col("step").is_between(*step_range))
        if df.is_empty():
            continue
        parts.append(
            df.group_by("layer")
            .agg(pl.col(column).mean().alias("value"), pl.len().alias("n"))
            .sort("layer")
            .select(pl.lit(run.name).alias("run"), "layer", "value", "n")
        )
    if not parts:
        return pl.DataFrame(
            schema={"run": pl.String, "layer": pl.Int64, "value": pl.Float64, "n": pl.UInt32}
        )
    return pl.concat(parts, how="diagonal_relaxed")


LAYER_LINE_POINTS = 600
"""Points per layer line (min/max buckets): a dozen layers × a few runs stay light."""


def layer_lines(
    run: Run,
    column: str,
    step_range: tuple[int, int] | None = None,
    include_audit: bool = False,
    max_points: int = LAYER_LINE_POINTS,
) -> pl.DataFrame:
    """A per-layer metric over steps, one series per layer: rows `layer, step, value`.

    The heatmap's mean per bucket hides when a single layer jumps; a line per layer shows
    it. Audit steps (every layer forced to k=2) are left out unless `include_audit`, as on
    the heatmap. Each layer is cut to `max_points` with the min/max downsampling, so a
    spike in any layer survives the thinning.
    """
    empty = pl.DataFrame(schema={"layer": pl.Int64, "step": pl.Int64, "value": pl.Float64})
    if column not in run.layers.columns:
        return empty
    df = run.layers.select("step", "layer", column).filter(pl.col(column).is_finite())
    if not include_audit:
        df = df.join(patterns.audit_steps(run).to_frame("step"), on="step", how="anti")
    if step_range is not None:
        df = df.filter(pl.col("step").is_between(*step_range))
    if df.is_empty():
        return empty
    kept = downsample(df, x="step", columns=[column], max_points=max_points, by="layer")
    return kept.select(pl.col("layer").cast(pl.Int64), pl.col("step").cast(pl.Int64), "value").sort(
        "layer", "step"
    )


def _overlay_scale(series: pl.DataFrame, *, log: bool) -> Callable[[pl.Expr], pl.Expr]:
    """How `overlay_series` places a metric's values on the 0–1 axis: by its range over
    the plotted raw and smoothed values (on log10 for `log`), a flat metric at 0.5. One
    function, so the crosshair's dots sit on the lines they mark."""

    def lifted(c: pl.Expr) -> pl.Expr:
        return pl.when(c > 0).then(c.log10()).otherwise(None) if log else c

    both = series.select(
        pl.concat([lifted(pl.col("value")), lifted(pl.col("smooth"))]).cast(pl.Float64)
    ).to_series()
    both = both.filter(both.is_finite())
    lo, hi = (float(both.min()), float(both.max())) if both.len() else (0.0, 0.0)  # type: ignore[arg-type]
    span = hi - lo
    return lambda c: (lifted(c) - lo) / span if span > 0 else pl.lit(0.5)


def overlay_series(
    parts: Mapping[str, pl.DataFrame], *, normalize: bool, log_metrics: Collection[str] = ()
) -> pl.DataFrame:
    """Several metrics' series (`step_series` rows, keyed by the metric's label) as one
    frame for a single chart: rows `metric, run, <x>, step, value, smooth` plus
    `value_raw, smooth_raw`, the values as logged, for the tooltip.

    Metrics of one run differ by orders of magnitude (a loss near 3, an LR near 1e-4), so
    with `normalize` each metric is scaled to its own range over what is plotted (0 = its
    lowest raw or smoothed value, 1 = its highest, every run on one scale so runs still
    compare); a flat metric sits at 0.5. Metrics in `log_metrics` (those that span
    decades: LR, λ_p) are scaled on log10 of their positive values, else their early
    decades would all sit at 0. Without `normalize` the values share one axis as logged.
    """
    frames = []
    for label, s in parts.items():
        if s.is_empty():
            continue
        if "smooth" not in s.columns:
            s = s.with_columns(pl.col("value").alias("smooth"))
        s = s.with_columns(
            pl.lit(label).alias("metric"),
            pl.col("value").alias("value_raw"),
            pl.col("smooth").alias("smooth_raw"),
        )
        if normalize:
            scale = _overlay_scale(s, log=label in log_metrics)
            s = s.with_columns(scale(pl.col(c)).alias(c) for c in ("value", "smooth"))
        frames.append(s)
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed")


@dataclass(frozen=True)
class OverlayHover:
    """The overlay chart's crosshair: `texts` holds each (run, metric) line's value as
    logged at every grid x, `dots` the same on the chart's 0–1 scale (where the lines
    are drawn), with the same columns; `runs` maps a column to its run (its colour)."""

    texts: Hover
    dots: Hover
    runs: dict[str, str]


def overlay_hover(
    hovers: Mapping[str, Hover | None],
    parts: Mapping[str, pl.DataFrame],
    *,
    normalize: bool,
    log_metrics: Collection[str] = (),
) -> OverlayHover | None:
    """Every run's value of every metric at the hovered x, from the panels' own crosshair
    tables (`hovers`, keyed by metric label as `parts` is): one tooltip for the whole
    overlay, as the per-metric panels have. The first table's grid is the common x; a
    metric whose grid differs is read at its last grid point at or before it."""
    present = [(label, h) for label, h in hovers.items() if h is not None and h.frame.height]
    if not present:
        return None
    x = present[0][1].frame.columns[0]
    texts = present[0][1].frame.select(x)
    dots = texts
    columns: dict[str, str] = {}
    runs: dict[str, str] = {}
    for label, h in present:
        if h.frame.columns[0] != x:
            continue
        frame = h.frame.sort(x)
        scale = (
            _overlay_scale(parts[label], log=label in log_metrics)
            if normalize and label in parts and not parts[label].is_empty()
            else None
        )
        renamed = {c: f"w{len(columns) + i}" for i, c in enumerate(h.columns)}
        raw = frame.select(
            pl.col(x).cast(texts[x].dtype), *(pl.col(c).alias(n) for c, n in renamed.items())
        )
        placed = (
            raw.with_columns(scale(pl.col(n)).alias(n) for n in renamed.values()) if scale else raw
        )
        texts = texts.sort(x).join_asof(raw, on=x, strategy="backward")
        dots = dots.sort(x).join_asof(placed, on=x, strategy="backward")
        for c, n in renamed.items():
            columns[n] = f"{label} · {h.columns[c]}"
            runs[n] = h.columns[c]
    if not columns:
        return None
    return OverlayHover(Hover(texts, columns), Hover(dots, columns), runs)
