"""Charts: functions from Polars frames to Altair charts, testable without a server.

Every function takes already-prepared (downsampled) frames and returns an Altair chart;
nothing here reads session state. Run colours are passed in as a mapping so that a run
has the same colour on every page.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import altair as alt
import polars as pl

from ponder_app import prepare
from ponder_parse import schema
from ponder_parse.analysis import patterns, phases
from ponder_parse.analysis.phases import PHASE_LABELS

# A large categorical palette, every two colours at least ΔE 24 apart (CIE76 in Lab) and
# none grey (grey is the "Other" pattern's colour) or near-white (the phase bands): the
# Tableau 10 hues, then colours picked one by one farthest from all before them. Which
# slot a run gets is decided by its name (`run_colors`), not by this order.
PALETTE: tuple[str, ...] = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#8877ee", "#990077", "#ff88ee", "#555500", "#884400", "#006655", "#00ccff",
    "#883344", "#bbbb77", "#0099ff", "#889900", "#554488", "#ee5599", "#00ccaa", "#eeaa77",
    "#aabbff", "#997700", "#991111", "#aa66bb", "#22cc77", "#006600", "#557744", "#0055bb",
)  # fmt: skip
# Colours closer than this would be read as one run: a user's pick or a run's colour
# keeps the next runs off look-alike slots (palette colours are all farther apart).
MIN_COLOR_DISTANCE = 20.0
COLOR_OVERRIDES_KEY = "run_color_overrides"
"""Session-state key of the user's colour choices (`{run name: "#rrggbb"}`)."""

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
    "compute": "compute (Σ over steps of mean passes k)",
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
    shared by several layers is sent once).

    Names follow the order the chart meets its frames, not the frames' identity, so a
    chart drawn again with other values of the same shape (a new smoothing weight, the
    steps a live run appended) has the very same spec: Streamlit then swaps the data in
    the browser's Vega view instead of compiling and building a new one."""
    for name, seen in datasets.items():
        if seen is data:
            return {"name": name}
    name = f"data-{len(datasets)}"
    datasets[name] = data
    return {"name": name}


alt.data_transformers.register("ponder_collect", _collect_datasets)

# Altair's debug mode validates every object against the Vega-Lite schema as it is made
# (each encoding, each layer, again as layers are combined): about a quarter of a step
# line's build. Specs are validated whole where it tells something: by the tests, which
# call `to_dict()` on every chart function's output (see `to_spec`).
alt.utils.schemapi.disable_debug_mode()


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


def _name_hash(name: str) -> int:
    """A hash of a run's name that is the same in every process (Python's `hash` of a
    string is salted per process, which would give a run another colour after a restart)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def _lab(color: str) -> tuple[float, float, float]:
    """sRGB hex → CIE Lab (D65): distances there follow what the eye tells apart."""
    rgb = [int(color[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    r, g, b = lin
    xyz = (
        (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047,
        0.2126 * r + 0.7152 * g + 0.0722 * b,
        (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883,
    )
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def color_distance(a: str, b: str) -> float:
    """CIE76 ΔE between two `#rrggbb` colours."""
    la, lb = _lab(a), _lab(b)
    return sum((x - y) ** 2 for x, y in zip(la, lb, strict=True)) ** 0.5


def is_hex_color(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"#[0-9a-fA-F]{6}", value) is not None


def run_colors(
    names: Sequence[str],
    overrides: Mapping[str, str] | None = None,
    taken: Sequence[str] = (),
) -> dict[str, str]:
    """The one place run colours come from: a colour per name, decided by the name.

    Each name prefers the palette slot its hash points at. Names are served in the order
    of their hashes (not of loading), and a name whose slot is taken, or too close to a
    colour already given (`MIN_COLOR_DISTANCE`), probes the following slots. So a run
    keeps its colour on every page, after a restart and in another set of runs, unless a
    run whose hash comes first wants the same or a look-alike colour; and up to ~20 runs
    never share one. `overrides` (the user's picks) win and count as taken, as do the
    `taken` colours (the runs', when colouring groups).
    """
    out: dict[str, str] = {}
    chosen = [c.lower() for c in taken]
    for name in names:
        pick = (overrides or {}).get(name)
        if is_hex_color(pick):
            out[name] = str(pick).lower()
            chosen.append(out[name])
    n = len(PALETTE)
    for name in sorted((n_ for n_ in dict.fromkeys(names) if n_ not in out), key=_name_hash):
        start = _name_hash(name) % n
        order = [PALETTE[(start + j) % n] for j in range(n)]
        free = [c for c in order if c not in chosen]
        far = [c for c in free if all(color_distance(c, t) >= MIN_COLOR_DISTANCE for t in chosen)]
        color = far[0] if far else free[0] if free else order[0]
        out[name] = color
        chosen.append(color)
    return {name: out[name] for name in names}


def with_group_colors(colors: Mapping[str, str], groups: Sequence[str]) -> dict[str, str]:
    """Run colours plus one for each group line (seed groups, config groups), chosen by
    the group's name away from the runs' colours so a group never looks like a member."""
    new = [g for g in groups if g not in colors]
    return {**colors, **run_colors(new, taken=list(colors.values()))}


def d3_format(spec: str) -> str:
    """The tooltip format for a catalog number format: shares always get two decimals,
    because a hovered value is read closely and one decimal hides the change."""
    return ".2%" if spec.endswith("%") else spec


def color_scale(colors: Mapping[str, str], names: Sequence[str] | None = None) -> alt.Scale:
    domain = list(names) if names is not None else list(colors)
    return alt.Scale(domain=domain, range=[colors.get(n, "#888888") for n in domain])


def _empty(message: str, title: str | None = None) -> alt.Chart:
    """A chart saying why there is nothing to draw. With `title`, the message sits under
    the title the chart would have had, so a panel of a `stack` still says whose it is."""
    props: dict[str, Any] = {"height": 60, "width": WIDTH, "autosize": AUTOSIZE}
    if title is not None:
        props["title"] = title
    return (
        alt.Chart(pl.DataFrame({"text": [message]}))
        .mark_text(size=14, color="#888888")
        .encode(text=alt.Text("text:N"))
        .properties(**props)
    )


ZOOM = "x_zoom"
"""Name of the drag-to-zoom / pan interval on x, one parameter for every chart of a page."""
PICK = "run_pick"
"""Name of the legend click that highlights runs: shared, so a click highlights the run
in every chart of a `stack`."""
HOVER = "x_hover"
"""Name of the nearest-x hover point: one crosshair across every chart of a page."""
X_FORMATS: dict[str, str] = {
    "step": "d",
    "elapsed_min": ",.1f",
    "tokens": ".4~s",
    "compute": ",.4~g",
}
"""How an x value reads in a tooltip: a step is a whole number, never `1,474.00`."""


def zoom_param() -> alt.Parameter:
    """Drag to pan, wheel to zoom, double-click to reset: an interval bound to the x
    scales. Every chart built with it in one `stack` moves together."""
    return alt.selection_interval(name=ZOOM, bind="scales", encodings=["x"])


def hover_param(x: str) -> alt.Parameter:
    return alt.selection_point(
        name=HOVER, nearest=True, on="pointerover", fields=[x], empty=False, clear="pointerout"
    )


def _opacity(
    param: alt.Parameter | alt.PredicateComposition, on: float, off: float
) -> alt.OpacityValue:
    """`alt.condition(param, alt.value(on), alt.value(off))` as a channel object: Altair
    turns a plain dict given to `encode` into one by searching its whole schema (about
    5 ms a call, a tenth of a chart's build)."""
    return alt.OpacityValue(**alt.condition(param, alt.value(on), alt.value(off)))


def layered(
    layers: Sequence[alt.Chart], params: Sequence[alt.Parameter] = (), **props: Any
) -> alt.LayerChart:
    """`alt.LayerChart(layer=layers).add_params(*params).properties(**props)` without the
    two deep copies of every layer that each of those calls makes: the parameters go on
    the first layer (where `add_params` puts them) and the properties into the
    constructor."""
    first, *rest = layers
    if params:
        first = first.add_params(*params)
    return alt.LayerChart(layer=[first, *rest], **props)


def log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis over `[lo, hi]`: powers of ten, then 1-2-5 steps, then
    every digit, whichever first gives at least three ticks. Vega's own log ticks over a
    range narrower than a few decades come out irregular."""
    if not (lo > 0 and hi > lo):
        return []
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in ((1,), (1, 2, 5), tuple(range(1, 10))):
        ticks = [
            float(f"{m}e{e}")
            for e in range(first, last + 1)
            for m in mantissas
            if lo <= float(f"{m}e{e}") <= hi
        ]
        if len(ticks) >= 3:
            return ticks
    return ticks


def _log_axis_format(lo: float, hi: float) -> str:
    return "~e" if hi < 1e-2 or lo > 1e5 else "~g"


def metric_chart(
    data: pl.DataFrame,
    *,
    title: str,
    y_title: str,
    colors: Mapping[str, str],
    x: str = "step",
    log_y: bool = False,
    smoothed: bool = True,
    show_raw: bool = True,
    refs: Sequence[tuple[float, str]] = (),
    bands: pl.DataFrame | None = None,
    markers: pl.DataFrame | None = None,
    band: pl.DataFrame | None = None,
    x_domain: tuple[float, float] | None = None,
    y_domain: tuple[float, float] | None = None,
    height: int = 220,
    value_format: str = ".4g",
    run_refs: pl.DataFrame | None = None,
    audit_points: pl.DataFrame | None = None,
    hover: prepare.Hover | None = None,
    highlight: Sequence[str] = (),
    interactive: bool = True,
    legend: bool = True,
) -> alt.LayerChart | alt.Chart:
    """One metric over x, runs overlaid.

    `data`: long rows `run, x, value` (the raw series, already downsampled) and, when
    `smoothed`, `smooth` (the smoothed full series at the kept points). Raw is drawn
    faint behind the smoothed line, as in TensorBoard (`show_raw=False` hides it).
    `bands`: `start, end, phase` spans shaded behind. `markers`: `x, run, kind` vertical
    ticks (audit steps, deadband). `band`: `run, x, lo, hi` band (groups). `refs` are
    labelled grey lines shared by every run; `run_refs` (`run, y, label`) lines of one
    run each (its own TARGET_K), dashed in the run's colour. `audit_points`
    (`run, x, value`): values on audit steps, left out of the lines, drawn as open marks.

    `x_domain` is the x axis exactly (the zoom): marks outside it are clipped, not drawn
    over the axis. `y_domain` likewise for y (outliers ignored, a fitted log range).
    `hover` (`prepare.hover_table`): one row per x of a grid shared by the page's charts,
    a column per run; it gives the crosshair and one tooltip listing every run. With
    `interactive`, dragging pans and the wheel zooms x (`ZOOM`, shared by a `stack`).
    `highlight` names runs drawn highlighted from the start (as a legend click does).
    """
    if data.is_empty():
        return _empty("no data in the selected runs / range", title)
    names = data["run"].unique(maintain_order=True).to_list()
    scale = color_scale(colors, names)
    clip = x_domain is not None or y_domain is not None or interactive
    if log_y:
        data = data.filter(pl.col("value") > 0)
        if smoothed:
            data = data.filter(pl.col("smooth") > 0)
    if log_y:
        lo_hi = y_domain or _finite_extent(data, ["smooth"] if smoothed else ["value"])
        ticks = log_ticks(*lo_hi) if lo_hi else []
        yscale = alt.Scale(type="log", domain=list(lo_hi) if lo_hi else alt.Undefined, nice=False)
        yaxis = alt.Axis(
            format=_log_axis_format(*lo_hi) if lo_hi else "~e", values=ticks or alt.Undefined
        )
    else:
        yscale = alt.Scale(
            zero=False, domain=list(y_domain) if y_domain else alt.Undefined, nice=y_domain is None
        )
        yaxis = alt.Axis()
    xscale = alt.Scale(domain=list(x_domain), nice=False) if x_domain else alt.Scale()
    x_title = X_TITLES.get(x, x)
    x_fmt = X_FORMATS.get(x, ",.6g")
    xenc = alt.X(
        f"{x}:Q",
        title=x_title,
        scale=xscale,
        axis=alt.Axis(format="~s" if x == "tokens" else alt.Undefined),
    )
    base = alt.Chart(data).encode(
        x=xenc,
        color=alt.Color(
            "run:N",
            scale=scale,
            legend=None
            if not legend
            else alt.Legend(
                title="run",
                orient="bottom",
                # narrow enough for a 900 px window: a bottom legend wider than the
                # plot would take the plot's width under `fit-x`
                columns=2,
                labelLimit=150,
                symbolType="stroke",
                symbolOpacity=1,
                symbolStrokeWidth=3,
            ),
        ),
    )
    # Clicking a run in the legend highlights it (shift-click for several), as in
    # TensorBoard and W&B; clicking empty space clears the highlight.
    pick = alt.selection_point(
        name=PICK,
        fields=["run"],
        bind="legend",
        value=[{"run": n} for n in highlight if n in names] or alt.Undefined,
    )
    line_tooltip = [
        alt.Tooltip("run:N"),
        alt.Tooltip(f"{x}:Q", title=x_title, format=x_fmt),
        alt.Tooltip("value:Q", title=f"{y_title} (raw)", format=value_format),
    ]
    layers: list[alt.Chart] = []
    if bands is not None and not bands.is_empty():
        layers.append(
            alt.Chart(bands)
            .mark_rect(opacity=0.5, clip=clip)
            .encode(
                x=alt.X("start:Q", scale=xscale),
                x2=alt.X2("end:Q"),
                fill=alt.Fill(
                    "label:N",
                    scale=alt.Scale(
                        domain=list(PHASE_LABELS.values()),
                        range=[PHASE_COLORS[p] for p in PHASE_LABELS],
                    ),
                    legend=alt.Legend(
                        title="phase",
                        orient="top",
                        symbolStrokeColor="#888888",
                        symbolStrokeWidth=1,
                    ),
                ),
                tooltip=[
                    alt.Tooltip("label:N", title="phase"),
                    alt.Tooltip("start:Q", format=x_fmt),
                    alt.Tooltip("end:Q", format=x_fmt),
                    alt.Tooltip("source:N", title="from"),
                ],
            )
        )
    if band is not None and not band.is_empty():
        layers.append(
            alt.Chart(band)
            .mark_area(opacity=0.18, clip=clip)
            .encode(
                x=xenc,
                y=alt.Y("lo:Q", scale=yscale),
                y2=alt.Y2("hi:Q"),
                color=alt.Color("run:N", scale=scale, legend=None),
            )
        )
    front = "smooth" if smoothed else "value"  # the line the eye follows and hovers
    if smoothed:
        line_tooltip.append(
            alt.Tooltip("smooth:Q", title=f"{y_title} (smoothed)", format=value_format)
        )
        if show_raw:
            layers.append(
                base.mark_line(strokeWidth=1, clip=clip).encode(
                    y=alt.Y("value:Q", scale=yscale, title=y_title, axis=yaxis),
                    detail=alt.Detail("run:N"),
                    opacity=_opacity(pick, 0.22, 0.04),
                )
            )
    front_line = base.mark_line(strokeWidth=1.8 if smoothed else 1.5, clip=clip).encode(
        y=alt.Y(f"{front}:Q", scale=yscale, title=y_title, axis=yaxis),
        opacity=_opacity(pick, 1.0, 0.12),
    )
    if hover is None:
        front_line = front_line.encode(tooltip=line_tooltip)
    layers.append(front_line.add_params(pick))
    if hover is None:
        # Invisible points make the tooltip reachable along the line; a thinned copy of
        # the data is enough for that and keeps the browser's work small.
        every = max(1, data.height // TOOLTIP_POINTS)
        pts = data.gather_every(every) if every > 1 else data
        layers.append(
            alt.Chart(pts)
            .mark_point(opacity=0, size=40, clip=clip)
            .encode(x=xenc, y=alt.Y(f"{front}:Q", scale=yscale), tooltip=line_tooltip)
        )
    if refs:
        rdf = pl.DataFrame({"y": [float(v) for v, _ in refs], "label": [lbl for _, lbl in refs]})
        if log_y:
            rdf = rdf.filter(pl.col("y") > 0)
        if y_domain is not None:
            rdf = rdf.filter(pl.col("y").is_between(*y_domain))
        rule = alt.Chart(rdf).encode(
            y=alt.Y("y:Q", scale=yscale),
            tooltip=[
                alt.Tooltip("label:N", title="reference"),
                alt.Tooltip("y:Q", title="value", format=value_format),
            ],
        )
        layers.append(rule.mark_rule(strokeDash=[5, 4], color="#888888", strokeWidth=1, clip=clip))
        # Each shared reference line says what it is, at the plot's left edge.
        layers.append(
            rule.mark_text(
                align="left",
                baseline="bottom",
                dx=3,
                dy=-2,
                fontSize=10,
                color="#666666",
                limit=300,
            ).encode(x=alt.XValue(0), text=alt.Text("label:N"))
        )
    if run_refs is not None and not run_refs.is_empty():
        own = run_refs.filter(pl.col("run").is_in(names))
        if log_y:
            own = own.filter(pl.col("y") > 0)
        if y_domain is not None:
            own = own.filter(pl.col("y").is_between(*y_domain))
        layers.append(
            alt.Chart(own)
            .mark_rule(strokeDash=[8, 4], strokeWidth=1.6, opacity=0.9, clip=clip)
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
                x=alt.XValue({"expr": "width"}),
                y=alt.Y("y:Q", scale=yscale),
                text=alt.Text("label:N"),
                color=alt.Color("run:N", scale=scale, legend=None),
                tooltip=[alt.Tooltip("runs:N", title="runs"), alt.Tooltip("label:N")],
            )
        )
    if audit_points is not None and not audit_points.is_empty():
        pts = audit_points.filter(pl.col("value") > 0) if log_y else audit_points
        layers.append(
            alt.Chart(pts)
            .mark_point(
                shape="circle", filled=False, size=14, opacity=0.55, strokeWidth=1, clip=clip
            )
            .encode(
                x=alt.X("x:Q", scale=xscale),
                y=alt.Y("value:Q", scale=yscale),
                color=alt.Color("run:N", scale=scale, legend=None),
                tooltip=[
                    alt.Tooltip("run:N"),
                    alt.Tooltip("step:Q", title="audit step", format="d"),
                    alt.Tooltip(
                        "value:Q", title=f"{y_title} (audit, forced k=2)", format=value_format
                    ),
                ],
            )
        )
    if markers is not None and not markers.is_empty():
        layers.append(
            alt.Chart(markers)
            .mark_rule(strokeWidth=1, opacity=0.6, strokeDash=[2, 2], clip=clip)
            .encode(
                x=alt.X("x:Q", scale=xscale),
                color=alt.Color("run:N", scale=scale, legend=None),
                tooltip=[
                    alt.Tooltip("run:N"),
                    alt.Tooltip("kind:N", title="event"),
                    alt.Tooltip("x:Q", title=x_title, format=x_fmt),
                ],
            )
        )
    if hover is not None and hover.frame.height:
        layers += _crosshair(
            hover,
            x=x,
            xscale=xscale,
            yscale=yscale,
            names=names,
            scale=scale,
            value_format=value_format,
            x_title=x_title,
        )
    return layered(
        layers,
        [zoom_param()] if interactive else [],
        title=title,
        height=height,
        width=WIDTH,
        autosize=AUTOSIZE,
    )


def _finite_extent(data: pl.DataFrame, columns: Sequence[str]) -> tuple[float, float] | None:
    vals = pl.concat([data[c].cast(pl.Float64) for c in columns if c in data.columns])
    vals = vals.filter(vals.is_finite())
    if vals.is_empty():
        return None
    lo, hi = float(vals.min()), float(vals.max())  # type: ignore[arg-type]
    return (lo, hi) if hi > lo else (lo * 0.9, hi * 1.1) if lo > 0 else None


def _crosshair(
    hover: prepare.Hover,
    *,
    x: str,
    xscale: alt.Scale,
    yscale: alt.Scale,
    names: Sequence[str],
    scale: alt.Scale,
    value_format: str,
    x_title: str,
    dots_at: prepare.Hover | None = None,
    runs: Mapping[str, str] | None = None,
) -> list[alt.Chart]:
    """The vertical rule at the hovered x with one tooltip listing every run's value, and
    a dot on each run's line there (`prepare.Hover`: a wide frame, a column per run).

    The overlay chart passes its lines' values as logged in `hover` (what the tooltip
    says), where its lines are drawn in `dots_at` (its 0–1 scale), and each column's run
    in `runs` (a column there is a run's metric)."""
    run_of = runs if runs is not None else hover.columns
    cols = {c: r for c, r in hover.columns.items() if run_of.get(c) in names}
    wide = hover.frame.select(x, *cols)
    near = hover_param(x)
    tooltip = [alt.Tooltip(f"{x}:Q", title=x_title, format=X_FORMATS.get(x, ",.6g"))] + [
        alt.Tooltip(f"t_{c}:N", title=r) for c, r in cols.items()
    ]
    fmt = value_format.replace("'", "")
    # Formatted here so a run without a value at that x reads "–", not "null".
    texts = {
        f"t_{c}": f"isValid(datum.{c}) && isFinite(datum.{c}) ? format(datum.{c}, '{fmt}') : '–'"
        for c in cols
    }
    rule = (
        alt.Chart(wide)
        .transform_calculate(**texts)
        .mark_rule(color="#555555", strokeWidth=1)
        .encode(
            x=alt.X(f"{x}:Q", scale=xscale),
            opacity=_opacity(near, 0.7, 0.0),
            tooltip=tooltip,
        )
        .add_params(near)
    )
    long = (
        (dots_at.frame.select(x, *cols) if dots_at is not None else wide)
        .unpivot(index=x, on=list(cols), variable_name="col", value_name="y")
        .with_columns(
            pl.col("col")
            .replace_strict({c: run_of[c] for c in cols}, return_dtype=pl.String)
            .alias("run")
        )
        .drop_nulls("y")
    )
    # Only the hovered x's dots are drawn (filtered, not made transparent): the browser
    # encodes and paints every mark it is given, and a grid of invisible dots (every grid
    # x × every run × every panel) was a third of a step-line page's marks.
    dots = (
        alt.Chart(long)
        .transform_filter(near)
        .mark_point(filled=True, size=36, clip=True)
        .encode(
            x=alt.X(f"{x}:Q", scale=xscale),
            y=alt.Y("y:Q", scale=yscale),
            color=alt.Color("run:N", scale=scale, legend=None),
        )
    )
    return [rule, dots]


class Stack(alt.VConcatChart):
    """Charts one above the other, sharing their parameters (`stack`)."""

    def to_dict(self, *args: Any, **kwargs: Any) -> dict:
        panels: list[alt.TopLevelMixin] = object.__getattribute__(self, "_panels")
        kids = [p.to_dict(*args, **kwargs) for p in panels]
        datasets: dict[str, Any] = {}
        params: dict[str, dict[str, Any]] = {}
        children = []
        for i, kid in enumerate(kids):
            datasets.update(kid.pop("datasets", {}))
            for key in ("$schema", "config", "autosize"):
                kid.pop(key, None)
            # Unit names are unique within a chart, not across charts: renamed here, and
            # each parameter declared once at the top naming every view it listens in
            # (declared in each chart, Vega refuses the repeated signals).
            renamed: dict[str, str] = {}
            for j, unit in enumerate(kid.get("layer", [kid])):
                if isinstance(unit.get("name"), str):
                    renamed[unit["name"]] = unit["name"] = f"panel{i}_{j}"
            for param in kid.pop("params", []):
                views = [renamed.get(v, v) for v in param.get("views", [])]
                entry = params.setdefault(param["name"], {**param, "views": []})
                entry["views"] += views
            children.append(kid)
        spec: dict[str, Any] = {
            "$schema": kids[0].get("$schema", alt.SCHEMA_URL),
            "vconcat": children,
            "spacing": 28,
            "autosize": {"type": "fit-x", "contains": "padding"},
            "resolve": {"scale": {"x": "shared", "color": "independent"}},
        }
        if params:
            spec["params"] = list(params.values())
        if datasets:
            spec["datasets"] = datasets
        return spec


def stack(charts_: Sequence[alt.TopLevelMixin]) -> alt.TopLevelMixin:
    """The charts of a page one above the other in one view, so the zoom, the hover
    crosshair and the legend highlight (parameters of the same name in each) act on all
    of them at once."""
    if len(charts_) == 1:
        return charts_[0]
    out = Stack(vconcat=[])
    object.__setattr__(out, "_panels", list(charts_))
    return out


EXPORT_WIDTH = 900
"""Width in pixels of an exported chart's plot: a file has no container to fit."""


def export_spec(chart: alt.TopLevelMixin, width: int = EXPORT_WIDTH) -> dict:
    """The chart's spec for a PNG/SVG file: every `container` width replaced by `width`
    and autosizing padded, so the exporter does not shrink the plot to its default
    ~300 px and cut the title and legend."""
    spec = chart.to_dict()

    def fix(node: object) -> None:
        if isinstance(node, dict):
            node.pop("usermeta", None)
            if node.get("width") == "container":
                node["width"] = width
            if "autosize" in node:
                node["autosize"] = {"type": "pad", "contains": "padding"}
            for k, v in node.items():
                if k != "datasets":
                    fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)

    fix(spec)
    return spec


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
    x_domain: tuple[float, float] | None = None,
) -> alt.Chart | alt.LayerChart:
    """Layer × step heatmap: rows `layer, start, end, value` (steps bucketed into spans).

    `x_domain`: the step axis, the same for every run's heatmap so one step sits at one
    place down the page (a shorter run ends early instead of being stretched).

    `marks`: `step` rows (audit steps left out of the cells) drawn as small triangles
    along the top edge, so the reader sees where they were without a stripe per audit.
    """
    if data.is_empty():
        return _empty("no per-layer data", title)
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
    size: dict[str, Any] = {
        "width": WIDTH,
        "autosize": AUTOSIZE,
        "height": max(height, 18 * n_layers),
    }
    xscale = alt.Scale(domain=list(x_domain), nice=False) if x_domain else alt.Scale()
    cells = (
        alt.Chart(data)
        .mark_rect(clip=True)
        .encode(
            x=alt.X("start:Q", title="step", scale=xscale),
            x2=alt.X2("end:Q"),
            y=alt.Y("layer:O", title="layer", sort="ascending"),
            color=alt.Color("value:Q", title=value_title, scale=scale),
            tooltip=[
                alt.Tooltip("layer:O"),
                alt.Tooltip("start:Q", title="from step", format="d"),
                alt.Tooltip("end:Q", title="to step", format="d"),
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
            x=alt.X("step:Q", scale=xscale),
            y=alt.YValue(-5),
            tooltip=[alt.Tooltip("kind:N", title="mark"), alt.Tooltip("step:Q")],
        )
    )
    return layered([cells, ticks], title=title, **size)


def pattern_timeline(
    data: pl.DataFrame,
    *,
    title: str,
    kmax: int | None = None,
    x_domain: tuple[float, float] | None = None,
) -> alt.Chart:
    """Layer × trace step, coloured by survival-trace pattern: rows `layer, start, end,
    pattern, s_trace_text`. `x_domain`: one step axis shared by every run's timeline."""
    if data.is_empty():
        return _empty("no survival traces", title)
    xscale = alt.Scale(domain=list(x_domain), nice=False) if x_domain else alt.Scale()
    domain = list(patterns.TIMELINE_PATTERNS)
    n_layers = data["layer"].n_unique()
    return (
        alt.Chart(data)
        .mark_rect(clip=True)
        .encode(
            x=alt.X("start:Q", title="step", scale=xscale),
            x2=alt.X2("end:Q"),
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
                alt.Tooltip("step:Q", format="d"),
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
        return _empty("no classified traces", title)
    domain = list(patterns.TIMELINE_PATTERNS)  # forced traces are a category of their own
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("run:N", title=None, axis=alt.Axis(labelLimit=140)),
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
                    columns=1,
                ),
            ),
            # Phases one under the other: side by side they need ~800 px and are cut
            # off in a 900 px window.
            row=alt.Row(
                "phase_label:N",
                title=None,
                sort=list(PHASE_LABELS.values()),
                header=alt.Header(labelAngle=0, labelOrient="top", labelAnchor="start"),
            ),
            order=alt.Order("pattern_rank:Q"),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("phase_label:N", title="phase"),
                alt.Tooltip("pattern:N"),
                alt.Tooltip("share:Q", format=".1%"),
                alt.Tooltip("n:Q", title="traces"),
            ],
        )
        .properties(title=title, width=220)
    )


def trace_curves(data: pl.DataFrame, *, title: str, columns: int = 2) -> alt.FacetChart | alt.Chart:
    """Survival probability entering each pass, one small panel per run.

    Rows `series, layer, k, s` (k = 1..Kmax; `series` names the run and its trace step).
    One faceted chart rather than a chart per run: a sweep of twenty runs stays one
    specification for the browser to lay out.
    """
    if data.is_empty():
        return _empty("no traces at this step", title)
    enc_color = alt.Color("layer:O", title="layer", scale=alt.Scale(scheme="viridis"))
    base = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("k:O", title="pass k"),
            y=alt.Y("s:Q", title="survival s entering pass", scale=alt.Scale(domain=[0, 1.02])),
            color=enc_color,
            tooltip=[
                alt.Tooltip("series:N"),
                alt.Tooltip("layer:O"),
                alt.Tooltip("k:O"),
                alt.Tooltip("s:Q", format=".2f"),
            ],
        )
        .properties(width=140, height=150)
    )
    # A header no wider than its panel: run folder names can be long, and a wider header
    # widens every column past the page (the full name is in the tooltip).
    return base.facet(
        facet=alt.Facet(
            "series:N", title=None, header=alt.Header(labelLimit=140, labelFontSize=11)
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
                    orient="right",
                    labelExpr=_pattern_label_expr(),
                    columns=1,
                    labelLimit=320,
                ),
            ),
            tooltip=[alt.Tooltip("label:N"), alt.Tooltip("k:O"), alt.Tooltip("s:Q", format=".2f")],
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
        return _empty("no values", title)
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
                alt.Tooltip("run:N"),
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
        return _empty("no values", title)
    names = data["run"].unique(maintain_order=True).to_list()
    bars = (
        alt.Chart(data)
        .mark_rect(opacity=0.45)
        .encode(
            x=alt.X("lo:Q", title=x_title),
            x2=alt.X2("hi:Q"),
            y=alt.Y("n:Q", title="steps", stack=None),
            color=alt.Color(
                "run:N",
                scale=color_scale(colors, names),
                legend=alt.Legend(orient="bottom", columns=3, labelLimit=260),
            ),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("lo:Q", title="from", format=".4g"),
                alt.Tooltip("hi:Q", title="to", format=".4g"),
                alt.Tooltip("n:Q", title="steps"),
            ],
        )
    )
    zero = (
        alt.Chart(pl.DataFrame({"x": [0.0]}))
        .mark_rule(color="#333333", strokeDash=[4, 3])
        .encode(x=alt.X("x:Q"))
    )
    return layered([bars, zero], title=title, width=WIDTH, autosize=AUTOSIZE, height=220)


def count_bars(
    data: pl.DataFrame, *, category: str, title: str, domain: Sequence[str], range_: Sequence[str]
) -> alt.Chart:
    """Stacked counts per run: rows `run, <category>, n`."""
    if data.is_empty():
        return _empty("none", title)
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
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip(f"{category}:N"),
                alt.Tooltip("n:Q", title="steps"),
            ],
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
            detail=alt.Detail("run:N"),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("axis:N"),
                alt.Tooltip("value:Q", format=".4g"),
            ],
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
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip(f"{x}:{xtype}"),
                alt.Tooltip(f"{y}:Q", format=".4g"),
            ],
        )
        .properties(title=f"{y} against {x}", width=WIDTH, autosize=AUTOSIZE, height=300)
    )


def pareto_chart(
    data: pl.DataFrame, *, x: str, y: str, colors: Mapping[str, str], x_title: str, y_title: str
) -> alt.LayerChart | alt.Chart:
    """Outcome against compute, one point per run, the Pareto front (`prepare.pareto_front`:
    no run both cheaper and better) joined by a line and its runs ringed."""
    data = data.filter(pl.col("on_front").is_not_null()) if "on_front" in data.columns else data
    ok = data.filter(
        pl.col(x).is_finite().fill_null(False) & pl.col(y).is_finite().fill_null(False)
    )
    if ok.is_empty():
        return _empty(f"no runs with both {x_title} and {y_title}")
    names = ok["run"].to_list()
    tip = [
        "run:N",
        alt.Tooltip(f"{x}:Q", title=x_title, format=".4~g"),
        alt.Tooltip(f"{y}:Q", title=y_title, format=".4f"),
        alt.Tooltip("on_front:N", title="on the front"),
    ]
    enc_x = alt.X(f"{x}:Q", title=x_title, scale=alt.Scale(zero=False))
    enc_y = alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(zero=False))
    front = ok.filter(pl.col("on_front")).sort(x)
    layers = [
        alt.Chart(front)
        .mark_line(color="#333333", strokeDash=[4, 3], interpolate="step-after")
        .encode(x=enc_x, y=enc_y),
        alt.Chart(front)
        .mark_point(size=260, color="#333333", strokeWidth=1.5, filled=False)
        .encode(x=enc_x, y=enc_y),
        alt.Chart(ok)
        .mark_circle(size=110, opacity=0.9)
        .encode(
            x=enc_x,
            y=enc_y,
            color=alt.Color(
                "run:N",
                scale=color_scale(colors, names),
                legend=alt.Legend(orient="bottom", columns=2, labelLimit=200),
            ),
            tooltip=tip,
        ),
    ]
    return layered(
        layers,
        title=f"{y_title} against {x_title} (ringed, dashed: the Pareto front)",
        width=WIDTH,
        autosize=AUTOSIZE,
        height=320,
    )


def layer_profile_chart(
    data: pl.DataFrame,
    *,
    title: str,
    value_title: str,
    colors: Mapping[str, str],
    value_format: str = ".4g",
) -> alt.Chart:
    """Mean per layer, one line per run (`prepare.layer_profile`): where in the stack each
    run spends its depth."""
    if data.is_empty():
        return _empty("no per-layer data", title)
    names = data["run"].unique(maintain_order=True).to_list()
    return (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("value:Q", title=value_title, scale=alt.Scale(zero=False)),
            color=alt.Color(
                "run:N",
                scale=color_scale(colors, names),
                legend=alt.Legend(orient="bottom", columns=2, labelLimit=150),
            ),
            tooltip=[
                alt.Tooltip("run:N"),
                alt.Tooltip("layer:O"),
                alt.Tooltip("value:Q", title=value_title, format=value_format),
                alt.Tooltip("n:Q", title="layer lines"),
            ],
        )
        .properties(title=title, width=WIDTH, autosize=AUTOSIZE, height=240)
    )


def layer_lines_chart(
    data: pl.DataFrame,
    *,
    title: str,
    value_title: str,
    value_format: str = ".4g",
    x_domain: tuple[float, float] | None = None,
    y_domain: tuple[float, float] | None = None,
    height: int = 240,
) -> alt.Chart:
    """One run's per-layer metric over steps, a line per layer (`prepare.layer_lines`),
    coloured from shallow (dark) to deep (light) along one ordered scale, so the stack's
    order reads off the colours. `x_domain` and `y_domain` are shared by every run's
    chart, so one step and one value sit at the same place down the page."""
    if data.is_empty():
        return _empty("no per-layer data", title)
    xscale = alt.Scale(domain=list(x_domain), nice=False) if x_domain else alt.Scale()
    yscale = alt.Scale(domain=list(y_domain), zero=False) if y_domain else alt.Scale(zero=False)
    pick = alt.selection_point(fields=["layer"], bind="legend", name="layer_pick")
    return (
        alt.Chart(data)
        .mark_line(clip=True, strokeWidth=1.5)
        .encode(
            x=alt.X("step:Q", title="step", scale=xscale),
            y=alt.Y("value:Q", title=value_title, scale=yscale),
            color=alt.Color(
                "layer:O",
                title="layer",
                scale=alt.Scale(scheme="viridis"),
                legend=alt.Legend(orient="right"),
            ),
            opacity=_opacity(pick, 1.0, 0.15),
            tooltip=[
                alt.Tooltip("layer:O"),
                alt.Tooltip("step:Q", format="d"),
                alt.Tooltip("value:Q", title=value_title, format=value_format),
            ],
        )
        .add_params(pick)
        .properties(title=title, width=WIDTH, autosize=AUTOSIZE, height=height)
    )


METRIC_DASHES = ([1, 0], [6, 3], [2, 2], [8, 3, 2, 3], [12, 4], [3, 5], [1, 3, 6, 3])
"""Stroke patterns telling the metrics of one overlaid chart apart (colour is the run's)."""


def overlay_chart(
    data: pl.DataFrame,
    *,
    title: str,
    colors: Mapping[str, str],
    x: str = "step",
    normalized: bool = True,
    smoothed: bool = True,
    show_raw: bool = True,
    x_domain: tuple[float, float] | None = None,
    height: int = 360,
    highlight: Sequence[str] = (),
    hover: prepare.OverlayHover | None = None,
) -> alt.LayerChart | alt.Chart:
    """Several metrics in one panel (`prepare.overlay_series`): colour by run, dash by
    metric, so a run's metrics read as one family of lines. With `normalized` the y axis
    is each metric's own 0–1 range and the tooltip gives the values as logged. Drag pans,
    the wheel zooms x; clicking a run or a metric in its legend picks it out. With
    `hover` (`prepare.overlay_hover`), a crosshair lists every run's value of every
    metric at the hovered x, as the per-metric panels do."""
    if data.is_empty():
        return _empty("no data in the selected runs / range", title)
    names = data["run"].unique(maintain_order=True).to_list()
    metrics = data["metric"].unique(maintain_order=True).to_list()
    x_title = X_TITLES.get(x, x)
    xscale = alt.Scale(domain=list(x_domain), nice=False) if x_domain else alt.Scale()
    yscale = alt.Scale(domain=[0, 1], nice=False) if normalized else alt.Scale(zero=False)
    y_title = "share of each metric's range (0 = its min, 1 = its max)" if normalized else "value"
    pick = alt.selection_point(
        name=PICK,
        fields=["run"],
        bind="legend",
        value=[{"run": n} for n in highlight if n in names] or alt.Undefined,
    )
    metric_pick = alt.selection_point(name="metric_pick", fields=["metric"], bind="legend")
    dash = alt.StrokeDash(
        "metric:N",
        scale=alt.Scale(
            domain=metrics,
            range=[list(METRIC_DASHES[i % len(METRIC_DASHES)]) for i in range(len(metrics))],
        ),
        legend=alt.Legend(
            title="metric", orient="bottom", columns=2, labelLimit=220, symbolSize=400
        ),
    )
    base = alt.Chart(data).encode(
        x=alt.X(f"{x}:Q", title=x_title, scale=xscale),
        color=alt.Color(
            "run:N",
            scale=color_scale(colors, names),
            legend=alt.Legend(
                title="run",
                orient="bottom",
                columns=2,
                labelLimit=150,
                symbolType="stroke",
                symbolOpacity=1,
                symbolStrokeWidth=3,
            ),
        ),
        strokeDash=dash,
        detail=alt.Detail("metric:N"),
    )
    front = "smooth" if smoothed else "value"
    tooltip = [
        alt.Tooltip("metric:N"),
        alt.Tooltip("run:N"),
        alt.Tooltip(f"{x}:Q", title=x_title, format=X_FORMATS.get(x, ",.6g")),
        alt.Tooltip("value_raw:Q", title="value (raw)", format=".4g"),
    ]
    if smoothed:
        tooltip.append(alt.Tooltip("smooth_raw:Q", title="value (smoothed)", format=".4g"))
    both = pick & metric_pick
    layers: list[alt.Chart] = []
    if smoothed and show_raw:
        layers.append(
            base.mark_line(strokeWidth=1, clip=True).encode(
                y=alt.Y("value:Q", scale=yscale, title=y_title),
                opacity=_opacity(both, 0.18, 0.03),
            )
        )
    layers.append(
        base.mark_line(strokeWidth=1.8, clip=True)
        .encode(
            y=alt.Y(f"{front}:Q", scale=yscale, title=y_title),
            opacity=_opacity(both, 1.0, 0.1),
            tooltip=tooltip,
        )
        .add_params(pick, metric_pick)
    )
    if hover is not None and hover.texts.frame.height:
        layers += _crosshair(
            hover.texts,
            x=x,
            xscale=xscale,
            yscale=yscale,
            names=names,
            scale=color_scale(colors, names),
            value_format=".4g",
            x_title=x_title,
            dots_at=hover.dots,
            runs=hover.runs,
        )
    else:
        # Invisible points: the tooltip is reachable anywhere along a line.
        layers.append(
            base.mark_point(opacity=0, size=60, clip=True).encode(
                y=alt.Y(f"{front}:Q", scale=yscale), tooltip=tooltip
            )
        )
    return layered(
        layers, [zoom_param()], title=title, width=WIDTH, autosize=AUTOSIZE, height=height
    )
