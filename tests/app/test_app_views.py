"""The layer heatmaps' and survival traces' views in the URL: a link opens them, a change
of control is written back, and values a link cannot mean are ignored."""

from __future__ import annotations

import pytest
from app_helpers import (
    assert_ok,
    charts,
    dataset_with,
    goto,
    layers_with,
    line_encodings,
    new_app,
    spec,
    title,
)
from streamlit.testing.v1 import AppTest


def _qp(at: AppTest, key: str) -> list[str]:
    value = at.query_params.get(key)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _reopened(at: AppTest, page: str) -> AppTest:
    """A new session opened on `at`'s URL, on `page`: a reload or a shared link."""
    again = new_app()
    again.query_params = {k: _qp(at, k) for k in at.query_params}
    again.run()
    return goto(again, page)


def test_the_url_opens_the_layer_heatmaps_view() -> None:
    at = new_app()
    at.query_params = {"layer_metric": "p_mean", "layer_steps": "300-900"}
    at.run()
    goto(at, "layer_heatmaps")
    assert at.selectbox(key="lh_metric").value == "p_mean"
    assert tuple(at.slider(key="lh_range").value) == (300, 900)
    # Every heatmap's cells lie in the range.
    cells = [dataset_with(c, "layer", "start", "end") for c in charts(at)]
    cells = [d for d in cells if d is not None and d.height]
    assert cells
    for d in cells:
        assert d["start"].min() >= 300 and d["start"].max() <= 900


def test_the_layer_heatmaps_view_is_written_to_the_url() -> None:
    at = new_app().run()
    goto(at, "layer_heatmaps")
    assert not {"layer_metric", "layer_steps"} & set(at.query_params)  # defaults: plain
    at.selectbox(key="lh_metric").set_value("frac_ge2").run()
    at.slider(key="lh_range").set_value((200, 800)).run()
    assert_ok(at)
    assert _qp(at, "layer_metric") == ["frac_ge2"]
    assert _qp(at, "layer_steps") == ["200-800"]
    again = _reopened(at, "layer_heatmaps")
    assert again.selectbox(key="lh_metric").value == "frac_ge2"
    assert tuple(again.slider(key="lh_range").value) == (200, 800)
    # Back to the default metric: the parameter goes.
    again.selectbox(key="lh_metric").set_value("k").run()
    assert "layer_metric" not in again.query_params


def test_the_url_opens_the_trace_step_and_writes_it_back() -> None:
    at = new_app()
    at.query_params = {"trace_step": "1000"}
    at.run()
    goto(at, "survival_traces")
    slider = at.select_slider(key="st_step")
    assert int(slider.value) == 1000
    assert any("at step 1000" in title(c) for c in charts(at))
    latest = slider.options[-1]
    slider.set_value(int(slider.options[2])).run()
    assert_ok(at)
    assert _qp(at, "trace_step") == [str(slider.options[2])]
    # The latest step is the default (it follows a growing run): a plain URL again.
    at.select_slider(key="st_step").set_value(int(latest)).run()
    assert "trace_step" not in at.query_params


@pytest.mark.parametrize(
    "params",
    [
        {"layer_metric": "<script>", "layer_steps": "9-1", "trace_step": "77"},
        {"layer_metric": "", "layer_steps": "a-b", "trace_step": "-5"},
        {"layer_metric": ["zz", "k k"], "layer_steps": "-1--5", "trace_step": "1e9"},
        {"layer_steps": "0-99999999999999999999", "trace_step": "99999999999999999999"},
    ],
)
def test_unusable_layer_and_trace_values_are_ignored(params: dict[str, object]) -> None:
    at = new_app()
    at.query_params = params
    at.run()
    assert_ok(at)
    goto(at, "layer_heatmaps")
    assert at.selectbox(key="lh_metric").value == "k"  # the default
    lo, hi = at.slider(key="lh_range").min, at.slider(key="lh_range").max
    if params.get("layer_steps", "").startswith("0-9"):  # clamped into the runs' steps
        assert tuple(at.slider(key="lh_range").value) == (lo, hi)
    goto(at, "survival_traces")
    slider = at.select_slider(key="st_step")
    assert int(slider.value) == int(slider.options[-1])  # the latest, the default


def test_the_layer_view_is_in_the_url() -> None:
    at = new_app().run()
    goto(at, "layer_heatmaps")
    assert "layer_view" not in at.query_params  # heatmaps, the default: plain
    at.radio(key="lh_view").set_value("lines").run()
    assert_ok(at)
    assert _qp(at, "layer_view") == ["lines"]
    again = _reopened(at, "layer_heatmaps")
    assert again.radio(key="lh_view").value == "lines"
    # the lines view is drawn: layers coloured, no baseline differences
    assert any(
        spec(c).get("encoding", {}).get("color", {}).get("field") == "layer" for c in charts(again)
    )
    assert not [c for c in charts(again) if " − " in title(c)]
    again.radio(key="lh_view").set_value("heatmaps").run()
    assert "layer_view" not in again.query_params
    # a value the page has no view for is ignored
    odd = new_app()
    odd.query_params = {"layer_view": "<b>pie</b>"}
    odd.run()
    goto(odd, "layer_heatmaps")
    assert odd.radio(key="lh_view").value == "heatmaps"


def test_lines_per_layer_show_each_run_in_the_step_range() -> None:
    at = new_app().run()
    goto(at, "layer_heatmaps")
    at.slider(key="lh_range").set_value((400, 1200)).run()
    at.radio(key="lh_view").set_value("lines").run()
    assert_ok(at)
    shown = at.session_state["selected_runs"]
    lines = [
        c
        for c in charts(at)
        if spec(c).get("encoding", {}).get("color", {}).get("field") == "layer"
    ]
    assert sorted(title(c) for c in lines) == sorted(shown)  # a panel per run
    for c in lines:
        d = dataset_with(c, "layer", "step", "value")
        assert d is not None and d.height
        assert d["step"].min() >= 400 and d["step"].max() <= 1200
        assert d["layer"].n_unique() > 1  # a line per layer
        assert d.group_by("layer").len()["len"].max() <= 600  # thinned
    # The heatmaps' differences are not drawn in this view.
    assert not [c for c in charts(at) if " − " in title(c)]


def test_the_step_line_overlays_its_metrics_in_one_chart_on_request() -> None:
    at = new_app().run()
    goto(at, "step_line")
    chosen = list(at.multiselect(key="sl_metrics").value)
    assert len(chosen) > 1
    assert at.toggle(key="sl_overlay").value is False  # panels are the default
    assert len(charts(at)) == len(chosen)  # a panel per metric
    at.toggle(key="sl_overlay").set_value(True).run()
    assert_ok(at)
    (one,) = charts(at)
    assert line_encodings(one, "strokeDash")[0]["field"] == "metric"
    d = dataset_with(one, "metric", "value_raw")
    assert d is not None and d["metric"].n_unique() == len(chosen)
    assert d["value"].min() >= 0 and d["value"].max() <= 1  # each metric on its own range
    assert d["run"].n_unique() == len(at.session_state["selected_runs"])
    # One crosshair: its tooltip lists every shown run's value of every chosen metric.
    rule = next(r for r in layers_with(one, "rule") if "tooltip" in r.get("encoding", {}))
    titles = [t["title"] for t in rule["encoding"]["tooltip"][1:]]
    assert len(titles) == len(chosen) * len(at.session_state["selected_runs"])
    labels = set(d["metric"].unique())
    assert {t.split(" · ", 1)[0] for t in titles} == labels
    at.toggle(key="sl_overlay_raw").set_value(True).run()
    assert_ok(at)
    raw = dataset_with(charts(at)[0], "metric", "value_raw")
    assert raw is not None
    assert (raw["value"] == raw["value_raw"]).all()
