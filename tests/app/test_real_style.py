"""The views on runs of the realistic simulator (read back from their files): audit steps
left out of every aggregate (and marked), each run's own TARGET_K, Kmax, flat metrics,
trace classes."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest
from analysis_helpers import real_config, real_run
from app_helpers import (
    assert_ok,
    chart_by_title,
    charts,
    dataset_with,
    goto,
    line_data,
    new_app,
    open_run_details,
    spec,
    table_with,
    texts,
    title,
)
from streamlit.testing.v1 import AppTest

from ponder_app import charts as ch
from ponder_app import prepare
from ponder_parse.analysis import catalog, patterns, red_flags, summaries
from ponder_parse.run import Run
from ponder_parse.sim.simulate import write_run

RUN = real_run()
AUDITS = set(patterns.audit_steps(RUN).to_list())


# --- data for the views ----------------------------------------------------------------------


def _stripes(cells: pl.DataFrame) -> set[int]:
    """Columns (`start`) where every layer shows k = 2.00: what an audit step prints."""
    by_col = cells.group_by("start").agg((pl.col("value") == 2.0).all().alias("all2"))
    return set(by_col.filter(pl.col("all2"))["start"].to_list())


def test_heatmap_grid_leaves_audit_layer_lines_out() -> None:
    econ = (1200, 1999)
    audit_lines = RUN.layers.filter(pl.col("step").is_in(list(AUDITS)))
    assert audit_lines.height and (audit_lines["k"] == 2.0).all()  # forced k=2
    # one column per logged step: an audit step would be a stripe of k = 2.00
    grid = prepare.layer_grid(RUN, "k", max_cols=1000, step_range=econ)
    assert not set(grid["start"]) & AUDITS
    assert _stripes(grid) == set()
    counted = prepare.layer_grid(RUN, "k", max_cols=1000, step_range=econ, include_audit=True)
    assert set(counted["start"]) & AUDITS and _stripes(counted) == set(counted["start"]) & AUDITS
    marks = prepare.audit_marks(RUN, econ)
    assert set(marks["step"]) == AUDITS & set(RUN.layers["step"])
    # the baseline difference of two runs, on the page's shared bucketing, has neither an
    # audit stripe nor a white gap: every cell of the other run gets a difference
    other = real_run("other", seed=1)
    buckets = prepare.grid_buckets([RUN, other], 1000, econ)
    grids = {
        "real": prepare.layer_grid(RUN, "k", 1000, econ, buckets=buckets),
        "other": prepare.layer_grid(other, "k", 1000, econ, buckets=buckets),
    }
    assert _stripes(grids["real"]) == set() and _stripes(grids["other"]) == set()
    diff = prepare.layer_diffs(grids, "real")["other"]
    covered = grids["other"].filter(pl.col("start") < grids["real"]["end"].max())
    assert diff.height == covered.height and diff["value"].is_not_null().all()


def test_smoothed_series_have_no_audit_sawtooth() -> None:
    frames = {"real": prepare.per_step(RUN)}
    s = prepare.step_series(frames, "avg_k", weight=0.9, step_range=(1200, 1999), thin=False)
    assert not set(s["step"]) & AUDITS
    # each forced 2.00 kicks the EMA up by ~0.1 × 0.25: the sawtooth
    assert s["smooth"].diff().max() < 0.01
    with_audit = prepare.step_series(
        frames, "avg_k", weight=0.9, step_range=(1200, 1999), thin=False, include_audit=True
    )
    assert set(with_audit["step"]) >= AUDITS and with_audit["smooth"].diff().max() > 0.015
    pts = prepare.audit_points(frames, "avg_k", step_range=(1200, 1999))
    assert set(pts["step"]) == AUDITS and (pts["value"] == 2.0).all()


def test_phase_means_leave_audit_steps_out() -> None:
    econ = summaries.phase_summary(RUN).filter(pl.col("phase") == "economic").row(0, named=True)
    st = RUN.steps.filter(pl.col("step") >= 1200)
    assert econ["k_mean"] == pytest.approx(st.filter(~pl.col("audit"))["avg_k"].mean())
    assert econ["k_mean"] < st["avg_k"].mean()
    assert econ["steps"] == st.height  # the phase still has all its steps
    counted = summaries.phase_summary(RUN, include_audit=True)
    assert counted.filter(pl.col("phase") == "economic")["k_mean"][0] == pytest.approx(
        st["avg_k"].mean()
    )
    s = summaries.run_summary(RUN)
    assert s["k_mean_economic"] == pytest.approx(econ["k_mean"])
    assert s["dominant_pattern"] == patterns.HEALTHY


def test_windowed_lm_outcomes_do_not_follow_one_batch() -> None:
    steps = RUN.steps.with_columns(
        lm_loss=pl.when(pl.col("step") == 1999).then(1.0).otherwise(pl.col("lm_loss"))
    )
    lucky = Run(name="lucky", steps=steps)
    out = summaries.lm_outcomes(lucky)
    policy = steps.filter(~pl.col("audit"))
    assert out["last_lm"] == 1.0 and out["last_lm_step"] == 1999
    assert out["final_lm"] == pytest.approx(policy["lm_loss"].tail(100).mean())
    assert out["final_lm"] > 5.0  # one lucky batch moves the mean by ~0.05, not to 1.0
    assert out["best_lm"] == pytest.approx(policy["lm_loss"].rolling_mean(100).min())
    facts = dict(summaries.run_facts(lucky).iter_rows())
    assert facts["last LM (raw, one batch)"] == "1.0000 at step 1999"
    assert "100" in summaries.OUTCOME_HELP["final_lm"]
    assert set(summaries.column_help(["lm_end", "lm_end_diff", "run"])) == {"lm_end", "lm_end_diff"}


def test_each_run_gets_its_own_target_line() -> None:
    a, b = real_run("a", target_k=2.40), real_run("b", target_k=1.30)
    refs = prepare.run_refs([a, b], "avg_k")
    assert refs.select("run", "y", "label").rows() == [
        ("a", 2.4, "a: TARGET_K 2.40"),
        ("b", 1.3, "b: TARGET_K 1.30"),
    ]
    assert prepare.run_refs([a, b], "lm_loss").is_empty()
    frames = {r.name: prepare.per_step(r) for r in (a, b)}
    chart = ch.metric_chart(
        prepare.step_series(frames, "avg_k"),
        title="AVGS k",
        y_title="AVGS k",
        colors={"a": "#111111", "b": "#222222"},
        run_refs=refs,
    )
    d = ch.to_spec(chart)
    rules = [
        layer
        for layer in d["layer"]
        if layer.get("mark", {}).get("type") == "rule"
        and layer["encoding"].get("color", {}).get("field") == "run"
    ]
    assert len(rules) == 1
    data = d["datasets"][rules[0]["data"]["name"]]
    assert data["label"].to_list() == ["a: TARGET_K 2.40", "b: TARGET_K 1.30"]
    assert rules[0]["encoding"]["color"]["scale"]["range"] == ["#111111", "#222222"]
    labels = [layer for layer in d["layer"] if layer.get("mark", {}).get("type") == "text"]
    assert labels and labels[0]["encoding"]["text"]["field"] == "label"


def test_configured_clamps_are_a_runs_own_lines() -> None:
    run = Run(name="c", hparams={"lambda_min": 1e-3, "lambda_max": "x"})
    assert catalog.run_reference_lines(run, "lambda_p") == [(1e-3, "λ_p min 1.00e-03")]


def test_flat_notes_for_pickers() -> None:
    flat = prepare.flat_in([RUN])
    assert prepare.flat_note("layers.ent", flat, [RUN]) == catalog.FLAT_NOTE
    assert prepare.flat_note("layers.k", flat, [RUN]) is None
    measured = Run(name="m", layers=RUN.layers.with_columns(ent=pl.lit(3.1)))
    note = prepare.flat_note("layers.ent", prepare.flat_in([RUN, measured]), [RUN, measured])
    assert note == f"{catalog.FLAT_NOTE} in real"
    # the metric_flat rule's settings decide, as for the finding
    strict = red_flags.edit(red_flags.DEFAULT, "metric_flat", "min_lines", 10**6)
    assert prepare.flat_in([RUN], strict) == {}
    m = catalog.metric("ent", "layers")
    assert prepare.picker_label(m, note).endswith(note)


# --- the app on a sweep of real-style runs ---------------------------------------------------


@pytest.fixture(scope="module")
def real_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppTest]:
    root = tmp_path_factory.mktemp("real")
    for name, target in (("tk24", 2.40), ("tk13", 1.30)):
        write_run(real_config(target_k=target), root, name=name)
    with pytest.MonkeyPatch.context() as mp:  # every rerun reads the paths again
        mp.setenv("PONDER_RUNS", str(root))
        at = new_app().run()
        assert_ok(at)
        yield at


def test_real_runs_survival_page(real_app: AppTest) -> None:
    goto(real_app, "survival_traces")
    cells = dataset_with(chart_by_title(real_app, "tk24"), "layer", "pattern", "start")
    assert cells is not None
    assert title(chart_by_title(real_app, "tk24")) == "tk24 (Kmax 4)"
    by_phase = {
        "warmup": cells.filter(pl.col("step") < 800)["pattern"],
        "gate": cells.filter(pl.col("step").is_between(800, 1199))["pattern"],
        "econ": cells.filter(pl.col("step") >= 1200)["pattern"],
    }
    assert (by_phase["warmup"] == patterns.FORCED).all()
    assert (by_phase["gate"] == patterns.FROZEN_GATE).all()
    assert not (by_phase["econ"] == patterns.OTHER).any()
    shares = table_with(real_app, "share")
    warm = shares.filter(pl.col("phase") == "force_warmup")
    assert warm["pattern"].to_list() == [patterns.FORCED, patterns.FORCED]
    assert patterns.FORCED not in shares.filter(pl.col("phase") == "economic")["pattern"]
    text = "\n".join(texts(real_app.main))
    assert patterns.pattern_rules()[patterns.HEALTHY] in text


def test_real_runs_step_line_targets_and_audits(real_app: AppTest) -> None:
    goto(real_app, "step_line")
    chart = chart_by_title(real_app, "AVGS k")
    refs = dataset_with(chart, "run", "y", "label")
    assert refs is not None
    assert sorted(refs["label"]) == ["tk13: TARGET_K 1.30", "tk24: TARGET_K 2.40"]
    lines = line_data(chart)
    pts = dataset_with(chart, "run", "x", "step", "value")
    assert pts is not None and (pts["value"] == 2.0).all()
    assert not set(lines["step"]) & set(pts["step"])
    real_app.toggle(key="include_audit_step_line").set_value(True).run()
    assert_ok(real_app)
    # Counted in the lines, no longer as separate marks; every audit step is in them
    # (read over a range the lines are drawn at full resolution in).
    full = real_app.slider(key="sl_range").value
    window = (1200, 1399)
    real_app.slider(key="sl_range").set_value(window).run()
    assert_ok(real_app)
    chart = chart_by_title(real_app, "AVGS k")
    assert dataset_with(chart, "run", "x", "step", "value") is None
    shown = pts.filter(pl.col("step").is_between(*window))
    assert shown.height and set(shown["step"]) <= set(line_data(chart)["step"])
    real_app.slider(key="sl_range").set_value(full).run()
    real_app.toggle(key="include_audit_step_line").set_value(False).run()


def test_real_runs_flat_metrics_are_marked(real_app: AppTest) -> None:
    goto(real_app, "step_line")
    options = real_app.multiselect(key="sl_metrics").options
    mtp = [o for o in options if "MTP" in o]
    assert mtp and all(catalog.FLAT_NOTE in o for o in mtp)
    lm = [o for o in options if o.endswith("— LM (lm_loss)")]
    assert len(lm) == 1  # measured: no note
    goto(real_app, "layer_heatmaps")
    options = real_app.selectbox(key="lh_metric").options
    assert any(o.startswith("ent") and catalog.FLAT_NOTE in o for o in options)


def test_real_runs_heatmaps_mark_audits(real_app: AppTest) -> None:
    goto(real_app, "layer_heatmaps")
    chart = chart_by_title(real_app, "tk24")
    layers = spec(chart)["layer"]
    assert layers[1]["mark"]["shape"] == "triangle-down"
    cells = dataset_with(chart, "layer", "value")
    assert cells is not None
    econ = cells.filter(pl.col("start") >= 1200)
    assert econ.height and _stripes(econ) == set()  # no k = 2.00 audit stripe


def test_real_runs_home_shows_kmax_and_windowed_outcomes(real_app: AppTest) -> None:
    open_run_details(real_app)
    details = next(e for e in real_app.main.expander if "problem(s)" in e.label)  # a run's
    shown = details.table[0].value
    facts = dict(zip(shown["fact"], shown["value"], strict=True))
    assert facts["Kmax"] == "4"
    assert facts["last LM (raw, one batch)"].endswith("at step 1999")
    for page in ("phase_comparison", "economics", "sweep"):
        goto(real_app, page)
        assert charts(real_app)
    econ_chart = chart_by_title(goto(real_app, "economics"), "AVGS k against")
    assert dataset_with(econ_chart, "run", "y", "label") is not None


def test_heatmap_cells_leave_no_gap_where_an_audit_was_left_out() -> None:
    grid = prepare.layer_grid(RUN, "k", max_cols=1000, step_range=(1200, 1999))
    for (_,), cells in grid.group_by("layer"):
        cells = cells.sort("start")
        assert (cells["end"].head(-1) == cells["start"].tail(-1)).all()


def test_runs_of_different_lengths_share_the_buckets() -> None:
    short, long = real_run("short", steps=1500), real_run("long", steps=2000)
    buckets = prepare.grid_buckets([short, long], max_cols=100)
    assert buckets == (0, 20)  # 2000 logged steps, every 10, in at most 100 columns
    grids = {r.name: prepare.layer_grid(r, "k", 100, buckets=buckets) for r in (long, short)}
    diff = prepare.layer_diffs(grids, "long")["short"]
    starts = sorted(set(diff["start"]))
    assert starts == list(range(0, 1500, 20))  # every cell the short run has, no stripes


def test_runs_sharing_a_target_share_one_label() -> None:
    runs = [real_run(n, target_k=t) for n, t in (("a", 1.3), ("b", 1.3), ("c", 2.4))]
    frames = {r.name: prepare.per_step(r) for r in runs}
    chart = ch.metric_chart(
        prepare.step_series(frames, "avg_k"),
        title="AVGS k",
        y_title="AVGS k",
        colors={"a": "#111111", "b": "#222222", "c": "#333333"},
        run_refs=prepare.run_refs(runs, "avg_k"),
    )
    d = ch.to_spec(chart)
    text = next(layer for layer in d["layer"] if layer.get("mark", {}).get("type") == "text")
    data = d["datasets"][text["data"]["name"]]
    assert data["label"].to_list() == ["TARGET_K 1.30 (2 runs)", "c: TARGET_K 2.40"]
    assert data["runs"].to_list() == ["a, b", "c"]  # the names, in the label's tooltip


def test_real_resume_and_failed_generation_reach_the_views() -> None:
    run = real_run("resumed", pause_at=1500, gen_fail_at=1000)
    frames = {run.name: prepare.per_step(run)}
    marks = prepare.event_markers([run], frames, "step", None, audits=False)
    assert marks.select("step", "kind").rows() == [(1500, "resumed from checkpoint")]
    assert prepare.generation_failures(run).rows() == [
        (1000, "index 65535 is out of bounds: 65535, range 0 to 65535")
    ]
    assert prepare.runs_with_generations([run]) == [run]
    assert 1000 in prepare.generation_steps([run])
