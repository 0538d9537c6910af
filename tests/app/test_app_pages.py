"""The app's pages through Streamlit's AppTest: every page on the bundled sample sweep,
every widget that changes what a page shows, and a sweep folder with broken runs in it.

Assertions read what the app sends (chart specs and their data, tables, texts), so a
widget that silently does nothing fails its test.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from app_helpers import (
    CHART_PAGES,
    PAGES,
    SAMPLE_NAMES,
    SAMPLE_RUNS,
    _layers,
    assert_ok,
    chart_by_title,
    charts,
    copy_run,
    dataset_with,
    failures,
    goto,
    line_data,
    log_of,
    main_text,
    marks,
    new_app,
    open_run_details,
    open_tab,
    rendered,
    runs_table,
    sidebar_text,
    spec,
    table,
    table_with,
    title,
    x_field,
    y_scale_types,
)
from streamlit.testing.v1 import AppTest

from ponder_app import charts as app_charts
from ponder_app import prepare, registry
from ponder_parse import load_run
from ponder_parse.analysis import patterns

BASELINES = ("baseline,seed=0", "baseline,seed=1", "variant=smollm,kmax=6,seed=0")


@pytest.fixture(scope="module", autouse=True)
def _no_runs_from_outside():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PONDER_RUNS", raising=False)
        yield


@pytest.fixture(scope="module")
def shared() -> AppTest:
    """One session over the sample runs for checks that change nothing."""
    at = new_app().run()
    assert_ok(at)
    return at


@pytest.fixture
def fresh() -> AppTest:
    """A session of its own, for tests that change widgets or session state."""
    at = new_app().run()
    assert_ok(at)
    return at


def runs_widget(at: AppTest):
    return at.multiselect(key="selected_widget")


def baseline_widget(at: AppTest):
    found = [s for s in at.sidebar.selectbox if s.label == "Baseline run"]
    assert found, "no baseline selectbox in the sidebar"
    return found[0]


def metric_value(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r}"
    return found[0]


# --- every page on the sample runs -------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_on_the_sample_sweep(shared: AppTest, page: str) -> None:
    goto(shared, page)
    assert shared.title and shared.title[0].value, "page has no title"
    assert not [i.value for i in shared.main.info if "No runs" in str(i.value)]
    # The frame ran too: the sidebar offers every sample run.
    assert sorted(runs_widget(shared).options) == SAMPLE_NAMES
    if page in CHART_PAGES:
        drawn = charts(shared)
        assert drawn, f"{page} draws no chart"
        for c in drawn:
            s = spec(c)
            assert marks(c), f"chart {title(c)!r} has no marks"
            # Tabular data travels beside the spec: Streamlit moves every named dataset
            # out of it (only geographic data would stay).
            assert "datasets" not in s
            assert c.proto.datasets, f"chart {title(c)!r} carries no data"


def test_a_page_reached_directly_runs_inside_the_frame() -> None:
    """A bookmarked page as the first request: Streamlit starts the page script alone (the
    `pages/` folder is its legacy page directory until `st.navigation` runs), and the page
    is still drawn once, inside the frame, with the sidebar and the loaded runs."""
    at = new_app().switch_page(registry.STEP_LINE.path).run()
    assert_ok(at)
    assert [t.value for t in at.title] == [registry.STEP_LINE.title]
    assert registry.STEP_LINE.caption in [c.value for c in at.main.caption]
    assert sorted(runs_widget(at).options) == SAMPLE_NAMES
    assert chart_by_title(at, "LM")
    # From there the app behaves as if it had started at its root.
    goto(at, registry.HOME.id)
    assert sorted(runs_table(at)["run"]) == SAMPLE_NAMES


def test_home_lists_every_sample_run(shared: AppTest) -> None:
    goto(shared, "home")
    t = runs_table(shared)
    assert t.height == 11
    assert sorted(t["run"].to_list()) == SAMPLE_NAMES
    assert metric_value(shared, "Runs shown") == "11 / 11"
    health = dict(zip(t["run"], t["health"], strict=True))
    assert health["baseline,seed=0"] == "healthy"
    assert health["lambda_max=0.0005,seed=0"] == "critical"
    assert health["lambda_min=0.05,seed=0"] == "critical"
    steps = dict(zip(t["run"], t["steps"], strict=True))
    assert steps["baseline,seed=0"] == 3000
    # Hyperparameters that differ between runs are columns of the table.
    assert "lambda_max" in t.columns
    lm = dict(zip(t["run"], t["lambda_max"], strict=True))
    assert float(lm["lambda_max=0.0005,seed=0"]) == pytest.approx(5e-4)
    assert float(lm["baseline,seed=0"]) == pytest.approx(5e-2)


def test_red_flags_lists_the_pathological_runs_only(shared: AppTest) -> None:
    goto(shared, "red_flags")
    f = table_with(shared, "first_step")
    assert set(f["severity"].unique()) <= {"critical", "warning"}  # the default filter
    found = set(zip(f["run"], f["rule"], f["severity"], strict=True))
    assert ("lambda_max=0.0005,seed=0", "gate_not_stopping", "critical") in found
    assert ("lambda_min=0.05,seed=0", "gate_over_penalized", "critical") in found
    assert ("gate=stuck,seed=0", "gate_stuck_half", "critical") in found
    assert ("halt_thr=0.1,seed=0", "gap_high", "warning") in found
    assert not f.filter(pl.col("run").is_in(BASELINES)).height, f.filter(
        pl.col("run").is_in(BASELINES)
    )
    assert any("lambda_max=0.0005,seed=0" in m for m in main_text(shared).splitlines())


def test_red_flags_severity_filter(fresh: AppTest) -> None:
    goto(fresh, "red_flags")
    before = table_with(fresh, "first_step").height
    fresh.multiselect(key="rf_sev").set_value(["critical"]).run()
    assert_ok(fresh)
    after = table_with(fresh, "first_step")
    assert set(after["severity"]) == {"critical"}
    assert 0 < after.height < before


def _generation_output(run: str, step: int) -> str:
    """The first output line of the first sample at `step`, read from the raw log (bytes
    that are not UTF-8 read as U+FFFD, as the parser reads them)."""
    lines = log_of(SAMPLE_RUNS / run).read_text(encoding="utf-8", errors="replace").splitlines()
    start = lines.index(f"{'=' * 20} GENERATION STEP {step} {'=' * 20}")
    out = next(i for i in range(start, len(lines)) if lines[i].startswith("  Output ("))
    return lines[out + 1].strip()


REAL_HIGH = "regime=real,target_k=2.4,seed=0"
REAL_WIDE = "regime=real,target_k=2.4,d_model=768,seed=1"


def test_generations_show_the_logged_samples(fresh: AppTest) -> None:
    goto(fresh, "generations")
    # It opens on the latest step most runs sampled at, not the longest run's last.
    assert fresh.select_slider(key="gen_step").value == 2500
    shown = "\n".join(str(c.value) for c in fresh.code)
    last = _generation_output("baseline,seed=0", 2500)
    assert last in shown
    fresh.select_slider(key="gen_step").set_value(3500).run()
    assert_ok(fresh)
    shown = "\n".join(str(c.value) for c in fresh.code)
    assert _generation_output(REAL_HIGH, 3500) in shown
    fresh.select_slider(key="gen_step").set_value(1000).run()
    assert_ok(fresh)
    shown = "\n".join(str(c.value) for c in fresh.code)
    assert _generation_output("baseline,seed=0", 1000) in shown
    assert last not in shown


def test_generations_list_a_run_whose_generation_failed(fresh: AppTest) -> None:
    """The wider run's only generation failed: it is listed, and says so as plain text."""
    goto(fresh, "generations")
    fresh.select_slider(key="gen_step").set_value(500).run()
    assert_ok(fresh)
    texts = [str(t.value) for t in fresh.text]
    assert REAL_WIDE in texts
    message = "index 65535 is out of bounds: 65535, range 0 to 65535"
    assert f"generation failed at step 500: {message}" in texts
    fresh.select_slider(key="gen_step").set_value(1000).run()
    assert_ok(fresh)
    assert REAL_WIDE in [str(t.value) for t in fresh.text]
    assert "no sample at or before step 1000" in [str(c.value) for c in fresh.caption]
    fresh.radio(key="gen_mode").set_value("exact").run()
    assert_ok(fresh)
    assert any(str(c.value).startswith("no sample at step 1000") for c in fresh.caption)


def test_generations_show_each_runs_latest_sample(fresh: AppTest) -> None:
    """A run that did not sample at the chosen step shows its latest earlier sample, and
    says from which step."""
    goto(fresh, "generations")
    steps = sorted({int(s) for s in fresh.select_slider(key="gen_step").options})
    fresh.select_slider(key="gen_step").set_value(str(steps[-1])).run()
    assert_ok(fresh)
    latest = [str(c.value) for c in fresh.caption if str(c.value).startswith("latest sample: step")]
    assert latest  # the shorter runs' last samples, not a blank
    shown = "\n".join(str(c.value) for c in fresh.code)
    assert _generation_output("baseline,seed=0", 2500) in shown


def test_economics_draws_lambda_p_on_a_log_scale(shared: AppTest) -> None:
    goto(shared, "economics")
    open_tab(shared, "ec_tab", registry.ECONOMICS_TABS[0])
    lam = chart_by_title(shared, "λ_p")
    assert y_scale_types(lam) == {"log"}
    assert set(line_data(lam)["run"]) == set(SAMPLE_NAMES)
    open_tab(shared, "ec_tab", registry.ECONOMICS_TABS[1])
    titles = [title(c) for c in charts(shared)]
    assert any("ECONOMIC WIN" in t for t in titles), titles


def test_economics_draws_only_the_open_tab(shared: AppTest) -> None:
    """Each tab's charts and controls exist only while it is open; a control of a tab
    closed and opened again keeps its value."""
    goto(shared, "economics")
    seen: dict[str, list[str]] = {}
    for tab in registry.ECONOMICS_TABS:
        open_tab(shared, "ec_tab", tab)
        seen[tab] = [title(c) for c in charts(shared)]  # a stacked view's panels apiece
    ctl, rates, quality = (seen[t] for t in registry.ECONOMICS_TABS)
    assert len(ctl) == 3 and ctl[0].startswith("λ_p") and ctl[2].startswith("CTRL_ERR")
    assert len(rates) == 2 and all("share of policy steps" in t for t in rates)
    assert len(quality) == 2 and any("ΔCE on policy steps" in t for t in quality)
    assert not set(ctl) & set(rates) and not set(rates) & set(quality)
    open_tab(shared, "ec_tab", registry.ECONOMICS_TABS[1])
    shared.slider(key="ec_window").set_value(200).run()
    assert "trailing 200 policy steps" in " ".join(title(c) for c in charts(shared))
    open_tab(shared, "ec_tab", registry.ECONOMICS_TABS[0])
    assert [s.key for s in shared.slider] == ["ec_smooth"]
    open_tab(shared, "ec_tab", registry.ECONOMICS_TABS[1])
    assert shared.slider(key="ec_window").value == 200
    open_tab(shared, "ec_tab", registry.ECONOMICS_TABS[0])


def test_economics_rates_hover_every_run_at_once(shared: AppTest) -> None:
    """The rolling rates read like the other charts: one tooltip listing every run at
    the hovered step, and no invisible hover target on every point."""
    goto(shared, "economics")
    open_tab(shared, "ec_tab", registry.ECONOMICS_TABS[1])
    win = chart_by_title(shared, "ECONOMIC WIN")
    layers = list(_layers(spec(win)))
    rules = [
        [t.get("title") for t in layer.get("encoding", {}).get("tooltip", [])]
        for layer in layers
        if (layer.get("mark") or {}).get("type") == "rule"
    ]
    (tips,) = [t for t in rules if t and t[0] == "step"]  # the crosshair's rule
    assert set(line_data(win)["run"]) <= set(tips[1:]), tips
    hidden = [
        layer
        for layer in layers
        if isinstance(layer.get("mark"), dict) and layer["mark"].get("opacity") == 0
    ]
    assert hidden == []


def test_survival_traces_classify_the_pathologies(shared: AppTest) -> None:
    goto(shared, "survival_traces")

    def late_patterns(run: str) -> pl.Series:
        cells = dataset_with(chart_by_title(shared, run), "layer", "pattern", "start")
        assert cells is not None
        return cells.filter(pl.col("step") >= 2000)["pattern"]

    not_stopping = late_patterns("lambda_max=0.0005,seed=0")
    assert (not_stopping == patterns.NOT_STOPPING).mean() > 0.8
    healthy = late_patterns("baseline,seed=0")
    assert (healthy == patterns.HEALTHY).mean() > 0.8
    over = late_patterns("lambda_min=0.05,seed=0")
    assert (over == patterns.OVER_PENALIZED).mean() > 0.8


def test_layer_heatmaps_share_one_colour_scale(shared: AppTest) -> None:
    goto(shared, "layer_heatmaps")
    per_run = [c for c in charts(shared) if title(c) in SAMPLE_NAMES]
    assert len(per_run) == 11
    # the cells are the first layer when audit-step marks are drawn on top
    cells = [(spec(c).get("layer") or [spec(c)])[0] for c in per_run]
    domains = {tuple(s["encoding"]["color"]["scale"]["domain"]) for s in cells}
    assert len(domains) == 1
    lo, hi = domains.pop()
    values = pl.concat([dataset_with(c, "layer", "value").select("value") for c in per_run])[
        "value"
    ]
    assert lo == pytest.approx(values.min()) and hi == pytest.approx(values.max())


# --- widgets ------------------------------------------------------------------------------------


def test_step_line_smoothing(fresh: AppTest) -> None:
    goto(fresh, "step_line")
    lm = chart_by_title(fresh, "LM")
    data = line_data(lm)
    assert marks(lm).count("line") == 2  # faint raw + smoothed
    assert (data["value"] != data["smooth"]).any()
    fresh.slider(key="sl_smooth").set_value(0.0).run()
    assert_ok(fresh)
    lm = chart_by_title(fresh, "LM")
    data = line_data(lm)
    assert marks(lm).count("line") == 1
    assert (data["value"] == data["smooth"]).all()


def test_a_step_line_chart_can_have_its_own_smoothing(fresh: AppTest) -> None:
    """One chart set to its own smoothing keeps it while the page's changes; the other
    charts follow the page."""
    goto(fresh, "step_line")
    fresh.slider(key="sl_smooth").set_value(0.0).run()
    fresh.selectbox(key="sl_how_steps.lm_loss").set_value("running").run()
    fresh.slider(key="sl_weight_steps.lm_loss").set_value(0.9).run()
    assert_ok(fresh)
    lm = chart_by_title(fresh, "LM")
    assert "own smoothing: running average, 0.9" in title(lm)
    lm_data = line_data(lm)
    assert (lm_data["value"] != lm_data["smooth"]).any()
    assert marks(lm).count("line") == 2
    others = [c for c in charts(fresh) if not title(c).startswith("LM")]
    assert others
    for c in others:
        d = line_data(c)
        assert (d["value"] == d["smooth"]).all(), title(c)
        assert "own smoothing" not in title(c)
    # A running average of 10 points: the smoothed value at a step is the mean of the
    # run's last 10 logged values (counted on the full series, before thinning).
    fresh.slider(key="sl_range").set_value((0, 300)).run()
    d = line_data(chart_by_title(fresh, "LM")).filter(pl.col("run") == "baseline,seed=0")
    d = d.sort("step")
    row = d.row(20, named=True)
    window = d.filter(pl.col("step") <= row["step"]).tail(10)
    assert row["smooth"] == pytest.approx(window["value"].mean(), rel=1e-6)
    # Back to the page's smoothing.
    fresh.selectbox(key="sl_how_steps.lm_loss").set_value("page").run()
    d = line_data(chart_by_title(fresh, "LM"))
    assert (d["value"] == d["smooth"]).all()


@pytest.mark.parametrize("axis", ["elapsed_min", "tokens"])
def test_step_line_x_axis(fresh: AppTest, axis: str) -> None:
    goto(fresh, "step_line")
    assert x_field(chart_by_title(fresh, "LM")) == "step"
    fresh.radio(key="sl_x").set_value(axis).run()
    assert_ok(fresh)
    lm = chart_by_title(fresh, "LM")
    assert x_field(lm) == axis
    data = line_data(lm)
    assert axis in data.columns
    base = data.filter(pl.col("run") == "baseline,seed=0").sort("step")
    assert base[axis].min() >= 0 and base[axis].max() > 0
    assert base[axis].diff().drop_nulls().min() >= 0  # grows with the step
    # Phase bands move to the same axis: the economic phase starts at the elapsed
    # time / tokens of step 1200, not at 1200.
    bands = dataset_with(lm, "start", "end", "label")
    assert bands is not None
    econ = bands.filter(pl.col("label") == "economic control")["start"][0]
    at_1200 = base.filter(pl.col("step") <= 1200)[axis].max()
    assert econ == pytest.approx(at_1200, rel=0.02)


def test_step_line_log_y(fresh: AppTest) -> None:
    goto(fresh, "step_line")
    assert y_scale_types(chart_by_title(fresh, "LM")) == {None}
    fresh.radio(key="sl_log").set_value("log").run()
    assert_ok(fresh)
    assert y_scale_types(chart_by_title(fresh, "LM")) == {"log"}
    fresh.radio(key="sl_log").set_value("linear").run()
    assert y_scale_types(chart_by_title(fresh, "λ_p")) == {None}


def test_step_line_zoom_is_full_resolution(fresh: AppTest) -> None:
    goto(fresh, "step_line")
    full = line_data(chart_by_title(fresh, "LM")).filter(pl.col("run") == "baseline,seed=0")
    assert full.height < 3000  # downsampled over the whole run
    fresh.slider(key="sl_range").set_value((1000, 1200)).run()
    assert_ok(fresh)
    zoomed = line_data(chart_by_title(fresh, "LM"))
    assert zoomed["step"].min() >= 1000 and zoomed["step"].max() <= 1200
    base = zoomed.filter(pl.col("run") == "baseline,seed=0")
    assert base["step"].to_list() == list(range(1000, 1201))


def test_step_line_metric_choice(fresh: AppTest) -> None:
    goto(fresh, "step_line")
    fresh.multiselect(key="sl_metrics").set_value(["steps.grad_norm", "quality.delta_ce"]).run()
    assert_ok(fresh)
    titles = [title(c) for c in charts(fresh)]
    assert len(titles) == 2
    assert titles[0].startswith("GRAD") and "ΔCE" in titles[1]
    ce = line_data(charts(fresh)[1])
    assert ce["step"].min() >= 1200  # quality lines start at the ponder start


def test_step_line_group_seeds(fresh: AppTest) -> None:
    goto(fresh, "step_line")
    fresh.selectbox(key="sl_group_by").set_value(prepare.SEED_GROUPS).run()
    assert_ok(fresh)
    lm = chart_by_title(fresh, "LM")
    runs = set(line_data(lm)["run"])
    assert "baseline,seed=0" not in runs and "baseline,seed=1" not in runs
    assert len(runs - set(SAMPLE_NAMES)) == 1  # one line for the seed group
    band = dataset_with(lm, "lo", "hi")
    assert band is not None and band.height
    assert (band["lo"] <= band["hi"]).all()
    # The legend stays (under the last chart), naming the group line too.
    last = charts(fresh)[-1]
    legends = [
        layer["encoding"]["color"].get("legend", {})
        for layer in (spec(last).get("layer") or [spec(last)])
        if "color" in layer.get("encoding", {})
    ]
    assert any(lg is not None for lg in legends)


def test_step_line_group_by_a_config_key_with_a_std_band(fresh: AppTest) -> None:
    goto(fresh, "step_line")
    keys = fresh.selectbox(key="sl_group_by").options
    assert "target_k" in keys
    fresh.selectbox(key="sl_group_by").set_value("target_k").run()
    fresh.selectbox(key="sl_band").set_value("std").run()
    assert_ok(fresh)
    runs = set(line_data(chart_by_title(fresh, "LM"))["run"])
    assert any(r.startswith("target_k=") for r in runs)


def test_layer_heatmap_metric(fresh: AppTest) -> None:
    goto(fresh, "layer_heatmaps")
    assert fresh.selectbox(key="lh_metric").value == "k"
    first = chart_by_title(fresh, "baseline,seed=0")
    k = dataset_with(first, "layer", "value")["value"]
    assert k.min() >= 1.0 and k.max() <= 4.0
    fresh.selectbox(key="lh_metric").set_value("s_final").run()
    assert_ok(fresh)
    first = chart_by_title(fresh, "baseline,seed=0")
    s = dataset_with(first, "layer", "value")["value"]
    assert s.min() >= 0.0 and s.max() <= 1.0
    cells = (spec(first).get("layer") or [spec(first)])[0]  # audit marks may sit on top
    assert cells["encoding"]["color"]["title"] != "expected_k"
    assert s.mean() != pytest.approx(k.mean())


def test_layer_heatmap_step_range(fresh: AppTest) -> None:
    goto(fresh, "layer_heatmaps")
    fresh.slider(key="lh_range").set_value((1000, 1500)).run()
    assert_ok(fresh)
    cells = dataset_with(chart_by_title(fresh, "baseline,seed=0"), "layer", "start", "end")
    assert cells["start"].min() >= 1000 and cells["start"].max() <= 1500


def test_survival_trace_step(fresh: AppTest) -> None:
    goto(fresh, "survival_traces")
    assert fresh.select_slider(key="st_step").value == 3650  # the latest trace step of any run
    fresh.select_slider(key="st_step").set_value(1000).run()
    assert_ok(fresh)
    curves = [c for c in charts(fresh) if dataset_with(c, "layer", "k", "s") is not None]
    assert curves, "no trace curves"
    data = pl.concat([dataset_with(c, "layer", "k", "s") for c in curves], how="diagonal_relaxed")
    # Each run at 1000, but the 934-step run at its last trace step, 900.
    assert set(data["step"]) == {1000, 900}
    assert set(data.filter(pl.col("step") == 900)["series"]) == {
        "regime=real,target_k=2.4,d_model=768,seed=1 @ 900"
    }
    base = (
        data.filter(pl.col("series") == "baseline,seed=0 @ 1000")
        if "series" in data.columns
        else data
    )
    assert (
        base.height
        and base.filter(pl.col("k") == 1)["s"].to_list() == [1.0] * base["layer"].n_unique()
    )
    # The late, healthy shape is gone at step 1000 (still in gate learning: s_2 high).
    assert base.filter(pl.col("k") == 2)["s"].min() > 0.5


def _edit_phase(at: AppTest, row: int, **values: int) -> None:
    at.session_state["phase_editor"] = {
        "edited_rows": {row: values},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert_ok(at)


def test_phase_boundary_override(fresh: AppTest) -> None:
    goto(fresh, "phase_comparison")
    editor = table(fresh.data_editor(key="phase_editor"))
    assert editor["run"][0] == "baseline,seed=0"
    assert editor["ponder_start"][0] == 1200
    _edit_phase(fresh, 0, ponder_start=1500)
    assert fresh.session_state["phase_overrides"]["baseline,seed=0"] == {"ponder_start": 1500}
    editor = table(fresh.data_editor(key="phase_editor"))
    assert editor.row(0, named=True)["ponder_start"] == 1500
    assert editor.row(0, named=True)["ponder_start from"] == "user"
    bars = dataset_with(chart_by_title(fresh, "LM change"), "run", "phase", "start")
    base = {
        r["phase"]: (r["start"], r["end"])
        for r in bars.filter(pl.col("run") == "baseline,seed=0").iter_rows(named=True)
    }
    assert base["economic"][0] == 1500 and base["gate_learning"][1] == 1499
    other = bars.filter((pl.col("run") == "baseline,seed=1") & (pl.col("phase") == "economic"))
    assert other["start"][0] == 1200
    # The step line's phase bands follow the baseline run's override.
    goto(fresh, "step_line")
    bands = dataset_with(chart_by_title(fresh, "LM"), "start", "end", "label")
    assert bands.filter(pl.col("label") == "economic control")["start"][0] == 1500


def test_phase_boundary_reset(fresh: AppTest) -> None:
    goto(fresh, "phase_comparison")
    _edit_phase(fresh, 0, ponder_start=1500)
    fresh.button(key="phase_reset").click().run()
    assert_ok(fresh)
    assert not any(fresh.session_state["phase_overrides"].values())
    assert table(fresh.data_editor(key="phase_editor"))["ponder_start"][0] == 1200


def test_red_flag_opens_the_step_line_zoomed(fresh: AppTest) -> None:
    goto(fresh, "red_flags")
    shown = table_with(fresh, "first_step")
    hit = (
        shown.with_row_index()
        .filter(
            (pl.col("run") == "lambda_max=0.0005,seed=0") & (pl.col("rule") == "gate_not_stopping")
        )
        .row(0, named=True)
    )
    fresh.button(key=f"rf-open-{hit['index']}").click().run()
    assert_ok(fresh)
    assert fresh.title[0].value == "Step line"
    lo, hi = fresh.session_state["sl_range"]
    assert 0 < lo <= hit["first_step"] and hit["last_step"] <= hi
    assert fresh.session_state["sl_metrics"] == ["steps.avg_k", "steps.lambda_p"]
    titles = [title(c) for c in charts(fresh)]
    assert [t.split(" — ")[0] for t in titles] == ["AVGS k", "λ_p"]
    data = line_data(charts(fresh)[0])
    assert data["step"].min() >= lo and data["step"].max() <= hi
    # The axis is the finding's range (not 0–max), and the finding's run is highlighted.
    for chart in charts(fresh):
        for layer in spec(chart)["layer"]:
            x = layer.get("encoding", {}).get("x", {})
            if x.get("field") == "step" and "scale" in x:
                assert x["scale"]["domain"] == [lo, hi]
    whole = spec(fresh.get("vega_lite_chart")[0])
    pick = next(p for p in whole["params"] if p["name"] == app_charts.PICK)
    assert pick["value"] == [{"run": "lambda_max=0.0005,seed=0"}]


def test_sweep_scatter_axes(fresh: AppTest) -> None:
    goto(fresh, "sweep")
    fresh.selectbox(key="sw_x").set_value("lambda_max").run()
    fresh.selectbox(key="sw_y").set_value("k_mean_economic").run()
    assert_ok(fresh)
    sc = chart_by_title(fresh, "k_mean_economic against lambda_max")
    enc = spec(sc)["encoding"]
    assert enc["x"]["field"] == "lambda_max" and enc["y"]["field"] == "k_mean_economic"
    pts = dataset_with(sc, "run", "lambda_max", "k_mean_economic")
    k = dict(zip(pts["run"], pts["k_mean_economic"], strict=True))
    assert pts.height == 10  # the 934-step run never reached the economic phase
    # The run with the low price ceiling ponders most.
    assert max(k, key=k.get) == "lambda_max=0.0005,seed=0"


def test_sweep_tag_edit_adds_a_column(fresh: AppTest) -> None:
    goto(fresh, "sweep")
    assert fresh.selectbox(key="sw_tag_run").value == "baseline,seed=0"
    fresh.session_state["sw_tags_baseline,seed=0"] = {
        "edited_rows": {},
        "added_rows": [{"key": "mytag", "value": "7"}],
        "deleted_rows": [],
    }
    fresh.run()
    fresh.button(key="sw_apply").click().run()
    assert_ok(fresh)
    sweep = table_with(fresh, "final_lm")
    assert "mytag" in sweep.columns
    tagged = dict(zip(sweep["run"], sweep["mytag"], strict=True))
    assert tagged["baseline,seed=0"] == 7
    assert all(v is None for r, v in tagged.items() if r != "baseline,seed=0")
    assert "mytag" in fresh.selectbox(key="sw_x").options


def test_a_user_tag_is_a_swept_setting_on_the_runs_page(fresh: AppTest) -> None:
    fresh.session_state["tag_edits"] = {"baseline,seed=0": {"mytag": "7"}}
    goto(fresh, "home")
    t = runs_table(fresh)
    assert t.columns.index("mytag") < t.columns.index("steps")  # before the outcomes
    tagged = dict(zip(t["run"], t["mytag"], strict=True))
    assert tagged["baseline,seed=0"] == "7"
    assert all(v is None for r, v in tagged.items() if r != "baseline,seed=0")
    open_run_details(fresh)
    sources = [table(df) for df in fresh.main.dataframe if "from" in table(df).columns]
    mine = [dict(zip(df["key"], df["from"], strict=True)) for df in sources]
    assert next(m for m in mine if "mytag" in m)["mytag"] == "user"


def test_sweep_tag_edit_regroups_seeds(fresh: AppTest) -> None:
    goto(fresh, "sweep")
    assert "crash_at=2377,seed=2" not in main_text(fresh).split("Seed groups")[-1]
    fresh.selectbox(key="sw_tag_run").set_value("crash_at=2377,seed=2").run()
    key = "sw_tags_crash_at=2377,seed=2"
    tags = table(fresh.data_editor(key=key))
    fresh.session_state[key] = {
        "edited_rows": {},
        "added_rows": [],
        "deleted_rows": [tags["key"].to_list().index("crash_at")],
    }
    fresh.run()
    fresh.button(key="sw_apply").click().run()
    assert_ok(fresh)
    groups = [rendered(m.value) for m in fresh.markdown if "baseline,seed=0" in rendered(m.value)]
    assert groups and "crash_at=2377,seed=2" in groups[0], groups


# --- the sidebar ------------------------------------------------------------------------------


def test_deselecting_runs(fresh: AppTest) -> None:
    dropped = {"lambda_max=0.0005,seed=0", "gate=stuck,seed=0"}
    keep = [n for n in SAMPLE_NAMES if n not in dropped]
    runs_widget(fresh).set_value(keep).run()
    assert_ok(fresh)
    assert sorted(runs_table(fresh)["run"]) == keep
    assert metric_value(fresh, "Runs shown") == "9 / 11"
    goto(fresh, "red_flags")
    assert not (set(table_with(fresh, "first_step")["run"]) & dropped)
    goto(fresh, "step_line")
    assert set(line_data(chart_by_title(fresh, "LM"))["run"]) == set(keep)
    # Colours stay with their runs when others are hidden.
    lm = spec(chart_by_title(fresh, "LM"))
    scale = next(
        layer["encoding"]["color"]["scale"]
        for layer in lm["layer"]
        if "color" in layer.get("encoding", {})
        and "domain" in layer["encoding"]["color"].get("scale", {})
    )
    colours = dict(zip(scale["domain"], scale["range"], strict=True))
    # from the run's name, the same as with every run shown
    assert (
        colours["lambda_min=0.05,seed=0"]
        == app_charts.run_colors(SAMPLE_NAMES)["lambda_min=0.05,seed=0"]
    )
    assert all(colours[n] == app_charts.run_colors(SAMPLE_NAMES)[n] for n in keep)
    runs_widget(fresh).set_value([]).run()
    assert_ok(fresh)
    assert not charts(fresh)
    assert any("No runs selected" in str(i.value) for i in fresh.info)


def test_changing_the_baseline(fresh: AppTest) -> None:
    goto(fresh, "layer_heatmaps")
    assert not [c for c in charts(fresh) if " − " in title(c)]  # drawn in their own tab
    open_tab(fresh, "lh_tab", registry.HEATMAP_TABS[1])
    assert not [c for c in charts(fresh) if title(c) in SAMPLE_NAMES]  # that tab only
    diffs = [title(c) for c in charts(fresh) if " − " in title(c)]
    assert diffs and all(t.endswith(" − baseline,seed=0") for t in diffs)
    baseline_widget(fresh).set_value("baseline,seed=1").run()
    assert_ok(fresh)
    assert fresh.session_state["baseline"] == "baseline,seed=1"
    diffs = [title(c) for c in charts(fresh) if " − " in title(c)]
    assert len(diffs) == 10
    assert all(t.endswith(" − baseline,seed=1") for t in diffs)
    assert "baseline,seed=0 − baseline,seed=1" in diffs
    goto(fresh, "phase_comparison")
    assert any("baseline,seed=1" in t.label for t in fresh.toggle if t.key == "pc_diff")


# --- a sweep folder with broken runs beside good ones --------------------------------------------------


@pytest.fixture(scope="module")
def broken_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("broken") / "sweep"
    root.mkdir()
    copy_run("baseline,seed=0", root, "good_a")
    copy_run("lambda_max=0.0005,seed=0", root, "good_b")
    (root / "empty_log").mkdir()
    (root / "empty_log" / "log_kronecker_adaptive.txt").write_bytes(b"")
    (root / "garbage").mkdir()
    (root / "garbage" / "log_x.txt").write_bytes(
        bytes((i * 7919 + 13) % 256 for i in range(40_000))
    )
    half = copy_run("baseline,seed=1", root, "half_stats")
    stats = (half / "stats.json").read_bytes()
    (half / "stats.json").write_bytes(stats[: len(stats) // 2])
    trunc = copy_run("gate=stuck,seed=0", root, "truncated")
    data = log_of(trunc).read_bytes()
    log_of(trunc).write_bytes(data[: data.rindex(b"\nSTEP: ") + 60])  # cut inside a step line
    (root / "no_log").mkdir()
    (root / "no_log" / "config.json").write_text('{"seed": 3}')
    (root / "no_log" / "notes.md").write_text("the log was lost\n")
    return root


BROKEN = ("empty_log", "garbage", "half_stats", "truncated")


def problems_of(at: AppTest, run: str) -> pl.DataFrame:
    """Home page: the table of problems in the expander of `run`."""
    open_run_details(at)
    found = [e for e in at.main.expander if rendered(e.label).startswith(f"{run} — ")]
    assert found, f"no expander for {run}"
    return table_with(at, "reason", where=found[0])


def test_broken_runs_beside_good_ones(broken_sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PONDER_RUNS", os.pathsep.join([str(broken_sweep), str(broken_sweep / "no_log")])
    )
    at = new_app().run()
    assert_ok(at)
    t = runs_table(at)
    assert {"good_a", "good_b"} <= set(t["run"])
    assert not set(t["run"]) & set(SAMPLE_NAMES)  # the sample sweep is not mixed in
    steps = dict(zip(t["run"], t["steps"], strict=True))
    assert steps["good_a"] == 3000 and steps["good_b"] == 3000
    problems = dict(zip(t["run"], t["problems"], strict=True))
    assert problems["garbage"] > 0 and problems["half_stats"] > 0 and problems["truncated"] > 0
    # Each run's own problems are listed on home, under the run's name.
    half = problems_of(at, "half_stats")
    assert (
        "stats.json" in half["text"].to_list() and half["reason"].str.contains("half-written").any()
    )
    assert problems_of(at, "truncated")["reason"].str.contains("incomplete last line").any()
    assert problems_of(at, "garbage")["reason"].str.contains("no step lines").any()
    side = sidebar_text(at)
    assert "no_log" in side and "no trainer log" in side
    for page in PAGES:
        goto(at, page)
        if page in CHART_PAGES:
            assert charts(at), f"{page} draws nothing beside broken runs"


def test_every_broken_run_is_reported_on_home(
    broken_sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PONDER_RUNS", str(broken_sweep))
    at = new_app().run()
    assert_ok(at)
    t = runs_table(at)
    # Each broken run shows the problems its own load reports (at least one), and a run
    # with no step line reads as "no data".
    expected = {name: load_run(broken_sweep / name).problems.height for name in BROKEN}
    assert min(expected.values()) > 0
    shown = t.filter(pl.col("run").is_in(BROKEN))
    assert dict(zip(shown["run"], shown["problems"], strict=True)) == expected
    health = dict(zip(shown["run"], shown["health"], strict=True))
    assert health["empty_log"] == health["garbage"] == "no data"


def test_run_folder_without_log_is_reported(
    broken_sweep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PONDER_RUNS", str(broken_sweep))
    at = new_app().run()
    assert_ok(at)
    assert "no_log" in sidebar_text(at)


def test_broken_run_alone_on_every_page(
    broken_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only broken runs: pages say so or draw what there is, never fail."""
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in BROKEN:
        shutil.copytree(broken_sweep / name, alone / name)
    monkeypatch.setenv("PONDER_RUNS", str(alone))
    at = new_app().run()
    assert_ok(at)
    assert sorted(runs_table(at)["run"]) == sorted(BROKEN)
    for page in PAGES:
        goto(at, page)
        assert not failures(at)


def test_a_run_colour_picked_on_the_runs_page_colours_every_chart(fresh: AppTest) -> None:
    name = "lambda_min=0.05,seed=0"
    fresh.toggle(key="run_colors_open").set_value(True).run()
    assert_ok(fresh)
    fresh.color_picker(key=f"run_color_{name}").pick("#123456").run()
    assert_ok(fresh)
    goto(fresh, "step_line")
    lm = spec(chart_by_title(fresh, "LM"))
    scale = next(
        layer["encoding"]["color"]["scale"]
        for layer in lm["layer"]
        if "domain" in layer.get("encoding", {}).get("color", {}).get("scale", {})
    )
    colours = dict(zip(scale["domain"], scale["range"], strict=True))
    assert colours[name] == "#123456"
    assert len(set(colours.values())) == len(colours)  # no other run took it
