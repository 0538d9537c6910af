"""Charts: functions from Polars frames to Altair charts, testable without a server.

Every function takes already-prepared (downsampled) frames and returns an Altair chart;
nothing here reads session state. Run colours are passed in as a mapping so that a run
has the same colour on every page.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Literal

import altair as alt
import polars as pl

from ponder_app import prepare
from ponder_parse import schema
from ponder_parse.analysis import patterns, phases
from ponder_parse.analysis.phases import PHASE_LABELS

# Tableau-10 then its lighter partner colours: distinguishable for up to 20 runs.
PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

# Colours are keyed by the data layer's names, in the data layer's order.
PATTERN_COLORS: dict[str, str] = {
    patterns.HEALTHY: "#59a14f",
    patterns.NOT_STOPPING: "#f28e2b",
    patterns.OVER_PENALIZED: "#e15759",
    patterns.STUCK_HALF: "#b07aa1",
    patterns.FROZEN_GATE: "#9c755f",
    patterns.OTHER: "#bab0ac",
    patterns.FORCED: "#c6dbef",
}
PHASE_COLORS: dict[str, str] = {
    phases.FORCE_WARMUP: "#e8e8e8",
    phases.GATE_LEARNING: "#dbe7f3",
    phases.ECONOMIC: "#ffffff",
}
STATUS_COLORS: dict[str, str] = {
    schema.ECONOMIC_WIN: "#59a14f",
    schema.TAX_ONLY: "#e15759",
    schema.AUDIT_POS: "#76b7b2",
    schema.AUDIT_NEG: "#f28e2b",
}
X_TITLES: dict[str, str] = {
    "step": "step",
    "elapsed_min": "elapsed time (min, sum of dt)",
    "tokens": "tokens seen (sum of tok/sec × dt)",
}
WIDTH = "container"
TOOLTIP_POINTS = 3000  # hover targets per chart
# Streamlit fits the whole chart (legends and title included) into its height unless
# only the width is fitted: legends would squeeze the plot to nothing.
AUTOSIZE = alt.AutoSizeParams(type="fit-x", contains="padding")

# Row counts are bounded by the downsampling in `prepare`; the exporter must not refuse them.
alt.data_transformers.disable_max_rows()


_SPEC_LOCK = threading.Lock()


def _collect_datasets(data: object, datasets: dict[str, object]) -> dict[str, str]:
    """Altair data transformer: keep each frame as it is, referenced by name (a frame
    shared by several layers is sent once)."""
    name = f"data-{id(data):x}"
    datasets[name] = data
    return {"name": name}


alt.data_transformers.register("ponder_collect", _collect_datasets)


def to_spec(chart: alt.TopLevelMixin) -> dict:
    """The chart's Vega-Lite spec with its frames under `datasets`, unvalidated.

    Every chart here is built by a function whose output the tests validate against the
    Vega-Lite schema; validating again on every render costs about 0.1 s a chart (most
    of a page's time), so the app skips it. The frames stay Polars frames: Streamlit
    sends them to the browser as Arrow.
    """
    datasets: dict[str, object] = {}
    with (
        _SPEC_LOCK,
        alt.theme.enable("none"),
        alt.data_transformers.enable("ponder_collect", datasets=datasets),
    ):
        spec = chart.to_dict(validate=False)
    spec["datasets"] = {**spec.get("datasets", {}), **datasets}
    return spec


def run_colors(names: Sequence[str]) -> dict[str, str]:
    """A stable colour per run: by position in the full list of loaded runs."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def with_group_colors(
    colors: Mapping[str, str], groups: Sequence[str], n_runs: int
) -> dict[str, str]:
    """Run colours plus one for each seed group, taken after every loaded run's colour so
    a group never looks like one of its members."""
    out = dict(colors)
    for i, g in enumerate(groups):
        out.setdefault(g, PALETTE[(n_runs + i) % len(PALETTE)])
    return out


def d3_format(spec: str) -> str:
    """The tooltip format for a catalog number format: shares always get two decimals,
    because a hovered value is read closely and one decimal hides the change."""
    return ".2%" if spec.endswith("%") else spec


def color_scale(colors: Mapping[str, str], names: Sequence[str] | None = None) -> alt.Scale:
    domain = list(names) if names is not None else list(colors)
    return alt.Scale(domain=domain, range=[colors.get(n, "#888888") for n in domain])


def _empty(message: str) -> alt.Chart:
    return (
        alt.Chart(pl.DataFrame({"text": [message]}))
        .mark_text(size=14, color="#888888")
        .encode(text="text:N")
        .properties(height=60, width=WIDTH, autosize=AUTOSIZE)
    )


def metric_chart(
    data: pl.DataFrame,
    *,
    title: str,
    y_title: str,
    colors: Mapping[str, str],
    x: str = "step",
    log_y: bool = False,
    smoothed: bool = True,
    refs: Sequence[tuple[float, str]] = (),
    bands: pl.DataFrame | None = None,
    markers: pl.DataFrame | None = None,
    band: pl.DataFrame | None = None,
    x_domain: tuple[float, float] | None = None,
    height: int = 220,
    value_format: str = ".4g",
    run_refs: pl.DataFrame | None = None,
    audit_points: pl.DataFrame | None = None,
) -> alt.LayerChart | alt.Chart:
    """One metric over x, runs overlaid.

    `data`: long rows `run, x, value` (the raw series, already downsampled) and, when
    `smoothed`, `smooth` (the EMA of the full series at the kept points). Raw is drawn
    faint behind the smoothed line, as in TensorBoard. `bands`: `start, end, phase` spans
    shaded behind. `markers`: `x, run, kind` vertical ticks (audit steps, deadband).
    `band`: `run, x, lo, hi` min–max band (seed groups). `refs` are grey lines shared by
    every run; `run_refs` (`run, y, label`) lines of one run each (its own TARGET_K),
    dashed in the run's colour. `audit_points` (`run, x, value`): values on audit steps,
    left out of the lines, drawn as open marks.
    """
    if data.is_empty():
        return _empty(f"{title}: no data in the selected runs / range")
    names = data["run"].unique(maintain_order=True).to_list()
    scale = color_scale(colors, names)
    yscale = alt.Scale(type="log") if log_y else alt.Scale(zero=False)
    yaxis = alt.Axis(format="~e") if log_y else alt.Axis()
    xscale = alt.Scale(domain=list(x_domain)) if x_domain else alt.Scale()
    xenc = alt.X(f"{x}:Q", title=X_TITLES.get(x, x), scale=xscale)
    if log_y:
        data = data.filter(pl.col("value") > 0)
        if smoothed:
            data = data.filter(pl.col("smooth") > 0)
    base = alt.Chart(data).encode(
        x=xenc,
        color=alt.Color(
            "run:N",
            scale=scale,
            legend=alt.Legend(
                title="run",
                orient="bottom",
                columns=4,
                labelLimit=260,
                symbolType="stroke",
                symbolOpacity=1,
                symbolStrokeWidth=3,
            ),
        ),
    )
    # Clicking a run in the legend highlights it (shift-click for several), as in
    # TensorBoard and W&B; clicking empty space clears the highlight.
    pick = alt.selection_point(fields=["run"], bind="legend")
    tooltip = [
        alt.Tooltip("run:N"),
        alt.Tooltip(f"{x}:Q", title=X_TITLES.get(x, x), format=",.6g"),
        alt.Tooltip("value:Q", title=f"{y_title} (raw)", format=value_format),
    ]
    layers: list[alt.Chart] = []
    if bands is not None and not bands.is_empty():
        layers.append(
            alt.Chart(bands)
            .mark_rect(opacity=0.5)
            .encode(
                x=alt.X("start:Q", scale=xscale),
                x2="end:Q",
                fill=alt.Fill(
                    "label:N",
                    scale=alt.Scale(
                        domain=list(PHASE_LABELS.values()),
                        range=[PHASE_COLORS[p] for p in PHASE_LABELS],
                    ),
                    legend=alt.Legend(title="phase", orient="top"),
                ),
                tooltip=[
                    alt.Tooltip("label:N", title="phase"),
                    "start:Q",
                    "end:Q",
                    alt.Tooltip("source:N", title="from"),
                ],
            )
        )
    if band is not None and not band.is_empty():
        layers.append(
            alt.Chart(band)
            .mark_area(opacity=0.18)
            .encode(
                x=xenc,
                y=alt.Y("lo:Q", scale=yscale),
                y2="hi:Q",
                color=alt.Color("run:N", scale=scale, legend=None),
            )
        )
    front = "smooth" if smoothed else "value"  # the line the eye follows and hovers
    if smoothed:
        tooltip.append(alt.Tooltip("smooth:Q", title=f"{y_title} (smoothed)", format=value_format))
        layers.append(
            base.mark_line(strokeWidth=1).encode(
                y=alt.Y("value:Q", scale=yscale, title=y_title, axis=yaxis),
                detail="run:N",
                opacity=alt.condition(pick, alt.value(0.22), alt.value(0.04)),
            )
        )
    layers.append(
        base.mark_line(strokeWidth=1.8 if smoothed else 1.5)
        .encode(
            y=alt.Y(f"{front}:Q", scale=yscale, title=y_title, axis=yaxis),
            tooltip=tooltip,
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.12)),
        )
        .add_params(pick)
    )
    # Invisible points make the tooltip reachable along the line; a thinned copy of the
    # data is enough for that and keeps the browser's work small.
    every = max(1, data.height // TOOLTIP_POINTS)
    hover = data.gather_every(every) if every > 1 else data
    layers.append(
        alt.Chart(hover)
        .mark_point(opacity=0, size=40)
        .encode(x=xenc, y=alt.Y(f"{front}:Q", scale=yscale), tooltip=tooltip)
    )
    if refs:
        rdf = pl.DataFrame({"y": [float(v) for v, _ in refs], "label": [lbl for _, lbl in refs]})
        if log_y:
            rdf = rdf.filter(pl.col("y") > 0)
        layers.append(
            alt.Chart(rdf)
            .mark_rule(strokeDash=[5, 4], color="#888888", strokeWidth=1)
            .encode(
                y=alt.Y("y:Q", scale=yscale),
                tooltip=[
                    alt.Tooltip("label:N", title="reference"),
                    alt.Tooltip("y:Q", title="value", format=value_format),
                ],
            )
        )
    if run_refs is not None and not run_refs.is_empty():
        own = run_refs.filter(pl.col("run").is_in(names))
        if log_y:
            own = own.filter(pl.col("y") > 0)
        layers.append(
            alt.Chart(own)
            .mark_rule(strokeDash=[8, 4], strokeWidth=1.6, opacity=0.9)
            .encode(
                y=alt.Y("y:Q", scale=yscale),
                color=alt.Color("run:N", scale=scale, legend=None),
                tooltip=[
                    alt.Tooltip("label:N", title="reference"),
                    alt.Tooltip("y:Q", title="value", format=value_format),
                ],
            )
        )
        labels = prepare.reference_labels(own)
        layers.append(
            alt.Chart(labels)
            .mark_text(align="right", baseline="bottom", dx=-2, dy=-2, fontSize=10, limit=360)
            .encode(
                x=alt.value({"expr": "width"}),
                y=alt.Y("y:Q", scale=yscale),
                text="label:N",
                color=alt.Color("run:N", scale=scale, legend=None),
                tooltip=[alt.Tooltip("runs:N", title="runs"), alt.Tooltip("label:N")],
            )
        )
    if audit_points is not None and not audit_points.is_empty():
        pts = audit_points.filter(pl.col("value") > 0) if log_y else audit_points
        layers.append(
            alt.Chart(pts)
            .mark_point(shape="circle", filled=False, size=14, opacity=0.55, strokeWidth=1)
            .encode(
                x=alt.X("x:Q", scale=xscale),
                y=alt.Y("value:Q", scale=yscale),
                color=alt.Color("run:N", scale=scale, legend=None),
                tooltip=[
                    "run:N",
                    alt.Tooltip("step:Q", title="audit step"),
                    alt.Tooltip(
                        "value:Q", title=f"{y_title} (audit, forced k=2)", format=value_format
                    ),
                ],
            )
        )
    if markers is not None and not markers.is_empty():
        layers.append(
            alt.Chart(markers)
            .mark_rule(strokeWidth=1, opacity=0.6, strokeDash=[2, 2])
            .encode(
                x=alt.X("x:Q", scale=xscale),
                color=alt.Color("run:N", scale=scale, legend=None),
                tooltip=[
                    "run:N",
                    alt.Tooltip("kind:N", title="event"),
                    alt.Tooltip("x:Q", title=X_TITLES.get(x, x)),
                ],
            )
        )
    return alt.LayerChart(layer=layers).properties(
        title=title, height=height, width=WIDTH, autosize=AUTOSIZE
    )


def heatmap(
    data: pl.DataFrame,
    *,
    title: str,
    value_title: str,
    domain: tuple[float, float] | None = None,
    diverging: bool = False,
    scheme: Literal["viridis", "magma", "inferno", "plasma", "cividis"] = "viridis",
    value_format: str = ".4g",
    height: int = 180,
    marks: pl.DataFrame | None = None,
) -> alt.Chart | alt.LayerChart:
    """Layer × step heatmap: rows `layer, start, end, value` (steps bucketed into spans).

    `marks`: `step` rows (audit steps left out of the cells) drawn as small triangles
    along the top edge, so the reader sees where they were without a stripe per audit.
    """
    if data.is_empty():
        return _empty(f"{title}: no per-layer data")
    if diverging:
        lim = max(abs(domain[0]), abs(domain[1])) if domain else None
        scale = alt.Scale(
            scheme="redblue",
            domainMid=0,
            reverse=True,
            domain=[-lim, lim] if lim else alt.Undefined,
        )
    else:
        scale = alt.Scale(scheme=scheme, domain=list(domain) if domain else alt.Undefined)
    n_layers = data["layer"].n_unique()
    size = {"width": WIDTH, "autosize": AUTOSIZE, "height": max(height, 18 * n_layers)}
    cells = (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X("start:Q", title="step"),
            x2="end:Q",
            y=alt.Y("layer:O", title="layer", sort="ascending"),
            color=alt.Color("value:Q", title=value_title, scale=scale),
            tooltip=[
                alt.Tooltip("layer:O"),
                alt.Tooltip("start:Q", title="from step"),
                alt.Tooltip("end:Q", title="to step"),
                alt.Tooltip("value:Q", title=value_title, format=value_format),
            ],
        )
    )
    if marks is None or marks.is_empty():
        return cells.properties(title=title, **size)
    ticks = (
        alt.Chart(marks.with_columns(kind=pl.lit("audit step (left out)")))
        .mark_point(shape="triangle-down", filled=True, size=22, color="#444444", opacity=0.7)
        .encode(
            x=alt.X("step:Q"),
            y=alt.value(-5),
            tooltip=[alt.Tooltip("kind:N", title="mark"), alt.Tooltip("step:Q")],
        )
    )
    return alt.LayerChart(layer=[cells, ticks]).properties(title=title, **size)


def pattern_timeline(data: pl.DataFrame, *, title: str, kmax: int | None = None) -> alt.Chart:
    """Layer × trace step, coloured by survival-trace pattern: rows `layer, start, end, pattern, s_trace_text`."""
    if data.is_empty():
        return _empty(f"{title}: no survival traces")
    domain = list(patterns.TIMELINE_PATTERNS)
    n_layers = data["layer"].n_unique()
    return (
        alt.Chart(data)
        .mark_rect()
        .encode(
            x=alt.X("start:Q", title="step"),
            x2="end:Q",
            y=alt.Y("layer:O", title="layer"),
            color=alt.Color(
                "pattern:N",
                scale=alt.Scale(domain=domain, range=[PATTERN_COLORS[p] for p in domain]),
                legend=alt.Legend(
                    title="pattern",
                    orient="bottom",
                    labelExpr=_pattern_label_expr(),
                    labelLimit=320,
                    columns=3,
                ),
            ),
            tooltip=[
                alt.Tooltip("layer:O"),
                alt.Tooltip("step:Q"),
                alt.Tooltip("pattern:N"),
                alt.Tooltip("s_trace_text:N", title="s_trace"),
            ],
        )
        .properties(title=title, width=WIDTH, autosize=AUTOSIZE, height=max(120, 18 * n_layers))
    )


def _pattern_label_expr() -> str:
    titles = patterns.CATEGORY_TITLES
    pairs = ", ".join(f"'{k}': '{v}'" for k, v in titles.items())
    return f"({{{pairs}}})[datum.label] || datum.label"


def pattern_share_bars(data: pl.DataFrame, *, title: str) -> alt.Chart:
    """Stacked share of each pattern: rows `run, phase, pattern, share, n`."""
    if data.is_empty():
        return _empty(f"{title}: no classified traces")
    domain = list(patterns.TIMELINE_PATTERNS)  # forced traces are a category of their own
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("run:N", title=None, axis=alt.Axis(labelLimit=180)),
            x=alt.X(
                "share:Q",
                title="share of traces",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            color=alt.Color(
                "pattern:N",
                scale=alt.Scale(domain=domain, range=[PATTERN_COLORS[p] for p in domain]),
                legend=alt.Legend(
                    title="pattern",
                    orient="bottom",
                    labelExpr=_pattern_label_expr(),
                    labelLimit=320,
                    columns=3,
                ),
            ),
            column=alt.Column("phase_label:N", title=None, sort=list(PHASE_LABELS.values())),
            order=alt.Order("pattern_rank:Q"),
            tooltip=[
                "run:N",
                alt.Tooltip("phase_label:N", title="phase"),
                "pattern:N",
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("n:Q", title="traces"),
            ],
        )
        .properties(title=title, width=190)
    )


def trace_curves(data: pl.DataFrame, *, title: str, columns: int = 3) -> alt.FacetChart | alt.Chart:
    """Survival probability entering each pass, one small panel per run.

    Rows `series, layer, k, s` (k = 1..Kmax; `series` names the run and its trace step).
    One faceted chart rather than a chart per run: a sweep of twenty runs stays one
    specification for the browser to lay out.
    """
    if data.is_empty():
        return _empty(f"{title}: no traces at this step")
    enc_color = alt.Color("layer:O", title="layer", scale=alt.Scale(scheme="viridis"))
    base = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("k:O", title="pass k"),
            y=alt.Y("s:Q", title="survival s entering pass", scale=alt.Scale(domain=[0, 1.02])),
            color=enc_color,
            tooltip=["series:N", "layer:O", "k:O", alt.Tooltip("s:Q", format=".2f")],
        )
        .properties(width=170, height=160)
    )
    # A header no wider than its panel: run folder names can be long, and a wider header
    # widens every column past the page (the full name is in the tooltip).
    return base.facet(
        facet=alt.Facet(
            "series:N", title=None, header=alt.Header(labelLimit=170, labelFontSize=11)
        ),
        columns=columns,
    ).properties(title=title)


def reference_shapes_chart() -> alt.Chart:
    """The guide's four reference survival shapes, for reading real traces against."""
    df = patterns.reference_shapes_frame()
    domain = list(patterns.REFERENCE_SHAPES)
    return (
        alt.Chart(df)
        .mark_line(point=True, strokeDash=[6, 3])
        .encode(
            x=alt.X("k:O", title="pass k"),
            y=alt.Y("s:Q", title="survival s", scale=alt.Scale(domain=[0, 1.02])),
            color=alt.Color(
                "pattern:N",
                scale=alt.Scale(domain=domain, range=[PATTERN_COLORS[p] for p in domain]),
                legend=alt.Legend(
                    title="guide's shapes",
                    orient="bottom",
                    labelExpr=_pattern_label_expr(),
                    columns=1,
                ),
            ),
            tooltip=["label:N", "k:O", alt.Tooltip("s:Q", format=".2f")],
        )
        .properties(
            title="The guide's reference shapes", width=WIDTH, autosize=AUTOSIZE, height=200
        )
    )


def grouped_bars(
    data: pl.DataFrame,
    *,
    value: str,
    title: str,
    colors: Mapping[str, str],
    value_format: str = ".4g",
) -> alt.Chart:
    """One bar per run within each phase: rows `run, phase_label, <value>`."""
    data = data.filter(pl.col(value).is_not_null() & pl.col(value).is_finite())
    if data.is_empty():
        return _empty(f"{title}: no values")
    names = data["run"].unique(maintain_order=True).to_list()
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X(
                "phase_label:N",
                title=None,
                sort=list(PHASE_LABELS.values()),
                axis=alt.Axis(labelAngle=0),
            ),
            xOffset=alt.XOffset("run:N", sort=names),
            y=alt.Y(f"{value}:Q", title=title),
            color=alt.Color(
                "run:N",
                scale=color_scale(colors, names),
                legend=alt.Legend(orient="bottom", columns=2, labelLimit=220),
            ),
            tooltip=[
                "run:N",
                alt.Tooltip("phase_label:N", title="phase"),
                alt.Tooltip(f"{value}:Q", format=value_format),
            ],
        )
        .properties(title=title, width=WIDTH, autosize=AUTOSIZE, height=220)
    )


def histogram(
    data: pl.DataFrame, *, title: str, x_title: str, colors: Mapping[str, str]
) -> alt.LayerChart | alt.Chart:
    """Overlaid per-run histograms from pre-binned counts (rows `run, lo, hi, n`), zero marked.

    Binning happens in Polars (`prepare.histogram_bins`): the browser gets a few hundred
    rows instead of every value.
    """
    if data.is_empty():
        return _empty(f"{title}: no values")
    names = data["run"].unique(maintain_order=True).to_list()
    bars = (
        alt.Chart(data)
        .mark_rect(opacity=0.45)
        .encode(
            x=alt.X("lo:Q", title=x_title),
            x2="hi:Q",
            y=alt.Y("n:Q", title="steps", stack=None),
            color=alt.Color(
                "run:N",
                scale=color_scale(colors, names),
                legend=alt.Legend(orient="bottom", columns=3, labelLimit=260),
            ),
            tooltip=[
                "run:N",
                alt.Tooltip("lo:Q", title="from", format=".4g"),
                alt.Tooltip("hi:Q", title="to", format=".4g"),
                alt.Tooltip("n:Q", title="steps"),
            ],
        )
    )
    zero = (
        alt.Chart(pl.DataFrame({"x": [0.0]}))
        .mark_rule(color="#333333", strokeDash=[4, 3])
        .encode(x="x:Q")
    )
    return alt.LayerChart(layer=[bars, zero]).properties(
        title=title, width=WIDTH, autosize=AUTOSIZE, height=220
    )


def count_bars(
    data: pl.DataFrame, *, category: str, title: str, domain: Sequence[str], range_: Sequence[str]
) -> alt.Chart:
    """Stacked counts per run: rows `run, <category>, n`."""
    if data.is_empty():
        return _empty(f"{title}: none")
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("run:N", title=None, axis=alt.Axis(labelLimit=260)),
            x=alt.X("n:Q", title="steps", stack="normalize", axis=alt.Axis(format="%")),
            color=alt.Color(
                f"{category}:N",
                scale=alt.Scale(domain=list(domain), range=list(range_)),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=["run:N", f"{category}:N", alt.Tooltip("n:Q", title="steps")],
        )
        .properties(title=title, width=WIDTH, autosize=AUTOSIZE)
    )


def parallel_coordinates(
    data: pl.DataFrame, *, axes: Sequence[str], colors: Mapping[str, str]
) -> alt.Chart:
    """One line per run across hyperparameter and summary axes, each axis min–max scaled.

    `data` has a `run` column plus the `axes` (numeric). Tooltips carry the real values.
    """
    axes = [a for a in axes if a in data.columns]
    if data.is_empty() or len(axes) < 2:
        return _empty("parallel coordinates: pick at least two numeric columns")
    cols = []
    for a in axes:
        v = pl.col(a).cast(pl.Float64)
        lo, hi = v.min(), v.max()
        cols.append(pl.when(hi > lo).then((v - lo) / (hi - lo)).otherwise(0.5).alias(a))
    norm = data.select("run", *cols)
    long = norm.unpivot(index="run", on=axes, variable_name="axis", value_name="scaled")
    raw = data.select("run", *[pl.col(a).cast(pl.Float64) for a in axes]).unpivot(
        index="run", on=axes, variable_name="axis", value_name="value"
    )
    long = long.join(raw, on=["run", "axis"])
    names = data["run"].to_list()
    return (
        alt.Chart(long)
        .mark_line(point=True, opacity=0.8)
        .encode(
            x=alt.X(
                "axis:N", sort=list(axes), title=None, axis=alt.Axis(labelAngle=-20, labelLimit=200)
            ),
            y=alt.Y("scaled:Q", title="min → max of each axis", axis=alt.Axis(format="%")),
            color=alt.Color(
                "run:N",
                scale=color_scale(colors, names),
                legend=alt.Legend(orient="bottom", columns=3, labelLimit=260),
            ),
            detail="run:N",
            tooltip=["run:N", "axis:N", alt.Tooltip("value:Q", format=".4g")],
        )
        .properties(
            title="Runs across hyperparameters and outcomes",
            width=WIDTH,
            autosize=AUTOSIZE,
            height=300,
        )
    )


def scatter(
    data: pl.DataFrame, *, x: str, y: str, colors: Mapping[str, str], log_x: bool = False
) -> alt.Chart:
    """One point per run: a summary metric against a hyperparameter."""
    data = data.filter(pl.col(x).is_not_null() & pl.col(y).is_not_null())
    xtype = "Q" if data.schema[x].is_numeric() else "N"
    if log_x and xtype == "Q":
        data = data.filter(pl.col(x) > 0)
    if data.is_empty():
        return _empty(f"no runs with both {x} and {y}")
    names = data["run"].to_list()
    return (
        alt.Chart(data)
        .mark_circle(size=120, opacity=0.85)
        .encode(
            x=alt.X(
                f"{x}:{xtype}",
                title=x,
                scale=(alt.Scale(type="log") if log_x else alt.Scale(zero=False))
                if xtype == "Q"
                else alt.Undefined,
            ),
            y=alt.Y(f"{y}:Q", title=y, scale=alt.Scale(zero=False)),
            color=alt.Color(
                "run:N",
                scale=color_scale(colors, names),
                legend=alt.Legend(orient="bottom", columns=3, labelLimit=260),
            ),
            tooltip=["run:N", f"{x}:{xtype}", alt.Tooltip(f"{y}:Q", format=".4g")],
        )
        .properties(title=f"{y} against {x}", width=WIDTH, autosize=AUTOSIZE, height=300)
    )
