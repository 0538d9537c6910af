"""Every chart downloads as PNG/SVG and every table as CSV."""

from __future__ import annotations

import csv
import io

import polars as pl
from app_helpers import open_tab
from streamlit.testing.v1 import AppTest

from ponder_app import charts, registry, ui


def test_chart_renders_to_png_and_svg() -> None:
    chart = charts.scatter(
        pl.DataFrame({"run": ["a", "b"], "x": [1.0, 2.0], "y": [3.0, 4.0]}),
        x="x",
        y="y",
        colors=charts.run_colors(["a", "b"]),
    )
    png = ui.chart_image(chart, "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    svg = ui.chart_image(chart, "svg").decode()
    assert svg.lstrip().startswith("<svg")
    # the two points, as marks carrying their values, under the chart's own title
    assert 'aria-label="x: 1; y: 3; run: a' in svg
    assert 'aria-label="x: 2; y: 4; run: b' in svg
    assert "Title text 'y against x'" in svg


def test_csv_writes_lists_as_text() -> None:
    df = pl.DataFrame({"step": [50], "layer": [0], "s_trace": [[1.0, 0.82, 0.23, 0.04]]})
    rows = list(csv.reader(io.StringIO(ui.csv_bytes(df).decode())))
    assert rows == [["step", "layer", "s_trace"], ["50", "0", "[1.0, 0.82, 0.23, 0.04]"]]


def test_chart_and_table_pages_offer_downloads(root) -> None:
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120)
    at.run()
    labels = [b.proto.label for b in at.get("download_button")]
    assert "CSV" in labels  # the runs table
    at.switch_page("pages/economics.py")
    at.run()
    n_charts = 0
    for tab in registry.ECONOMICS_TABS:  # one tab is drawn at a time
        open_tab(at, "ec_tab", tab)
        labels = [b.proto.label for b in at.get("download_button")]
        drawn = len(at.get("vega_lite_chart"))
        assert drawn and labels.count("PNG") == labels.count("SVG") >= drawn, tab
        n_charts += drawn
    assert n_charts >= 5
