"""`ponder_app.charts`: frames → Altair charts, checked without a server.

`to_dict()` validates every spec against the Vega-Lite schema; the tests then read the
spec's encodings, marks and inlined datasets, and render a few charts with vl-convert to
check that marks are really drawn at a usable size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import altair as alt
import numpy as np
import polars as pl
import pytest
import vl_convert as vlc

from ponder_app import charts, prepare
from ponder_parse.analysis import patterns
from ponder_parse.analysis.phases import PHASE_LABELS

RUNS = ["base,seed=0", "base,seed=1", "lambda_max=0.0005"]
COLORS = charts.run_colors(RUNS)


def series(n: int = 60, runs: list[str] = RUNS) -> pl.DataFrame:
    rows = []
    for i, run in enumerate(runs):
        for step in range(n):
            v = 3.0 - step / n + 0.1 * i + (0.5 if step == 17 else 0.0)
            rows.append({"run": run, "step": step, "value": v, "smooth": v - 0.01})
    return pl.DataFrame(rows)


def to_dict(chart: alt.TopLevelMixin) -> dict[str, Any]:
    d = chart.to_dict()  # validates against the Vega-Lite schema
    assert d["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    return d


def layers(d: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield d
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for sub in d.get(key, []):
            yield from layers(sub)
    if isinstance(d.get("spec"), dict):
        yield from layers(d["spec"])


def mark(layer: dict[str, Any]) -> str | None:
    m = layer.get("mark")
    return m if isinstance(m, str) or m is None else m["type"]


def marks(d: dict[str, Any]) -> list[str]:
    return [m for layer in layers(d) if (m := mark(layer))]


def data_of(d: dict[str, Any], layer: dict[str, Any]) -> pl.DataFrame:
    name = (layer.get("data") or d.get("data") or {}).get("name")
    assert name, "layer without named data"
    return pl.DataFrame(d["datasets"][name])


def layers_with(d: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [layer for layer in layers(d) if mark(layer) == kind]


def is_no_data(d: dict[str, Any]) -> bool:
    return marks(d) == ["text"]


def svg_size(chart: alt.TopLevelMixin) -> tuple[str, float, float]:
    svg = vlc.vegalite_to_svg(chart.to_json())
    w, h = re.search(r'<svg[^>]* width="([\d.]+)" height="([\d.]+)"', svg).groups()
    return svg, float(w), float(h)


# --- colours -------------------------------------------------------------------------------


def test_run_colors_are_stable_and_distinct() -> None:
    names = [f"r{i}" for i in range(20)]
    colors = charts.run_colors(names)
    assert len(set(colors.values())) == 20  # twenty runs, twenty colours
    assert set(colors.values()) <= set(charts.PALETTE)
    close = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if charts.color_distance(colors[a], colors[b]) < charts.MIN_COLOR_DISTANCE
    ]
    assert not close
    # Decided by the name, not the position: the same in another order and run set.
    assert charts.run_colors(list(reversed(names))) == colors
    # A run on its own slot keeps it in any run set; adding one run moves at most the
    # runs whose slot it wants (here: none of those on their own slot).
    own = {
        n for n in names if colors[n] == charts.PALETTE[charts._name_hash(n) % len(charts.PALETTE)]
    }
    assert len(own) >= 8
    for subset in (names[5:9], names[:10], names[::3]):
        sub = charts.run_colors(subset)
        assert all(sub[n] == colors[n] for n in subset if n in own)


def test_palette_has_no_grey_and_no_look_alikes() -> None:
    other_grey = charts.PATTERN_COLORS[patterns.OTHER]
    for i, a in enumerate(charts.PALETTE):
        assert charts.color_distance(a, other_grey) >= charts.MIN_COLOR_DISTANCE
        for b in charts.PALETTE[i + 1 :]:
            assert charts.color_distance(a, b) >= charts.MIN_COLOR_DISTANCE, (a, b)


def test_run_colors_user_overrides_win_and_are_kept_clear_of() -> None:
    names = ["a", "b", "c"]
    auto = charts.run_colors(names)
    picked = charts.run_colors(names, {"b": auto["a"], "c": "not a colour"})
    assert picked["b"] == auto["a"]
    assert picked["a"] != auto["a"]  # the user's pick is taken: a moves off it
    assert charts.is_hex_color(picked["c"])


def test_group_colors_avoid_the_runs() -> None:
    colors = charts.run_colors(["a", "b"])
    out = charts.with_group_colors(colors, ["g1", "g2", "a"])
    assert out["a"] == colors["a"]  # kept
    assert len({out["a"], out["b"], out["g1"], out["g2"]}) == 4
    assert colors == charts.run_colors(["a", "b"])  # not changed in place


def test_color_scale_follows_the_mapping() -> None:
    scale = charts.color_scale(COLORS, ["lambda_max=0.0005", "unknown"]).to_dict()
    assert scale["domain"] == ["lambda_max=0.0005", "unknown"]
    assert scale["range"] == [COLORS["lambda_max=0.0005"], "#888888"]


# --- every chart function: validates, and says "no data" instead of failing -----------------------


def _heat() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "layer": [0, 0, 1, 1],
            "start": [0, 10, 0, 10],
            "end": [10, 20, 10, 20],
            "value": [1.0, 2.0, 3.0, 4.0],
        }
    )


def _timeline() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "layer": [0, 1],
            "step": [50, 50],
            "start": [50, 50],
            "end": [100, 100],
            "pattern": [patterns.HEALTHY, patterns.NOT_STOPPING],
            "s_trace_text": ["[1.0, 0.2]", "[1.0, 0.9]"],
        }
    )


def _shares() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run": ["a", "a"],
            "phase": ["economic", "economic"],
            "phase_label": ["economic control", "economic control"],
            "pattern": [patterns.HEALTHY, patterns.OTHER],
            "pattern_rank": [0, 4],
            "n": [3, 1],
            "share": [0.75, 0.25],
        }
    )


def _curves() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "series": ["a @ 50"] * 4 + ["b @ 50"] * 2,
            "step": [50] * 6,
            "layer": [0, 0, 1, 1, 0, 0],
            "k": [1, 2, 1, 2, 1, 2],
            "s": [1.0, 0.3, 1.0, 0.9, 1.0, 0.5],
        }
    )


def _phase_rows() -> pl.DataFrame:
    return pl.DataFrame(
        {"run": RUNS, "phase_label": ["gate learning"] * 3, "lm_change": [-0.5, -0.4, float("nan")]}
    )


def _bins() -> pl.DataFrame:
    return pl.DataFrame(
        {"run": ["a", "a", "b"], "lo": [-0.1, 0.0, 0.0], "hi": [0.0, 0.1, 0.1], "n": [3, 5, 2]}
    )


def _counts() -> pl.DataFrame:
    return pl.DataFrame({"run": ["a", "a"], "status": ["ECONOMIC WIN", "TAX ONLY"], "n": [8, 2]})


def _sweep() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run": RUNS,
            "lambda_max": [0.05, 0.05, 0.0005],
            "final_lm": [2.9, 2.95, 3.4],
            "gate": ["learned", "learned", "stuck"],
            "k_mean": [1.3, 1.31, 3.7],
        }
    )


CASES: dict[str, tuple[Callable[[pl.DataFrame], alt.TopLevelMixin], Callable[[], pl.DataFrame]]] = {
    "metric_chart": (
        lambda d: charts.metric_chart(d, title="LM", y_title="LM", colors=COLORS),
        series,
    ),
    "heatmap": (lambda d: charts.heatmap(d, title="h", value_title="k"), _heat),
    "pattern_timeline": (lambda d: charts.pattern_timeline(d, title="t"), _timeline),
    "pattern_share_bars": (lambda d: charts.pattern_share_bars(d, title="s"), _shares),
    "trace_curves": (lambda d: charts.trace_curves(d, title="c"), _curves),
    "grouped_bars": (
        lambda d: charts.grouped_bars(d, value="lm_change", title="g", colors=COLORS),
        _phase_rows,
    ),
    "histogram": (lambda d: charts.histogram(d, title="ΔCE", x_title="ΔCE", colors=COLORS), _bins),
    "count_bars": (
        lambda d: charts.count_bars(
            d,
            category="status",
            title="mix",
            domain=["ECONOMIC WIN", "TAX ONLY"],
            range_=["#0f0", "#f00"],
        ),
        _counts,
    ),
    "parallel_coordinates": (
        lambda d: charts.parallel_coordinates(
            d, axes=["lambda_max", "final_lm", "k_mean"], colors=COLORS
        ),
        _sweep,
    ),
    "scatter": (lambda d: charts.scatter(d, x="lambda_max", y="final_lm", colors=COLORS), _sweep),
}


@pytest.mark.parametrize("name", list(CASES))
def test_chart_validates_and_carries_its_data(name: str) -> None:
    make, data = CASES[name]
    d = to_dict(make(data()))
    assert not is_no_data(d), f"{name} drew the no-data placeholder for real data"
    assert d["datasets"], f"{name} carries no data"
    assert max(len(rows) for rows in d["datasets"].values()) >= 2


@pytest.mark.parametrize("name", list(CASES))
def test_chart_of_empty_input_says_no_data(name: str) -> None:
    make, data = CASES[name]
    d = to_dict(make(data().clear()))
    assert is_no_data(d), f"{name} on empty input: {marks(d)}"
    text = next(iter(d["datasets"].values()))[0]["text"]
    assert text  # a message, not a blank box


def test_reference_shapes_chart() -> None:
    d = to_dict(charts.reference_shapes_chart())
    rows = data_of(d, d)
    assert set(rows["pattern"]) == set(patterns.REFERENCE_SHAPES)
    healthy = rows.filter(pl.col("pattern") == patterns.HEALTHY).sort("k")["s"].to_list()
    assert healthy == list(patterns.REFERENCE_SHAPES[patterns.HEALTHY])
    enc = d["encoding"]["color"]["scale"]
    assert enc["range"] == [charts.PATTERN_COLORS[p] for p in enc["domain"]]


# --- metric_chart -----------------------------------------------------------------------------


def test_metric_chart_lines_colours_and_data() -> None:
    data = series()
    d = to_dict(charts.metric_chart(data, title="LM — loss", y_title="LM", colors=COLORS))
    lines = layers_with(d, "line")
    assert [ln["encoding"]["y"]["field"] for ln in lines] == ["value", "smooth"]
    # Raw drawn faint behind the smoothed line, highlighted or not (legend selection).
    raw_op, smooth_op = (ln["encoding"]["opacity"] for ln in lines)
    assert raw_op["condition"]["value"] < smooth_op["condition"]["value"]
    assert raw_op["value"] < smooth_op["value"] < smooth_op["condition"]["value"]
    params = d.get("params", []) + [p for ln in lines for p in ln.get("params", [])]
    assert any(p.get("bind") == "legend" for p in params)
    scale = lines[1]["encoding"]["color"]["scale"]
    assert scale["domain"] == RUNS
    assert scale["range"] == [COLORS[r] for r in RUNS]
    drawn = data_of(d, lines[1])
    assert drawn.sort("run", "step").equals(data.sort("run", "step"))
    assert d["title"] == "LM — loss"
    assert d["height"] >= 200


def test_metric_chart_colours_do_not_shift_when_runs_are_hidden() -> None:
    only_last = series(runs=["lambda_max=0.0005"])
    d = to_dict(charts.metric_chart(only_last, title="t", y_title="y", colors=COLORS))
    scale = layers_with(d, "line")[0]["encoding"]["color"]["scale"]
    assert scale["range"] == [COLORS["lambda_max=0.0005"]]


def test_metric_chart_unsmoothed_draws_one_line() -> None:
    d = to_dict(
        charts.metric_chart(series(), title="t", y_title="y", colors=COLORS, smoothed=False)
    )
    lines = layers_with(d, "line")
    assert len(lines) == 1 and lines[0]["encoding"]["y"]["field"] == "value"


def test_metric_chart_reference_lines_phases_markers_and_band() -> None:
    bands = pl.DataFrame(
        {
            "start": [0.0, 20.0, 40.0],
            "end": [20.0, 40.0, 60.0],
            "label": list(PHASE_LABELS.values()),
            "source": ["log"] * 3,
        }
    )
    markers = pl.DataFrame(
        {"run": [RUNS[0]], "step": [30], "kind": ["deadband engaged"], "x": [30.0]}
    )
    band = pl.DataFrame(
        {"run": ["group"] * 3, "step": [0, 1, 2], "lo": [1.0, 1.1, 1.2], "hi": [2.0, 2.1, 2.2]}
    )
    d = to_dict(
        charts.metric_chart(
            series(),
            title="t",
            y_title="y",
            colors={**COLORS, "group": "#000000"},
            refs=[(1.3, "TARGET_K"), (0.0, "zero")],
            bands=bands,
            markers=markers,
            band=band,
        )
    )
    rect = layers_with(d, "rect")
    assert len(rect) == 1
    assert data_of(d, rect[0])["label"].to_list() == list(PHASE_LABELS.values())
    assert rect[0]["encoding"]["fill"]["scale"]["range"] == list(charts.PHASE_COLORS.values())
    rules = layers_with(d, "rule")
    ref = next(r for r in rules if r["encoding"].get("y", {}).get("field") == "y")
    assert sorted(data_of(d, ref)["y"].to_list()) == [0.0, 1.3]
    marker = next(r for r in rules if r["encoding"].get("x", {}).get("field") == "x")
    assert data_of(d, marker)["kind"].to_list() == ["deadband engaged"]
    area = layers_with(d, "area")
    assert len(area) == 1
    assert area[0]["encoding"]["y"]["field"] == "lo" and area[0]["encoding"]["y2"]["field"] == "hi"
    assert data_of(d, area[0]).height == 3


def test_metric_chart_log_scale_drops_what_a_log_axis_cannot_draw() -> None:
    data = series().with_columns(
        pl.when(pl.col("step") == 5).then(0.0).otherwise(pl.col("value")).alias("value")
    )
    d = to_dict(
        charts.metric_chart(
            data,
            title="t",
            y_title="y",
            colors=COLORS,
            log_y=True,
            refs=[(1e-3, "floor"), (0.0, "zero")],
        )
    )
    lines = layers_with(d, "line")
    assert {ln["encoding"]["y"]["scale"].get("type") for ln in lines} == {"log"}
    assert (data_of(d, lines[0])["value"] > 0).all()
    assert data_of(d, lines[0]).height == data.height - len(RUNS)
    ref = next(r for r in layers_with(d, "rule") if r["encoding"].get("y", {}).get("field") == "y")
    assert data_of(d, ref)["y"].to_list() == [1e-3]


def test_metric_chart_other_x_axis() -> None:
    data = series().with_columns((pl.col("step") * 0.5).alias("elapsed_min"))
    d = to_dict(charts.metric_chart(data, title="t", y_title="y", colors=COLORS, x="elapsed_min"))
    for ln in layers_with(d, "line"):
        assert ln["encoding"]["x"]["field"] == "elapsed_min"
        assert ln["encoding"]["x"]["title"] == charts.X_TITLES["elapsed_min"]


def test_metric_chart_hover_targets_are_thinned() -> None:
    big = series(n=5_000)
    d = to_dict(charts.metric_chart(big, title="t", y_title="y", colors=COLORS))
    points = layers_with(d, "point")
    assert len(points) == 1
    hover = data_of(d, points[0])
    assert 0 < hover.height <= 2 * charts.TOOLTIP_POINTS
    assert set(hover["run"]) == set(RUNS)
    assert data_of(d, layers_with(d, "line")[0]).height == big.height  # lines keep every point


def test_metric_chart_renders_lines_at_a_usable_size() -> None:
    chart = charts.metric_chart(
        series(), title="t", y_title="y", colors=COLORS, refs=[(2.0, "ref")]
    )
    svg, width, height = svg_size(chart)
    assert height > 200 and width > 100
    strokes = set(re.findall(r'stroke="(#[0-9a-fA-F]{6})"', svg))
    assert {COLORS[r] for r in RUNS} <= strokes


# --- the other charts -------------------------------------------------------------------------


def test_heatmap_encodings_and_shared_domain() -> None:
    d = to_dict(charts.heatmap(_heat(), title="run a", value_title="k", domain=(0.5, 5.0)))
    assert marks(d) == ["rect"]
    enc = d["encoding"]
    assert (enc["x"]["field"], enc["x2"]["field"], enc["y"]["field"]) == ("start", "end", "layer")
    assert enc["y"]["type"] == "ordinal"
    assert enc["color"]["scale"]["domain"] == [0.5, 5.0]
    assert data_of(d, d)["value"].to_list() == [1.0, 2.0, 3.0, 4.0]
    many = pl.DataFrame(
        {"layer": list(range(24)), "start": [0] * 24, "end": [10] * 24, "value": [1.0] * 24}
    )
    assert to_dict(charts.heatmap(many, title="t", value_title="k"))["height"] >= 18 * 24


def test_heatmap_diverging_is_symmetric_around_zero() -> None:
    d = to_dict(
        charts.heatmap(_heat(), title="a − b", value_title="Δk", domain=(-0.2, 0.8), diverging=True)
    )
    scale = d["encoding"]["color"]["scale"]
    assert scale["domain"] == [-0.8, 0.8]
    assert scale["domainMid"] == 0
    assert scale["scheme"] == "redblue"


def test_heatmap_renders_cells() -> None:
    svg, _, height = svg_size(charts.heatmap(_heat(), title="t", value_title="k"))
    assert height > 100
    # One rect mark per (layer, step span) cell, each labelled with its value and filled
    # by its own colour.
    cells = re.findall(
        r'<path aria-label="([^"]*)" [^>]*aria-roledescription="rect mark"[^>]*fill="([^"]*)"', svg
    )
    assert [label.split("; k: ")[1].split(";")[0] for label, _ in cells] == ["1", "2", "3", "4"]
    assert len({fill for _, fill in cells}) == 4


def test_pattern_timeline_colours() -> None:
    d = to_dict(charts.pattern_timeline(_timeline(), title="run"))
    scale = d["encoding"]["color"]["scale"]
    assert scale["domain"] == list(charts.PATTERN_COLORS)
    assert scale["range"] == list(charts.PATTERN_COLORS.values())
    assert data_of(d, d)["pattern"].to_list() == [patterns.HEALTHY, patterns.NOT_STOPPING]


def test_pattern_share_bars_facet_by_phase() -> None:
    d = to_dict(charts.pattern_share_bars(_shares(), title="shares"))
    enc = d["encoding"]
    assert enc["row"]["field"] == "phase_label"  # one under the other: fits 900 px
    assert enc["x"]["field"] == "share" and enc["x"]["scale"]["domain"] == [0, 1]
    assert data_of(d, d)["share"].sum() == pytest.approx(1.0)


def test_trace_curves() -> None:
    d = to_dict(charts.trace_curves(_curves(), title="traces at step 50"))
    line = next(layer for layer in layers(d) if mark(layer) == "line")
    assert line["mark"].get("point") is True
    assert line["encoding"]["y"]["scale"]["domain"] == [0, 1.02]
    assert line["encoding"]["x"]["field"] == "k"
    assert line["encoding"]["color"]["field"] == "layer"
    # One panel per run (the `series` label), so runs are never mixed in one panel.
    panels = d.get("facet", {}).get("field") or line["encoding"].get("facet", {}).get("field")
    assert panels == "series"
    rows = pl.DataFrame(next(iter(d["datasets"].values())))
    assert set(rows["series"]) == {"a @ 50", "b @ 50"} and rows.height == 6


def test_grouped_bars_drop_non_finite_values() -> None:
    d = to_dict(
        charts.grouped_bars(_phase_rows(), value="lm_change", title="LM change", colors=COLORS)
    )
    rows = data_of(d, d)
    assert rows["run"].to_list() == RUNS[:2]
    assert d["encoding"]["xOffset"]["field"] == "run"
    assert d["encoding"]["color"]["scale"]["range"] == [COLORS[r] for r in RUNS[:2]]
    nan_only = _phase_rows().with_columns(pl.lit(float("nan")).alias("lm_change"))
    assert is_no_data(
        to_dict(charts.grouped_bars(nan_only, value="lm_change", title="g", colors=COLORS))
    )


def test_histogram_bars_and_zero_line() -> None:
    binned = prepare.histogram_bins(
        pl.DataFrame({"run": ["a"] * 50 + ["b"] * 50, "delta_ce": list(np.linspace(-1, 1, 100))}),
        "delta_ce",
        bins=8,
    )
    d = to_dict(charts.histogram(binned, title="ΔCE", x_title="ΔCE", colors=COLORS))
    rect = layers_with(d, "rect")[0]
    assert (
        rect["encoding"]["x"]["field"],
        rect["encoding"]["x2"]["field"],
        rect["encoding"]["y"]["field"],
    ) == ("lo", "hi", "n")
    assert data_of(d, rect)["n"].sum() == 100
    zero = layers_with(d, "rule")[0]
    assert data_of(d, zero)["x"].to_list() == [0.0]


def test_count_bars_normalised() -> None:
    d = to_dict(
        charts.count_bars(
            _counts(),
            category="status",
            title="mix",
            domain=["ECONOMIC WIN", "TAX ONLY"],
            range_=["#0f0", "#f00"],
        )
    )
    assert d["encoding"]["x"]["stack"] == "normalize"
    assert d["encoding"]["color"]["scale"] == {
        "domain": ["ECONOMIC WIN", "TAX ONLY"],
        "range": ["#0f0", "#f00"],
    }


def test_parallel_coordinates_scale_each_axis() -> None:
    d = to_dict(
        charts.parallel_coordinates(
            _sweep(), axes=["lambda_max", "final_lm", "k_mean", "missing"], colors=COLORS
        )
    )
    rows = data_of(d, d)
    assert set(rows["axis"]) == {"lambda_max", "final_lm", "k_mean"}
    assert rows["scaled"].min() == 0.0 and rows["scaled"].max() == 1.0
    lam = rows.filter(
        (pl.col("axis") == "lambda_max") & (pl.col("run") == "lambda_max=0.0005")
    ).row(0, named=True)
    assert lam["scaled"] == 0.0 and lam["value"] == pytest.approx(5e-4)  # tooltips keep real values
    assert d["encoding"]["x"]["sort"] == ["lambda_max", "final_lm", "k_mean"]  # the order asked for
    flat = _sweep().with_columns(pl.lit(1.0).alias("k_mean"))
    fd = to_dict(charts.parallel_coordinates(flat, axes=["final_lm", "k_mean"], colors=COLORS))
    rows = data_of(fd, fd)
    assert (rows.filter(pl.col("axis") == "k_mean")["scaled"] == 0.5).all()
    assert is_no_data(
        to_dict(charts.parallel_coordinates(_sweep(), axes=["final_lm"], colors=COLORS))
    )


def test_scatter_axes_and_log_x() -> None:
    d = to_dict(charts.scatter(_sweep(), x="lambda_max", y="final_lm", colors=COLORS))
    assert (
        d["encoding"]["x"]["field"] == "lambda_max" and d["encoding"]["x"]["type"] == "quantitative"
    )
    assert d["encoding"]["y"]["field"] == "final_lm"
    assert data_of(d, d).height == 3
    logged = to_dict(
        charts.scatter(
            _sweep().with_columns(pl.Series("lambda_max", [0.05, 0.0, 5e-4])),
            x="lambda_max",
            y="final_lm",
            colors=COLORS,
            log_x=True,
        )
    )
    assert logged["encoding"]["x"]["scale"]["type"] == "log"
    assert data_of(logged, logged)["lambda_max"].min() > 0  # 0 has no place on a log axis
    nominal = to_dict(charts.scatter(_sweep(), x="gate", y="final_lm", colors=COLORS))
    assert nominal["encoding"]["x"]["type"] == "nominal"
    nulls = _sweep().with_columns(pl.lit(None, pl.Float64).alias("final_lm"))
    assert is_no_data(to_dict(charts.scatter(nulls, x="lambda_max", y="final_lm", colors=COLORS)))


def test_view_colours_are_keyed_by_the_data_layer_vocabularies() -> None:
    from ponder_parse import schema
    from ponder_parse.analysis import phases

    assert tuple(charts.STATUS_COLORS) == schema.QUALITY_STATUSES
    assert tuple(charts.PHASE_COLORS) == phases.PHASES
    assert tuple(charts.PATTERN_COLORS) == patterns.TIMELINE_PATTERNS


@pytest.mark.parametrize(("spec", "expected"), [(".1%", ".2%"), (".2%", ".2%"), (".3f", ".3f")])
def test_d3_format(spec: str, expected: str) -> None:
    assert charts.d3_format(spec) == expected


# --- zoom, crosshair, stack, export ---------------------------------------------------------------


def _zoomed_chart(**kw: Any) -> alt.TopLevelMixin:
    data = series(n=200)
    hover = prepare.hover_table(data, "step", (50.0, 150.0))
    return charts.metric_chart(
        data.filter(pl.col("step").is_between(50, 150)),
        title="LM",
        y_title="LM",
        colors=COLORS,
        x_domain=(50.0, 150.0),
        hover=hover,
        **kw,
    )


def test_zoom_sets_the_x_domain_and_clips() -> None:
    d = to_dict(_zoomed_chart())
    lines = layers_with(d, "line")
    for ln in lines:
        assert ln["encoding"]["x"]["scale"]["domain"] == [50.0, 150.0]
        assert ln["mark"]["clip"] is True
    zoom = [p for p in d["params"] if p["name"] == charts.ZOOM]
    assert zoom and zoom[0]["bind"] == "scales" and zoom[0]["select"]["encodings"] == ["x"]


def test_crosshair_tooltip_lists_every_run_with_an_integer_step() -> None:
    d = to_dict(_zoomed_chart())
    rule = next(r for r in layers_with(d, "rule") if "tooltip" in r["encoding"])
    tips = rule["encoding"]["tooltip"]
    assert tips[0]["field"] == "step" and tips[0]["format"] == "d"
    assert [t["title"] for t in tips[1:]] == RUNS
    assert all(t["field"].startswith("t_v") for t in tips[1:])  # formatted, "–" when absent
    hover = [p for p in d["params"] if p["name"] == charts.HOVER][0]
    assert hover["select"]["nearest"] is True and hover["select"]["fields"] == ["step"]


def test_crosshair_dots_are_only_the_hovered_xs() -> None:
    """The dot on each run's line is drawn for the hovered x only: filtered by the hover
    point, not every grid x made transparent (the browser draws every mark it gets)."""
    d = to_dict(_zoomed_chart())
    (dots,) = [p for p in layers_with(d, "point") if p["encoding"]["y"]["field"] == "y"]
    assert dots["transform"] == [{"filter": {"param": charts.HOVER, "empty": False}}]
    assert "opacity" not in dots["encoding"]


def test_stack_shares_one_zoom_one_crosshair_and_renders() -> None:
    d = to_dict(charts.stack([_zoomed_chart(), _zoomed_chart(log_y=True)]))
    names = {p["name"]: p for p in d["params"]}
    assert {charts.ZOOM, charts.HOVER, charts.PICK} <= set(names)
    assert len(names[charts.ZOOM]["views"]) == 2 and len(set(names[charts.ZOOM]["views"])) == 2
    assert d["resolve"]["scale"]["x"] == "shared"
    svg = vlc.vegalite_to_svg(json.dumps(charts.export_spec(charts.stack([_zoomed_chart()] * 2))))
    assert "<svg" in svg


def test_export_spec_has_a_fixed_width() -> None:
    chart = _zoomed_chart()
    spec = charts.export_spec(chart)
    assert spec["width"] == charts.EXPORT_WIDTH
    svg = vlc.vegalite_to_svg(json.dumps(spec))
    width = float(re.search(r'<svg[^>]* width="([\d.]+)"', svg).group(1))
    assert width >= charts.EXPORT_WIDTH


def test_log_ticks_are_regular() -> None:
    assert charts.log_ticks(1e-4, 0.2) == [1e-4, 1e-3, 1e-2, 1e-1]
    assert charts.log_ticks(4, 12) == [4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert charts.log_ticks(0.5, 30) == [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]
    assert charts.log_ticks(0, 1) == []


def test_log_axis_is_fitted_to_the_data() -> None:
    data = series().with_columns(
        pl.col("value") + 3, pl.col("smooth") + 3
    )  # about 5 to 7, not a nice 1–100
    dom = prepare.y_domain(data, log=True)
    d = to_dict(
        charts.metric_chart(data, title="t", y_title="y", colors=COLORS, log_y=True, y_domain=dom)
    )
    scale = layers_with(d, "line")[0]["encoding"]["y"]["scale"]
    assert scale["type"] == "log" and scale["nice"] is False
    lo, hi = data["smooth"].min(), data["value"].max()
    assert lo / 1.1 < scale["domain"][0] < lo and hi < scale["domain"][1] < hi * 1.1


def test_shared_reference_lines_are_labelled() -> None:
    d = to_dict(
        charts.metric_chart(
            series(), title="t", y_title="y", colors=COLORS, refs=[(2.0, "ref two")]
        )
    )
    text = [
        t for t in layers_with(d, "text") if t["encoding"].get("text", {}).get("field") == "label"
    ]
    assert text and data_of(d, text[0])["label"].to_list() == ["ref two"]


def test_layer_profile_chart() -> None:
    data = pl.DataFrame(
        {"run": RUNS[:2] * 2, "layer": [0, 0, 1, 1], "value": [1.0, 2.0, 1.5, 2.5], "n": [3] * 4}
    )
    d = to_dict(charts.layer_profile_chart(data, title="k", value_title="k", colors=COLORS))
    assert d["encoding"]["x"]["field"] == "layer"
    assert d["encoding"]["color"]["scale"]["range"] == [COLORS[r] for r in RUNS[:2]]
    assert is_no_data(
        to_dict(charts.layer_profile_chart(data.clear(), title="k", value_title="k", colors=COLORS))
    )


def test_layer_lines_chart_is_a_line_per_layer_on_shared_axes() -> None:
    data = pl.DataFrame(
        {"layer": [0, 0, 1, 1], "step": [0, 10, 0, 10], "value": [1.0, 2.0, 1.5, 9.0]}
    )
    d = to_dict(
        charts.layer_lines_chart(
            data, title="run a", value_title="k", x_domain=(0.0, 20.0), y_domain=(0.5, 9.5)
        )
    )
    assert mark(d) == "line"
    enc = d["encoding"]
    assert enc["color"]["field"] == "layer" and enc["color"]["type"] == "ordinal"
    assert enc["x"]["field"] == "step" and enc["x"]["scale"]["domain"] == [0.0, 20.0]
    assert enc["y"]["scale"]["domain"] == [0.5, 9.5]
    assert data_of(d, d)["value"].max() == 9.0
    # A legend click picks a layer out.
    assert any(p.get("bind") == "legend" for p in d["params"])
    assert is_no_data(
        to_dict(charts.layer_lines_chart(data.clear(), title="run a", value_title="k"))
    )


def test_overlay_chart_colours_by_run_and_dashes_by_metric() -> None:
    data = prepare.overlay_series(
        {
            "loss": pl.DataFrame(
                {"run": RUNS[:2] * 2, "step": [0, 0, 10, 10], "value": [3.0, 3.5, 2.0, 2.5]}
            ),
            "k": pl.DataFrame({"run": RUNS[:1] * 2, "step": [0, 10], "value": [1.0, 1.6]}),
        },
        normalize=True,
    )
    d = to_dict(
        charts.overlay_chart(data, title="all", colors=COLORS, smoothed=False, x_domain=(0.0, 10.0))
    )
    lines = layers_with(d, "line")
    assert len(lines) == 1  # unsmoothed: no raw line behind
    enc = d["layer"][0]["encoding"]
    assert enc["color"]["field"] == "run"
    assert enc["color"]["scale"]["range"] == [COLORS[r] for r in RUNS[:2]]
    assert enc["strokeDash"]["field"] == "metric"
    assert enc["strokeDash"]["scale"]["domain"] == ["loss", "k"]
    dashes = enc["strokeDash"]["scale"]["range"]
    assert dashes[0] != dashes[1]
    y = lines[0]["encoding"]["y"]
    assert y["scale"]["domain"] == [0, 1] and "range" in y["title"]
    tips = [t["field"] for t in lines[0]["encoding"]["tooltip"]]
    assert "value_raw" in tips and "metric" in tips
    assert {p["name"] for p in d["params"]} >= {charts.ZOOM}
    raw = to_dict(
        charts.overlay_chart(
            prepare.overlay_series({"k": data.filter(pl.col("metric") == "k")}, normalize=False),
            title="all",
            colors=COLORS,
            normalized=False,
        )
    )
    assert len(layers_with(raw, "line")) == 2  # raw behind the smoothed line
    assert "domain" not in layers_with(raw, "line")[0]["encoding"]["y"]["scale"]
    assert is_no_data(to_dict(charts.overlay_chart(data.clear(), title="all", colors=COLORS)))


def test_overlay_chart_has_one_crosshair_over_every_run_and_metric() -> None:
    parts = {
        "loss": pl.DataFrame(
            {"run": RUNS[:2] * 2, "step": [0, 0, 10, 10], "value": [3.0, 3.5, 2.0, 2.5]}
        ).with_columns(pl.col("value").alias("smooth")),
        "k": pl.DataFrame({"run": RUNS[:1] * 2, "step": [0, 10], "value": [1.0, 1.6]}).with_columns(
            pl.col("value").alias("smooth")
        ),
    }
    data = prepare.overlay_series(parts, normalize=True)
    hover = prepare.overlay_hover(
        {k: prepare.hover_table(v, "step", (0.0, 10.0), n=3) for k, v in parts.items()},
        parts,
        normalize=True,
    )
    chart = charts.overlay_chart(
        data, title="all", colors=COLORS, smoothed=False, x_domain=(0.0, 10.0), hover=hover
    )
    d = to_dict(chart)
    rule = next(r for r in layers_with(d, "rule") if "tooltip" in r["encoding"])
    titles = [t["title"] for t in rule["encoding"]["tooltip"][1:]]
    assert titles == [f"loss · {RUNS[0]}", f"loss · {RUNS[1]}", f"k · {RUNS[0]}"]
    (dots,) = [p for p in layers_with(d, "point") if p["encoding"]["y"]["field"] == "y"]
    assert dots["transform"] == [{"filter": {"param": charts.HOVER, "empty": False}}]
    assert dots["encoding"]["y"]["scale"]["domain"] == [0, 1]  # on the lines' own scale
    assert "<svg" in vlc.vegalite_to_svg(json.dumps(charts.export_spec(chart)))


def test_redrawn_with_other_values_the_spec_is_the_same() -> None:
    """Dataset names follow the chart's structure, not the frames' identity: the same chart
    over other values of the same shape has the same spec, so the browser swaps the data
    in its Vega view instead of building a new one; a frame two layers share is sent once."""

    def drawn(data: pl.DataFrame) -> dict[str, Any]:
        hover = prepare.hover_table(data, "step", (0.0, 59.0), "smooth")
        chart = charts.metric_chart(
            data, title="LM", y_title="LM", colors=COLORS, hover=hover, y_domain=(0.0, 10.0)
        )
        return charts.to_spec(charts.stack([chart, chart]))

    a = series()
    b = a.with_columns(pl.col("smooth") * 0.9)
    first, second = drawn(a), drawn(b)
    without = [{k: v for k, v in d.items() if k != "datasets"} for d in (first, second)]
    assert json.dumps(without[0], sort_keys=True) == json.dumps(without[1], sort_keys=True)
    assert list(first["datasets"]) == list(second["datasets"])
    # the raw and the smoothed line read one frame: sent once, not once per layer
    lines = [u for p in first["vconcat"][:1] for u in p["layer"] if mark(u) == "line"]
    assert len(lines) == 2 and lines[0]["data"] == lines[1]["data"]
    assert not first["datasets"][lines[0]["data"]["name"]].equals(
        second["datasets"][lines[0]["data"]["name"]]
    )


def test_charts_are_not_validated_piece_by_piece_as_they_are_built() -> None:
    """Altair's debug mode validates each object as it is made, a quarter of a page's
    build; the app turns it off, and the tests validate the whole spec instead."""
    from altair.utils import schemapi

    assert charts.alt is alt and schemapi.DEBUG_MODE is False
    wrong = alt.Chart(pl.DataFrame({"x": [1]})).mark_point().encode(x=alt.X("x:Q", bin="often"))
    with pytest.raises(schemapi.SchemaValidationError):
        wrong.to_dict()
