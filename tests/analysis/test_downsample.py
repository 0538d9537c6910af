"""Min/max downsampling keeps every spike and respects the point budget."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ponder_parse.analysis.downsample import downsample


def _series(n: int = 10_000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    lm = 3.0 + rng.normal(0, 0.05, n)
    grad = 0.6 + rng.normal(0, 0.05, n)
    return pl.DataFrame({"step": np.arange(n), "lm_loss": lm, "grad_norm": grad})


def test_budget_and_every_spike_survives() -> None:
    df = _series()
    spikes = [137, 2050, 5003, 7777, 9998]
    dips = [600, 4321]
    df = df.with_columns(
        grad_norm=pl.when(pl.col("step").is_in(spikes))
        .then(pl.col("step").cast(pl.Float64) / 1000 + 5)
        .when(pl.col("step").is_in(dips))
        .then(-1.0)
        .otherwise(pl.col("grad_norm"))
    )
    out = downsample(df, columns=["lm_loss", "grad_norm"], max_points=2000)
    assert out.columns == ["step", "series", "value"]
    for name in ("lm_loss", "grad_norm"):
        s = out.filter(pl.col("series") == name)
        assert s.height <= 2000
        assert s["step"].is_sorted()
        assert s["value"].max() == df[name].max()
        assert s["value"].min() == df[name].min()
        assert s["step"][0] == 0 and s["step"][-1] == 9_999
    kept = set(out.filter(pl.col("series") == "grad_norm")["step"].to_list())
    assert set(spikes + dips) <= kept


def test_small_series_is_untouched() -> None:
    df = _series(500)
    out = downsample(df, columns="lm_loss", max_points=2000)
    assert out["value"].to_list() == df["lm_loss"].to_list()


def test_x_range_filters_first_and_rebuckets() -> None:
    df = _series()
    df = df.with_columns(
        lm_loss=pl.when(pl.col("step") == 5_100).then(99.0).otherwise(pl.col("lm_loss"))
    )
    out = downsample(df, columns=["lm_loss"], x_range=(5_000, 5_999), max_points=2000)
    assert out["step"].min() == 5_000 and out["step"].max() == 5_999
    assert out.height == 1_000  # a zoomed-in range fits the budget: full resolution
    open_end = downsample(df, columns=["lm_loss"], x_range=(9_500, None), max_points=100)
    assert open_end["step"].min() == 9_500 and open_end["step"].max() == 9_999


def test_per_run_budget() -> None:
    a = _series(10_000, 1).with_columns(run=pl.lit("a"))
    b = _series(3_000, 2).with_columns(run=pl.lit("b"))
    b = b.with_columns(
        lm_loss=pl.when(pl.col("step") == 1234).then(50.0).otherwise(pl.col("lm_loss"))
    )
    out = downsample(pl.concat([a, b]), columns=["lm_loss"], max_points=500, by="run")
    assert out.columns == ["run", "step", "series", "value"]
    counts = dict(out.group_by("run").len().iter_rows())
    assert counts["a"] <= 500 and counts["b"] <= 500
    assert 1234 in out.filter(pl.col("run") == "b")["step"].to_list()


def test_non_finite_and_null_are_dropped() -> None:
    df = pl.DataFrame({"step": [0, 1, 2, 3], "y": [1.0, math.nan, None, math.inf]})
    out = downsample(df, columns=["y"])
    assert out["step"].to_list() == [0]


def test_defaults_and_edge_cases() -> None:
    df = pl.DataFrame({"step": [0, 1], "y": [1, 2], "flag": [True, False], "name": ["a", "b"]})
    out = downsample(df)
    assert set(out["series"].to_list()) == {"y", "flag"}
    assert downsample(df.clear(), columns=["y"]).is_empty()
    assert downsample(df, columns=[]).is_empty()
    same_x = pl.DataFrame({"step": [5] * 10, "y": list(range(10))})
    assert downsample(same_x, columns="y", max_points=4).height <= 4
    with pytest.raises(ValueError):
        downsample(df, columns="y", max_points=3)


@given(
    st.lists(st.floats(-100, 100), min_size=1, max_size=400),
    st.integers(4, 60),
)
def test_budget_and_extremes_property(ys: list[float], max_points: int) -> None:
    df = pl.DataFrame({"step": list(range(len(ys))), "y": ys})
    out = downsample(df, columns="y", max_points=max_points)
    assert out.height <= max_points
    assert out["value"].max() == max(ys) and out["value"].min() == min(ys)
    assert out["step"][0] == 0 and out["step"][-1] == len(ys) - 1
    assert out["step"].is_sorted() and out["step"].n_unique() == out.height
