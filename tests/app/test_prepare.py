"""`ponder_app.prepare`: runs → the small frames charts draw. Pure Polars, no server.

Every expectation is computed independently in the test (by hand or with NumPy), on
constructed runs whose right answer is known.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl
import pytest

from ponder_app import prepare
from ponder_parse import schema
from ponder_parse.analysis import patterns
from ponder_parse.run import Run


def steps_frame(n: int, **columns: object) -> pl.DataFrame:
    data = {"step": np.arange(n, dtype=np.int64), **columns}
    return schema.conform(pl.DataFrame(data), schema.STEPS)


def wavy(n: int, seed: int = 0) -> np.ndarray:
    """A loss-like series: decaying, with small deterministic wiggles."""
    rng = np.random.default_rng(seed)
    return 4.0 * np.exp(-np.arange(n) / 3000) + 1.0 + 0.01 * rng.standard_normal(n)


def tb_smooth(values: np.ndarray, w: float) -> np.ndarray:
    """TensorBoard's debiased EMA, written out as the recurrence."""
    out, last = [], 0.0
    for i, v in enumerate(values, start=1):
        last = last * w + (1 - w) * v
        out.append(last / (1 - w**i))
    return np.array(out)


# --- per_step ---------------------------------------------------------------------------------


def test_per_step_elapsed_minutes_and_tokens() -> None:
    dt = [500.0, 1000.0, None, 250.0, float("nan"), -100.0, 1500.0]
    tps = [100.0, 200.0, 300.0, None, 50.0, 10.0, 1000.0]
    run = Run(name="r", steps=steps_frame(7, dt_ms=dt, tok_per_sec=tps, lm_loss=[1.0] * 7))
    df = prepare.per_step(run)
    # Missing, NaN and negative durations count as no time passing.
    dt_s = np.array([0.5, 1.0, 0.0, 0.25, 0.0, 0.0, 1.5])
    rate = np.array([100.0, 200.0, 300.0, 0.0, 50.0, 10.0, 1000.0])
    assert df["elapsed_min"].to_numpy() == pytest.approx(np.cumsum(dt_s) / 60)
    assert df["tokens"].to_numpy() == pytest.approx(np.cumsum(dt_s * rate))
    assert df["tokens"][1] == pytest.approx(50.0 + 200.0)
    assert df["elapsed_min"][-1] == pytest.approx(3.25 / 60)


def test_per_step_joins_quality_by_step() -> None:
    quality = schema.conform(
        pl.DataFrame(
            {
                "step": [3, 5],
                "delta_ce": [0.1, -0.2],
                "delta_h": [-0.01, 0.02],
                "coupon": [1e-3, 2e-3],
            }
        ),
        schema.QUALITY,
    )
    run = Run(
        name="r", steps=steps_frame(6, dt_ms=[100.0] * 6, tok_per_sec=[1.0] * 6), quality=quality
    )
    df = prepare.per_step(run)
    assert df.height == 6
    assert df["delta_ce"].to_list() == [None, None, None, 0.1, None, -0.2]
    no_quality = prepare.per_step(Run(name="r", steps=steps_frame(3, dt_ms=[1.0] * 3)))
    assert {"delta_ce", "delta_h", "coupon"} <= set(no_quality.columns)
    assert no_quality["delta_ce"].is_null().all()


# --- step_series --------------------------------------------------------------------------------


def frames_with_spike(n: int = 10_000, spike_at: int = 7_777) -> dict[str, pl.DataFrame]:
    out = {}
    for i, name in enumerate(("a", "b", "c")):
        loss = wavy(n, seed=i)
        if name == "b":
            loss[spike_at] = 100.0
            loss[spike_at + 1] = -50.0
        out[name] = pl.DataFrame({"step": np.arange(n, dtype=np.int64), "lm_loss": loss})
    return out


def test_audit_points_keep_to_their_budget_and_a_zoom_shows_each_one() -> None:
    """Every 10th step an audit (value 2.0): a chart of 8 runs gets at most its share of
    each run's audit marks, evenly spread over the run, each one a real audit step; a
    narrow step range shows every audit in it."""
    n = 10_000
    steps = np.arange(n, dtype=np.int64)
    audit = steps % 10 == 0
    frame = pl.DataFrame({"step": steps, "avg_k": np.where(audit, 2.0, 1.4), "audit": audit})
    frames = {f"r{i}": frame for i in range(8)}
    share = prepare.audit_points_per_run(8)
    assert share < audit.sum() // 8
    pts = prepare.audit_points(frames, "avg_k")
    per_run = pts.group_by("run").len()
    assert per_run.height == 8 and (per_run["len"] <= share).all()
    assert (per_run["len"] >= share // 2).all()  # the share is used
    one = pts.filter(pl.col("run") == "r0")
    assert (one["value"] == 2.0).all() and (one["step"] % 10 == 0).all()
    assert one["step"].min() < n // 10 and one["step"].max() > n - n // 10  # spread out
    zoomed = prepare.audit_points(frames, "avg_k", step_range=(5_000, 5_199))
    assert set(zoomed.filter(pl.col("run") == "r0")["step"]) == set(range(5_000, 5_200, 10))


def test_step_series_keeps_every_spike() -> None:
    frames = frames_with_spike()
    s = prepare.step_series(frames, "lm_loss", weight=0.6, max_points=300)
    b = s.filter(pl.col("run") == "b")
    assert b.height <= 300
    assert b.filter(pl.col("step") == 7_777)["value"].to_list() == [100.0]
    assert b.filter(pl.col("step") == 7_778)["value"].to_list() == [-50.0]
    # Every run's own extremes survive too, and its first and last step.
    for name, df in frames.items():
        run = s.filter(pl.col("run") == name)
        assert run["value"].max() == df["lm_loss"].max()
        assert run["value"].min() == df["lm_loss"].min()
        assert run["step"].min() == 0 and run["step"].max() == 9_999


def test_step_series_point_budget() -> None:
    frames = frames_with_spike()
    default = prepare.step_series(frames, "lm_loss")
    per_run = default.group_by("run").len()
    budget = prepare.points_per_run(3)
    assert (per_run["len"] <= budget).all()
    assert (per_run["len"] >= budget // 2).all()  # the budget is used, not wasted
    assert default.height <= prepare.POINT_BUDGET
    many = {f"r{i}": frames["a"] for i in range(40)}
    assert prepare.points_per_run(40) == prepare.MIN_POINTS_PER_RUN
    assert (
        prepare.step_series(many, "lm_loss").group_by("run").len()["len"].max()
        <= prepare.MIN_POINTS_PER_RUN
    )


def test_step_series_step_range_and_smoothing_from_the_full_series() -> None:
    n = 2_000
    loss = wavy(n)
    frames = {"a": pl.DataFrame({"step": np.arange(n, dtype=np.int64), "lm_loss": loss})}
    s = prepare.step_series(frames, "lm_loss", weight=0.9, step_range=(500, 700))
    assert s["step"].min() == 500 and s["step"].max() == 700
    assert s.height == 201  # a zoomed-in range is shown at full resolution
    expected = tb_smooth(loss, 0.9)
    # Smoothing ran over the whole run: the value at step 500 remembers steps before it.
    assert s["smooth"].to_numpy() == pytest.approx(expected[500:701], rel=1e-9)
    assert s["value"].to_numpy() == pytest.approx(loss[500:701])
    raw = prepare.step_series(frames, "lm_loss", weight=0.0, step_range=(500, 700))
    assert (raw["smooth"] == raw["value"]).all()


def test_step_series_other_x_axes_and_missing_columns() -> None:
    run = Run(
        name="a",
        steps=steps_frame(50, dt_ms=[600.0] * 50, tok_per_sec=[10.0] * 50, lm_loss=wavy(50)),
    )
    frames = {"a": prepare.per_step(run), "empty": prepare.per_step(Run(name="empty"))}
    s = prepare.step_series(frames, "lm_loss", x="elapsed_min", weight=0.6)
    assert s.columns == ["run", "elapsed_min", "step", "value", "smooth"]
    assert set(s["run"]) == {"a"}
    assert s["elapsed_min"].to_numpy() == pytest.approx((np.arange(50) + 1) * 0.01)
    none = prepare.step_series(frames, "baton", weight=0.6)  # nobody logged it
    assert none.is_empty() and {"run", "step", "value", "smooth"} <= set(none.columns)


# --- seed groups ------------------------------------------------------------------------------


def test_seed_group_series_mean_and_band() -> None:
    series = pl.DataFrame(
        {
            "run": ["a"] * 3 + ["b"] * 3 + ["c"] * 3,
            "step": [0, 1, 2] * 3,
            "value": [1.0, 2.0, 3.0, 3.0, 4.0, 9.0, 7.0, 7.0, 7.0],
            "smooth": [1.0, 1.5, 2.0, 3.0, 3.5, 6.0, 7.0, 7.0, 7.0],
        }
    )
    lines, band = prepare.seed_group_series(series, {"g": ["a", "b"]})
    g = lines.filter(pl.col("run") == "g").sort("step")
    assert g["value"].to_list() == pytest.approx([2.0, 3.0, 6.0])
    assert g["smooth"].to_list() == pytest.approx([2.0, 2.5, 4.0])
    assert set(lines["run"]) == {"g", "c"}
    c = lines.filter(pl.col("run") == "c").sort("step")
    assert c["value"].to_list() == [7.0, 7.0, 7.0]
    band = band.sort("step")
    assert band["run"].to_list() == ["g"] * 3
    assert band["lo"].to_list() == pytest.approx([1.0, 1.5, 2.0])
    assert band["hi"].to_list() == pytest.approx([3.0, 3.5, 6.0])


def test_seed_group_mean_is_the_mean_of_the_seeds_at_every_kept_step() -> None:
    """As the step line does it: full-resolution step_series, then seed_group_series
    (which averages seeds step by step and only then thins for the browser)."""
    n = 3_000
    seed0 = wavy(n, seed=10)
    seed1 = wavy(n, seed=11) + 0.05  # the second seed sits 0.05 higher everywhere
    frames = {
        name: pl.DataFrame({"step": np.arange(n, dtype=np.int64), "lm_loss": v})
        for name, v in (("s0", seed0), ("s1", seed1))
    }
    series = prepare.step_series(frames, "lm_loss", weight=0.6, thin=False)
    lines, band = prepare.seed_group_series(series, {"g": ["s0", "s1"]}, max_points=300)
    g = lines.filter(pl.col("run") == "g").sort("step")
    assert g.height <= 300
    true_mean = (tb_smooth(seed0, 0.6) + tb_smooth(seed1, 0.6)) / 2
    assert g["smooth"].to_numpy() == pytest.approx(true_mean[g["step"].to_numpy()], abs=1e-9)
    assert ((band["hi"] - band["lo"]) > 0.01).all()  # both seeds under every point of the band


def test_seed_group_series_without_grouped_runs_is_unchanged() -> None:
    series = pl.DataFrame(
        {"run": ["a", "a"], "step": [0, 1], "value": [1.0, 2.0], "smooth": [1.0, 1.5]}
    )
    lines, band = prepare.seed_group_series(series, {"g": ["x", "y"]})
    assert lines.equals(series)
    assert band.is_empty()


# --- layer_grid ------------------------------------------------------------------------------


def layers_frame(steps: range, n_layers: int, value: Callable[[int, int], float]) -> pl.DataFrame:
    rows = [
        {"step": s, "layer": layer, "k": value(s, layer)}
        for s in steps
        for layer in range(n_layers)
    ]
    return schema.conform(pl.DataFrame(rows), schema.LAYERS)


def test_heatmaps_start_with_fewer_columns_when_many_runs_are_shown() -> None:
    def runs(n: int, layers: int = 8) -> list[Run]:
        frame = layers_frame(range(0, 100, 10), layers, lambda s, layer: 1.0)
        return [Run(name=f"r{i}", layers=frame) for i in range(n)]

    assert prepare.default_heatmap_columns(runs(3), True) == 200  # few runs: full width
    many = prepare.default_heatmap_columns(runs(20), True)
    assert many == 100 and many % 25 == 0  # on the slider's steps
    cells = (20 + 19) * 8 * many  # every map (runs and differences) × layers × columns
    assert cells <= prepare.HEATMAP_CELLS < cells * 2
    assert prepare.default_heatmap_columns(runs(20), False) > many  # no difference maps
    assert prepare.default_heatmap_columns(runs(500), True) == 50  # never under the minimum
    assert prepare.default_heatmap_columns([Run(name="none")], True) == 200


def test_layer_grid_buckets_are_whole_logging_intervals() -> None:
    run = Run(
        name="r", layers=layers_frame(range(0, 3000, 10), 4, lambda s, layer: s / 1000 + layer)
    )
    grid = prepare.layer_grid(run, "k", max_cols=200)
    widths = (grid["end"] - grid["start"]).unique().to_list()
    assert len(widths) == 1
    width = widths[0]
    assert width % 10 == 0  # a whole number of logging intervals
    assert grid.filter(pl.col("layer") == 0).height <= 200
    assert width == 20  # the narrowest whole multiple that fits 300 samples into 200 columns
    # Each bucket's value is the mean of the samples it covers.
    for row in grid.sample(n=25, seed=1).iter_rows(named=True):
        samples = [s / 1000 + row["layer"] for s in range(row["start"], row["end"], 10)]
        assert len(samples) == width // 10
        assert row["value"] == pytest.approx(sum(samples) / len(samples))
    assert grid["layer"].n_unique() == 4


def test_layer_grid_with_few_samples_keeps_each() -> None:
    run = Run(name="r", layers=layers_frame(range(100, 200, 10), 2, lambda s, layer: float(s)))
    grid = prepare.layer_grid(run, "k", max_cols=200)
    assert grid.filter(pl.col("layer") == 1)["start"].to_list() == list(range(100, 200, 10))
    assert (grid["end"] - grid["start"] == 10).all()
    assert grid.filter(pl.col("layer") == 1)["value"].to_list() == [
        float(s) for s in range(100, 200, 10)
    ]


def test_layer_grid_step_range_and_non_finite_values() -> None:
    def value(s: int, layer: int) -> float:
        return float("nan") if s == 500 else 1.0

    run = Run(name="r", layers=layers_frame(range(0, 1000, 10), 2, value))
    grid = prepare.layer_grid(run, "k", max_cols=50, step_range=(400, 600))
    assert grid["start"].min() >= 400 and grid["start"].max() <= 600
    assert grid["value"].is_finite().all() and (grid["value"] == 1.0).all()
    empty = prepare.layer_grid(Run(name="e"), "k")
    assert empty.is_empty() and empty.columns == ["layer", "start", "end", "value"]


# --- survival traces --------------------------------------------------------------------------


def traces_frame(rows: list[tuple[int, int, list[float]]]) -> pl.DataFrame:
    return schema.conform(
        pl.DataFrame(
            {
                "step": [r[0] for r in rows],
                "layer": [r[1] for r in rows],
                "s_trace": [r[2] for r in rows],
            }
        ),
        schema.TRACES,
    )


TRACE_RUN = Run(
    name="t",
    traces=traces_frame(
        [
            (0, 0, [1.0, 1.0, 1.0, 1.0]),
            (0, 1, [1.0, 1.0, 1.0, 1.0]),
            (50, 0, [1.0, 0.95, 0.9, 0.85]),
            (50, 1, [1.0, 0.5, 0.5, 0.5]),
            (100, 0, [1.0, 0.24, 0.03, 0.0]),
            (100, 1, [1.0, 0.02, 0.0, 0.0]),
        ]
    ),
)


def test_trace_timeline_cells() -> None:
    tl = prepare.trace_timeline(TRACE_RUN)
    assert tl.height == 6
    assert (tl["end"] - tl["start"] == 50).all()  # one logging interval wide
    by = {(r["step"], r["layer"]): r for r in tl.iter_rows(named=True)}
    assert by[(50, 0)]["pattern"] == patterns.NOT_STOPPING
    assert by[(50, 1)]["pattern"] == patterns.STUCK_HALF
    assert by[(100, 0)]["pattern"] == patterns.HEALTHY
    assert by[(100, 1)]["pattern"] == patterns.OVER_PENALIZED
    assert by[(100, 0)]["s_trace_text"] == "[1.0, 0.24, 0.03, 0.0]"
    assert tl["pattern"].is_not_null().all()
    zoom = prepare.trace_timeline(TRACE_RUN, step_range=(50, 100))
    assert set(zoom["step"]) == {50, 100}
    assert prepare.trace_timeline(Run(name="e")).is_empty()


def test_traces_at_takes_the_nearest_earlier_trace() -> None:
    at = prepare.traces_at(TRACE_RUN, 99)  # between trace steps
    assert set(at["step"]) == {50}
    assert at.height == 8
    l1 = at.filter(pl.col("layer") == 1).sort("k")
    assert l1["k"].to_list() == [1, 2, 3, 4]
    assert l1["s"].to_list() == [1.0, 0.5, 0.5, 0.5]
    assert set(prepare.traces_at(TRACE_RUN, 10_000)["step"]) == {100}
    late = Run(name="late", traces=TRACE_RUN.traces.filter(pl.col("step") > 0))
    assert prepare.traces_at(late, 10).is_empty()  # nothing logged yet at step 10


# --- rates and phase bands -----------------------------------------------------------------------


def quality_frame(n: int = 400) -> pl.DataFrame:
    status = ["ECONOMIC WIN" if i % 4 else "TAX ONLY" for i in range(n)]  # 3 wins in 4
    status[::10] = ["AUDIT-POS"] * len(status[::10])  # audits do not count
    confidence = [s == "ECONOMIC WIN" and i % 2 == 0 for i, s in enumerate(status)]
    return schema.conform(
        pl.DataFrame(
            {
                "step": list(range(1200, 1200 + n)),
                "status": status,
                "confidence": confidence,
                "delta_ce": [0.0] * n,
            }
        ),
        schema.QUALITY,
    )


def test_rolling_rates_over_policy_steps_only() -> None:
    q = quality_frame()
    rates = prepare.rolling_rates(Run(name="r", quality=q), window=100)
    assert rates.columns == ["run", "step", "win_rate", "confidence_rate"]
    policy = q.filter(pl.col("status").is_in(["ECONOMIC WIN", "TAX ONLY"]))
    assert set(rates["step"]) <= set(policy["step"])
    win = (policy["status"] == "ECONOMIC WIN").cast(pl.Float64).to_numpy()
    conf = policy["confidence"].cast(pl.Float64).to_numpy()
    last = rates.row(-1, named=True)
    assert last["step"] == policy["step"][-1]
    assert last["win_rate"] == pytest.approx(win[-100:].mean())
    assert last["confidence_rate"] == pytest.approx(conf[-100:].mean())
    assert 0.6 < rates["win_rate"].drop_nulls().mean() < 0.9
    thin = prepare.rolling_rates(Run(name="r", quality=q), window=100, max_points=50)
    assert thin.height <= 2 * 50  # bounded (see the next test for the exact budget)
    assert thin["step"][-1] == policy["step"][-1]
    assert prepare.rolling_rates(Run(name="e")).is_empty()


def test_rolling_rates_of_several_runs_and_as_series() -> None:
    q = quality_frame()
    runs = [Run(name="a", quality=q), Run(name="none"), Run(name="b", quality=q)]
    rr = prepare.rolling_rates_of(runs, window=50)
    assert rr["run"].unique(maintain_order=True).to_list() == ["a", "b"]
    alone = prepare.rolling_rates(runs[0], 50, prepare.points_per_run(3))
    assert rr.filter(pl.col("run") == "a").equals(alone)
    assert prepare.rolling_rates_of([Run(name="none")]).is_empty()
    frame = pl.DataFrame({"run": ["a"] * 3, "step": [1, 2, 3], "win_rate": [None, 0.5, 0.25]})
    s = prepare.as_series(frame, "win_rate")
    assert s.columns == ["run", "step", "value", "smooth"]
    assert s["step"].to_list() == [2, 3]  # no value, no point
    assert s["value"].to_list() == s["smooth"].to_list() == [0.5, 0.25]


def test_rolling_rates_respects_max_points() -> None:
    rates = prepare.rolling_rates(Run(name="r", quality=quality_frame()), window=100, max_points=50)
    assert rates.height <= 50


def test_phase_bands_on_the_elapsed_time_axis() -> None:
    ph = pl.DataFrame(
        {
            "phase": ["force_warmup", "gate_learning", "economic"],
            "start": [0, 800, 1200],
            "end": [799, 1199, 2999],
            "source": ["log", "log", "log"],
            "end_source": ["", "", ""],
        }
    )
    by_step = prepare.phase_bands(ph)
    assert by_step["start"].to_list() == [0.0, 800.0, 1200.0]
    assert by_step["end"].to_list() == [800.0, 1200.0, 3000.0]  # drawn up to the next phase
    assert by_step["label"].to_list() == ["force-2 warmup", "gate learning", "economic control"]
    # Two seconds per step: minute m ends step 30·m − 1.
    frame = prepare.per_step(Run(name="r", steps=steps_frame(3001, dt_ms=[2000.0] * 3001)))
    by_time = prepare.phase_bands(ph, frame, "elapsed_min")
    minutes = frame["elapsed_min"].to_numpy()
    assert by_time["start"].to_list() == pytest.approx([minutes[0], minutes[800], minutes[1200]])
    assert by_time["end"].to_list() == pytest.approx([minutes[800], minutes[1200], minutes[3000]])
    assert by_time["start"][2] == pytest.approx(1201 * 2 / 60)
    assert prepare.phase_bands(ph.clear()).is_empty()


def test_event_markers() -> None:
    run = Run(
        name="r",
        steps=steps_frame(100, dt_ms=[60_000.0] * 100, audit=[i % 25 == 0 for i in range(100)]),
    )
    run.meta = {"deadband_step": 40, "resume_steps": [70]}
    frames = {"r": prepare.per_step(run)}
    m = prepare.event_markers([run], frames, "step", None, audits=False)
    assert sorted(zip(m["step"], m["kind"], strict=True)) == [
        (40, "deadband engaged"),
        (70, "resumed from checkpoint"),
    ]
    assert (m["x"] == m["step"].cast(pl.Float64)).all()
    with_audits = prepare.event_markers([run], frames, "step", (0, 60), audits=True)
    assert sorted(with_audits["step"]) == [0, 25, 40, 50]
    by_time = prepare.event_markers([run], frames, "elapsed_min", None, audits=False)
    assert sorted(by_time["x"]) == [41.0, 71.0]  # one minute per step, counted at the step's end


def test_histogram_bins_share_bins_across_runs() -> None:
    data = pl.DataFrame(
        {
            "run": ["a"] * 100 + ["b"] * 100,
            "delta_ce": list(np.linspace(-1, 1, 100)) + [0.5] * 99 + [math.inf],
        }
    )
    bins = prepare.histogram_bins(data, "delta_ce", bins=10)
    assert bins.group_by("run").agg(pl.col("n").sum()).sort("run")["n"].to_list() == [100, 99]
    edges = bins.select("lo", "hi").unique()
    assert (edges["hi"] > edges["lo"]).all()
    widths = (edges["hi"] - edges["lo"]).to_numpy()
    assert widths == pytest.approx(np.full(len(widths), widths[0]))


def test_trace_timeline_marks_audit_steps_instead_of_classifying_them() -> None:
    steps = schema.conform(pl.DataFrame({"step": [50, 100], "audit": [False, True]}), schema.STEPS)
    traces = pl.DataFrame(
        {
            "step": [50, 100],
            "layer": [0, 0],
            "s_trace": [[1.0, 0.5, 0.5, 0.5], [1.0, 1.0, 0.0, 0.0]],
        },
        schema=schema.TRACES,
    )
    cells = prepare.trace_timeline(Run(name="r", steps=steps, traces=traces))
    assert cells.sort("step")["pattern"].to_list() == ["stuck_half", patterns.FORCED]


def test_trace_timeline_marks_the_force_warmup_as_forced() -> None:
    steps = schema.conform(pl.DataFrame({"step": [50, 900]}), schema.STEPS)
    healthy = [1.0, 0.82, 0.23, 0.04]
    traces = pl.DataFrame(
        {"step": [50, 900], "layer": [0, 0], "s_trace": [healthy, healthy]}, schema=schema.TRACES
    )
    cells = prepare.trace_timeline(Run(name="r", steps=steps, traces=traces), force_end=800)
    assert cells.sort("step")["pattern"].to_list() == [patterns.FORCED, "healthy"]


# --- page helpers: extents, domains, selections --------------------------------------------------


def test_step_extent() -> None:
    frames = [steps_frame(5).with_columns(pl.col("step") + 10), steps_frame(3), pl.DataFrame()]
    assert prepare.step_extent(frames) == (0, 14)
    assert prepare.step_extent([steps_frame(1).with_columns(pl.lit(7).alias("step"))]) == (7, 8)
    assert prepare.step_extent([]) == (0, 1)


def test_clamp_range() -> None:
    assert prepare.clamp_range((5, 50), 10, 40) == (10, 40)
    assert prepare.clamp_range((12, 20), 10, 40) == (12, 20)
    assert prepare.clamp_range((50, 60), 10, 40) == (40, 40)


def test_value_domain_is_shared_across_frames() -> None:
    a = pl.DataFrame({"value": [1.0, 3.0]})
    b = pl.DataFrame({"value": [-2.0, 0.5]})
    assert prepare.value_domain([a, pl.DataFrame(), b]) == (-2.0, 3.0)
    assert prepare.value_domain([pl.DataFrame()]) is None


def test_layer_diffs_against_the_baseline() -> None:
    lay = layers_frame(range(0, 100, 10), 2, lambda s, layer: float(s + layer))
    base = prepare.layer_grid(Run(name="b", layers=lay), "k", 5)
    other = base.with_columns(pl.col("value") + 1.5)
    diffs = prepare.layer_diffs({"o": other, "b": base, "p": base}, "b")
    assert list(diffs) == ["o", "p"]
    assert diffs["o"]["value"].to_list() == [1.5] * base.height
    assert prepare.layer_diffs({"o": other}, "b") == {}


def test_layer_metrics_only_what_some_run_logged() -> None:
    lay = layers_frame(range(0, 50, 10), 2, lambda s, layer: 2.0)
    cols = [m.column for m in prepare.layer_metrics([Run(name="a", layers=lay), Run(name="e")])]
    assert "k" in cols
    assert "step" not in cols and "layer" not in cols
    assert all(lay[c].is_not_null().any() for c in cols)
    assert prepare.layer_metrics([Run(name="e")]) == []


def test_default_step_metrics() -> None:
    assert prepare.default_step_metrics(["steps.avg_k", "steps.lm_loss", "steps.x"]) == [
        "steps.lm_loss",
        "steps.avg_k",
    ]
    assert prepare.default_step_metrics([]) == []


def test_trace_steps_and_traces_of_several_runs() -> None:
    later = Run(name="later", traces=TRACE_RUN.traces.with_columns(pl.col("step") + 25))
    runs = [TRACE_RUN, later, Run(name="none")]
    assert prepare.runs_with(runs, "traces") == [TRACE_RUN, later]
    assert prepare.trace_steps(runs) == sorted({*TRACE_RUN.traces["step"], *later.traces["step"]})
    curves = prepare.traces_of(runs, 100)
    assert set(curves["series"]) == {"t @ 100", "later @ 75"}
    assert prepare.traces_of([Run(name="none")], 100).is_empty()


def test_pattern_share_bars_and_table() -> None:
    from analysis_helpers import make_run

    from ponder_parse.analysis import phases

    runs = [make_run("a"), make_run("b", pathology="not_stopping"), Run(name="e")]
    shares = prepare.pattern_share_bars(runs, {r.name: phases.phases(r) for r in runs})
    assert set(shares["run"]) == {"a", "b"}
    assert set(shares["phase_label"]) <= set(phases.PHASE_LABELS.values())
    ranks = dict(zip(shares["pattern"], shares["pattern_rank"], strict=True))
    assert all(ranks[p] == patterns.TIMELINE_PATTERNS.index(p) for p in ranks)
    by_group = shares.group_by("run", "phase").agg(pl.col("share").sum())
    assert by_group["share"].to_list() == pytest.approx([1.0] * by_group.height)
    table = prepare.pattern_share_table(shares)
    assert table.columns == ["run", "phase", "pattern", "n", "share"]
    assert table.rows() == table.sort("run", "phase", "pattern").rows()
    assert prepare.pattern_share_bars([Run(name="e")], {}).is_empty()


def test_generation_steps_and_samples_at() -> None:
    gen = schema.conform(
        pl.DataFrame({"step": [500, 500, 1000], "sample": [0, 1, 0], "output": ["a", "b", "c"]}),
        schema.GENERATIONS,
    )
    other = schema.conform(pl.DataFrame({"step": [1500], "sample": [0]}), schema.GENERATIONS)
    runs = [Run(name="a", generations=gen), Run(name="b", generations=other), Run(name="e")]
    assert prepare.runs_with(runs, "generations") == runs[:2]
    assert prepare.generation_steps(runs) == [500, 1000, 1500]
    assert prepare.samples_at(runs[0], 500)["output"].to_list() == ["a", "b"]
    assert prepare.samples_at(runs[0], 1500).is_empty()


def test_failed_generations_keep_their_run_listed() -> None:
    gen = schema.conform(pl.DataFrame({"step": [500], "sample": [1]}), schema.GENERATIONS)
    failed = schema.conform(
        pl.DataFrame(
            {
                "line_no": [9],
                "step": [1000],
                "kind": ["generation_failed"],
                "text": ["Generation failed: index 65535 is out of bounds"],
            }
        ),
        schema.EVENTS,
    )
    runs = [Run(name="a", generations=gen), Run(name="f", events=failed), Run(name="e")]
    assert prepare.runs_with_generations(runs) == runs[:2]
    assert prepare.generation_steps(runs) == [500, 1000]
    assert prepare.failures_at(runs[1], 1000) == [
        "generation failed at step 1000: index 65535 is out of bounds"
    ]
    assert prepare.failures_at(runs[1], 500) == []
    assert prepare.generation_failures(runs[0]).is_empty()


def test_generations_open_where_most_runs_sampled() -> None:
    def sampled(name: str, steps: list[int]) -> Run:
        gen = pl.DataFrame({"step": steps, "sample": [1] * len(steps)})
        return Run(name=name, generations=schema.conform(gen, schema.GENERATIONS))

    short = [sampled(f"s{i}", [500, 1000]) for i in range(3)]
    runs = [*short, sampled("long", [500, 1000, 1500, 2000])]
    assert prepare.default_generation_step(runs) == 1000
    assert prepare.default_generation_step(runs[3:]) == 2000
    assert prepare.default_generation_step([sampled("a", [500]), sampled("b", [1000])]) == 1000
    assert prepare.default_generation_step([Run(name="e")]) is None


def test_reference_labels_stay_short_when_many_runs_share_a_line() -> None:
    """A line nine runs share says what it is and how many share it; the names (which
    would push the chart off the screen) are for the tooltip."""
    names = [f"lambda_min=0.05,seed={i},a_long_run_name" for i in range(9)]
    refs = pl.DataFrame(
        {
            "run": [*names, "solo"],
            "y": [0.05] * 9 + [2.4],
            "what": ["λ_p max 5.00e-02"] * 9 + ["TARGET_K 2.40"],
            "label": [f"{n}: λ_p max 5.00e-02" for n in names] + ["solo: TARGET_K 2.40"],
        }
    )
    out = prepare.reference_labels(refs)
    assert out["label"].to_list() == ["λ_p max 5.00e-02 (9 runs)", "solo: TARGET_K 2.40"]
    assert out["run"].to_list() == [names[0], "solo"]
    assert out["runs"][0] == ", ".join(names)


# --- zoom, hover, y range, groups, Pareto ------------------------------------------------------


def _two_runs() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run": ["a"] * 5 + ["b"] * 3,
            "step": [0, 10, 20, 30, 40, 0, 20, 40],
            "value": [1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0],
            "smooth": [1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 30.0],
        }
    )


def test_x_domain_is_the_step_range_exactly() -> None:
    assert prepare.x_domain(_two_runs(), "step", (7, 33)) == (7.0, 33.0)
    tok = _two_runs().with_columns((pl.col("step") * 100).alias("tokens"))
    assert prepare.x_domain(tok, "tokens", (0, 40)) == (0.0, 4000.0)


def test_hover_table_shares_a_grid_and_reads_the_last_value() -> None:
    hover = prepare.hover_table(_two_runs(), "step", (0.0, 40.0), n=5)
    assert hover is not None
    assert hover.frame["step"].to_list() == [0, 10, 20, 30, 40]
    assert hover.columns == {"v0": "a", "v1": "b"}
    assert hover.frame["v0"].to_list() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert hover.frame["v1"].to_list() == [10.0, 10.0, 20.0, 20.0, 30.0]
    # The grid depends on the domain only: another metric gets the same positions.
    other = prepare.hover_table(_two_runs().filter(pl.col("run") == "b"), "step", (0.0, 40.0), n=5)
    assert other is not None and other.frame["step"].equals(hover.frame["step"])
    # No value after a run's last point (a crashed run does not stretch on).
    short = prepare.hover_table(_two_runs().filter(pl.col("step") <= 20), "step", (0.0, 40.0), n=5)
    assert short is not None and short.frame["v0"].to_list() == [1.0, 2.0, 3.0, None, None]


def test_overlay_hover_gives_values_as_logged_and_dots_on_the_lines() -> None:
    """The overlay's crosshair lists each run's value of each metric as logged, and puts
    its dots where `overlay_series` draws the lines (each metric on its own 0–1 range)."""
    a = _two_runs()
    b = _two_runs().with_columns(pl.col("value") * 1000, pl.col("smooth") * 1000)
    parts = {"loss": a, "lr": b}
    hovers = {k: prepare.hover_table(v, "step", (0.0, 40.0), n=5) for k, v in parts.items()}
    got = prepare.overlay_hover(hovers, parts, normalize=True)
    assert got is not None
    assert sorted(got.texts.columns.values()) == ["loss · a", "loss · b", "lr · a", "lr · b"]
    assert got.runs == {c: label.split(" · ")[1] for c, label in got.texts.columns.items()}
    by = {label: c for c, label in got.texts.columns.items()}
    assert got.texts.frame[by["lr · b"]].to_list() == [
        10_000.0,
        10_000.0,
        20_000.0,
        20_000.0,
        30_000.0,
    ]
    drawn = prepare.overlay_series(parts, normalize=True)
    lr_b = drawn.filter((pl.col("metric") == "lr") & (pl.col("run") == "b")).sort("step")
    for step, y in zip(got.dots.frame["step"], got.dots.frame[by["lr · b"]], strict=True):
        line = lr_b.filter(pl.col("step") <= step).tail(1)["smooth"].item()
        assert y == pytest.approx(line)
        assert 0.0 <= y <= 1.0
    # On one shared axis the dots are the values as logged.
    raw = prepare.overlay_hover(hovers, parts, normalize=False)
    assert raw is not None and raw.dots.frame.equals(raw.texts.frame)
    assert prepare.overlay_hover({"loss": None}, parts, normalize=True) is None


def test_clip_spans_to_the_zoom() -> None:
    spans = pl.DataFrame(
        {"start": [0.0, 100.0, 500.0], "end": [100.0, 500.0, 900.0], "label": list("abc")}
    )
    out = prepare.clip_spans(spans, (200.0, 600.0))
    assert out is not None
    assert out.rows() == [(200.0, 500.0, "b"), (500.0, 600.0, "c")]


def test_y_domain_ignores_outliers_and_fits_log() -> None:
    vals = [5.0] * 200 + [6.0] * 200 + [1000.0]
    s = pl.DataFrame(
        {"run": ["a"] * len(vals), "step": range(len(vals)), "value": vals, "smooth": vals}
    )
    assert prepare.y_domain(s) is None  # linear, outliers kept: the axis fits itself
    lo, hi = prepare.y_domain(s, ignore_outliers=True)
    assert 4.9 < lo < 5.0 and 6.0 < hi < 6.1
    lo, hi = prepare.y_domain(s.filter(pl.col("value") < 100), log=True)
    assert 4.8 < lo < 5.0 and 6.0 < hi < 6.3  # not a nice 1–10


@pytest.mark.parametrize("band", ["minmax", "std", "stderr"])
def test_group_series_bands(band: str) -> None:
    s = pl.DataFrame(
        {
            "run": ["a", "b", "c"] * 2,
            "step": [0, 0, 0, 1, 1, 1],
            "value": [1.0, 3.0, 9.0, 2.0, 4.0, 9.0],
            "smooth": [1.0, 3.0, 9.0, 2.0, 4.0, 9.0],
        }
    )
    lines, bands = prepare.group_series(s, {"g": ["a", "b"], "c": ["c"]}, band=band)
    g = lines.filter(pl.col("run") == "g").sort("step")
    assert g["smooth"].to_list() == [2.0, 3.0]
    assert lines.filter(pl.col("run") == "c")["smooth"].to_list() == [9.0, 9.0]
    b0 = bands.sort("step").row(0, named=True)
    sd = float(np.std([1.0, 3.0], ddof=1))
    expected = {
        "minmax": (1.0, 3.0),
        "std": (2 - sd, 2 + sd),
        "stderr": (2 - sd / 2**0.5, 2 + sd / 2**0.5),
    }
    assert (b0["lo"], b0["hi"]) == pytest.approx(expected[band])


def test_config_groups_and_keys() -> None:
    runs = [
        Run(name="r1", hparams={"target_k": 2.4, "seed": 0}),
        Run(name="r2", hparams={"target_k": 2.4, "seed": 1}),
        Run(name="r3", hparams={"target_k": 1.3, "seed": 0}),
    ]
    assert prepare.group_keys(runs) == ["target_k", "seed"]
    assert prepare.config_groups(runs, "target_k") == {
        "target_k=2.4": ["r1", "r2"],
        "target_k=1.3": ["r3"],
    }


def test_pareto_front() -> None:
    d = pl.DataFrame(
        {
            "run": list("abcdef"),
            "c": [1.0, 2.0, 3.0, 2.5, None, 4.0],
            "lm": [5.0, 4.0, 3.0, 4.5, 1.0, 3.0],
        }
    )
    front = prepare.pareto_front(d, "c", "lm")
    assert set(front.filter("on_front")["run"]) == {"a", "b", "c"}
    assert front["c"].to_list()[:5] == [1.0, 2.0, 2.5, 3.0, 4.0]
    # a column the sweep table could not type as numbers (every run lacks it): no front,
    # and a chart can still be drawn from it
    untyped = d.with_columns(pl.lit(None, pl.String).alias("c"))
    front = prepare.pareto_front(untyped, "c", "lm")
    assert front.schema["c"] == pl.Float64 and not front["on_front"].any()


def test_layer_diff_has_no_stripes_where_cells_differ_in_width() -> None:
    grid = pl.DataFrame(
        {"layer": [0, 0, 0], "start": [0, 10, 20], "end": [10, 20, 30], "value": [1.0, 2.0, 3.0]}
    )
    # the baseline's first cell covers two buckets (an audit step was left out of 10–20)
    base = pl.DataFrame({"layer": [0, 0], "start": [0, 20], "end": [20, 30], "value": [0.5, 1.0]})
    diff = prepare.layer_diff(grid, base)
    assert diff["start"].to_list() == [0, 10, 20]
    assert diff["value"].to_list() == [0.5, 1.5, 2.0]
    # past the baseline's end: no cell (nothing to subtract)
    longer = pl.concat(
        [grid, pl.DataFrame({"layer": [0], "start": [30], "end": [40], "value": [9.0]})]
    )
    assert prepare.layer_diff(longer, base)["start"].to_list() == [0, 10, 20]


def test_per_step_compute_and_compute_spent() -> None:
    steps = pl.DataFrame(
        {
            "step": [0, 1, 2],
            "avg_k": [1.0, 2.0, 3.0],
            "dt_ms": [1000.0] * 3,
            "tok_per_sec": [10.0] * 3,
        }
    )
    run = Run(name="r", steps=schema.conform(steps, schema.STEPS))
    df = prepare.per_step(run)
    assert df["compute"].to_list() == [1.0, 3.0, 6.0]  # Σ mean passes
    spent = prepare.compute_spent({"r": df})
    assert spent.row(0) == ("r", pytest.approx(10 * (1 + 2 + 3)))  # passes × tokens


def test_layer_profile_is_the_mean_per_layer_and_run() -> None:
    run = Run(name="r", layers=layers_frame(range(0, 100, 10), 3, lambda s, layer: layer + s / 100))
    prof = prepare.layer_profile([run], "k", step_range=(0, 40))
    assert prof["layer"].to_list() == [0, 1, 2]
    assert prof["value"].to_list() == pytest.approx([0.2, 1.2, 2.2])  # steps 0–40: mean s/100 = 0.2
    assert prof["n"].to_list() == [5, 5, 5]
    assert prepare.layer_profile([run], "missing").is_empty()


def test_layer_lines_keep_every_layers_spike_in_the_range() -> None:
    def value(s: int, layer: int) -> float:
        return 9.0 if (s, layer) == (370, 1) else layer + s / 1000

    run = Run(name="r", layers=layers_frame(range(0, 1000), 3, value))
    lines = prepare.layer_lines(run, "k", step_range=(100, 800), max_points=40)
    assert lines.columns == ["layer", "step", "value"]
    assert sorted(lines["layer"].unique().to_list()) == [0, 1, 2]
    assert lines["step"].min() >= 100 and lines["step"].max() <= 800
    assert lines.group_by("layer").len()["len"].max() <= 40  # thinned per layer
    # The one-step spike of layer 1 survives the thinning.
    assert lines.filter(pl.col("layer") == 1)["value"].max() == 9.0
    assert lines.filter(pl.col("layer") == 0)["value"].max() < 1.0
    assert prepare.layer_lines(run, "missing").is_empty()
    assert prepare.layer_lines(run, "k", step_range=(5000, 6000)).is_empty()


def test_layer_lines_leave_audit_steps_out_unless_asked() -> None:
    steps = schema.conform(
        pl.DataFrame(
            {"step": list(range(0, 100, 10)), "audit": [s in (30, 70) for s in range(0, 100, 10)]}
        ),
        schema.STEPS,
    )
    run = Run(
        name="r", steps=steps, layers=layers_frame(range(0, 100, 10), 2, lambda s, layer: 1.0)
    )
    kept = set(prepare.layer_lines(run, "k")["step"].to_list())
    assert kept == set(range(0, 100, 10)) - {30, 70}
    assert {30, 70} <= set(prepare.layer_lines(run, "k", include_audit=True)["step"].to_list())


def _series(values: list[float], run: str = "a") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "run": [run] * len(values),
            "step": list(range(len(values))),
            "value": values,
            "smooth": values,
        }
    )


def test_overlay_series_scales_each_metric_to_its_own_range() -> None:
    loss = pl.concat([_series([4.0, 3.0, 2.0]), _series([5.0, 3.0, 2.5], "b")])
    lr = _series([1e-4, 3e-4, 2e-4])
    flat = _series([7.0, 7.0, 7.0])
    out = prepare.overlay_series({"loss": loss, "lr": lr, "flat": flat}, normalize=True)
    assert set(out["metric"].unique()) == {"loss", "lr", "flat"}
    by = {m: out.filter(pl.col("metric") == m) for m in ("loss", "lr", "flat")}
    # One scale for every run of a metric: 2.0 → 0, 5.0 → 1.
    assert by["loss"]["value"].to_list() == pytest.approx([2 / 3, 1 / 3, 0.0, 1.0, 1 / 3, 1 / 6])
    assert by["lr"]["value"].to_list() == pytest.approx([0.0, 1.0, 0.5])
    assert by["flat"]["value"].to_list() == [0.5] * 3  # a flat metric sits in the middle
    assert by["lr"]["value_raw"].to_list() == [1e-4, 3e-4, 2e-4]  # the tooltip's values
    raw = prepare.overlay_series({"loss": loss, "lr": lr}, normalize=False)
    assert raw["value"].to_list() == raw["value_raw"].to_list()


def test_overlay_series_scales_log_metrics_on_their_logarithm() -> None:
    lam = _series([1e-6, 1e-5, 1e-4, 0.0])
    out = prepare.overlay_series({"λ": lam}, normalize=True, log_metrics={"λ"})
    assert out["value"].to_list()[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert out["value"][3] is None  # a zero has no place on a log scale
    assert prepare.overlay_series({}, normalize=True).is_empty()
    inf = _series([1.0, float("inf"), 3.0])
    assert prepare.overlay_series({"x": inf}, normalize=True)["value"][2] == pytest.approx(1.0)


def test_per_step_of_some_columns_matches_the_whole_and_reads_only_those(tmp_path) -> None:
    from pathlib import Path

    from polars.testing import assert_frame_equal

    from ponder_parse.files.store import open_store, reader

    sample = Path(__file__).parents[2] / "sample_runs" / "baseline,seed=0"
    store = open_store(tmp_path / "store", create=True)
    assert not store.ingest([sample], use_processes=False).failures
    (stored,) = store.stored_runs()
    memory = store.load(stored.run_id)
    reader.TABLE_CACHE.clear()
    reads, read_bytes = reader.TABLE_CACHE.reads, reader.TABLE_CACHE.read_bytes
    cols = ["lm_loss", "delta_ce"]
    got = prepare.per_step(stored, cols)
    want = prepare.per_step(memory)
    assert got.columns == [*prepare.AXIS_COLUMNS, "lm_loss", "delta_ce", *prepare.PER_STEP_AXES]
    assert_frame_equal(got, want.select(got.columns), check_exact=True)
    assert_frame_equal(got, prepare.per_step(memory, cols), check_exact=True)
    # Two reads (the steps' columns, the quality's), neither a whole table.
    assert reader.TABLE_CACHE.reads == reads + 2
    whole = memory.steps.estimated_size() + memory.quality.estimated_size()
    assert reader.TABLE_CACHE.read_bytes - read_bytes < whole / 3
    assert stored.loaded_tables() == ["steps", "quality"]
    # Only the axes: no quality read at all.
    reader.TABLE_CACHE.clear()
    assert prepare.per_step(stored, prepare.SPENT_COLUMNS).columns == [
        *prepare.AXIS_COLUMNS,
        *prepare.PER_STEP_AXES,
    ]
    assert stored.loaded_tables() == ["steps"]
