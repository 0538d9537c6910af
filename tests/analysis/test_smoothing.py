"""EMA smoothing matches TensorBoard's debiased smoother exactly."""

from __future__ import annotations

import math
import time

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ponder_parse.analysis import smoothing
from ponder_parse.analysis.smoothing import ema


def tensorboard_ema(values: list[float | None], weight: float) -> list[float | None]:
    """Straight transcription of TensorBoard's smoother (non-finite passes through)."""
    out: list[float | None] = []
    last, n = 0.0, 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight**n))
    return out


def _same(a: list[float | None], b: list[float | None]) -> bool:
    for x, y in zip(a, b, strict=True):
        if x is None or y is None:
            if x is not y:
                return False
        elif math.isnan(x) or math.isnan(y):
            if not (math.isnan(x) and math.isnan(y)):
                return False
        elif math.isinf(x) or math.isinf(y):
            if x != y:
                return False
        elif not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9):
            return False
    return True


values = st.one_of(
    st.floats(min_value=-1e3, max_value=1e3),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.none(),
)


@given(st.lists(values, max_size=60), st.sampled_from([0.0, 0.3, 0.6, 0.9, 0.99]))
def test_matches_reference(xs: list[float | None], weight: float) -> None:
    df = pl.DataFrame({"y": xs}, schema={"y": pl.Float64})
    got = ema(df, "y", weight)["y"].to_list()
    assert _same(got, tensorboard_ema(xs, weight))


def test_nan_does_not_poison_and_gaps_stay() -> None:
    df = pl.DataFrame({"y": [1.0, math.nan, None, 3.0, math.inf, 5.0]})
    got = ema(df, "y", 0.5)["y"].to_list()
    assert got[0] == 1.0
    assert math.isnan(got[1]) and got[2] is None and got[4] == math.inf
    assert got[3] == pytest.approx((0.5 * 1 + 3) / 1.5)
    assert math.isfinite(got[5])


def test_weight_zero_is_identity_and_constant_stays_constant() -> None:
    df = pl.DataFrame({"y": [3.0, 1.0, 2.0]})
    assert ema(df, "y", 0.0)["y"].to_list() == [3.0, 1.0, 2.0]
    const = ema(pl.DataFrame({"y": [2.5] * 50}), "y", 0.9)["y"].to_list()
    assert const == pytest.approx([2.5] * 50)


def test_groups_are_smoothed_separately_and_suffix() -> None:
    df = pl.DataFrame({"run": ["a", "b", "a", "b"], "y": [0.0, 10.0, 1.0, 20.0]})
    out = ema(df, ["y"], 0.5, by="run", suffix="_ema")
    assert out["y"].to_list() == [0.0, 10.0, 1.0, 20.0]
    expected_a = tensorboard_ema([0.0, 1.0], 0.5)
    expected_b = tensorboard_ema([10.0, 20.0], 0.5)
    assert out["y_ema"].to_list() == pytest.approx(
        [expected_a[0], expected_b[0], expected_a[1], expected_b[1]]
    )


def test_integer_columns_and_invalid_weight() -> None:
    out = ema(pl.DataFrame({"k": [1, 2, 3]}), "k", 0.5)
    assert out.schema["k"] == pl.Float64
    with pytest.raises(ValueError):
        ema(pl.DataFrame({"y": [1.0]}), "y", 1.0)
    with pytest.raises(ValueError):
        ema(pl.DataFrame({"y": [1.0]}), "y", -0.1)


def test_fast_enough_for_charts() -> None:
    rng = np.random.default_rng(0)
    df = pl.DataFrame({f"c{i}": rng.normal(size=10_000) for i in range(48)})
    df = df.with_columns(run=pl.Series(["a", "b"] * 5_000))
    t0 = time.perf_counter()
    ema(df, [f"c{i}" for i in range(48)], 0.6, by="run")
    assert time.perf_counter() - t0 < 2.0


def test_running_average_is_the_trailing_mean_of_finite_points() -> None:
    df = pl.DataFrame({"step": [0, 1, 2, 3, 4], "v": [1.0, 3.0, float("nan"), 5.0, 7.0]})
    out = smoothing.smooth(df, "v", method=smoothing.RUNNING, weight=0.5)  # window 2
    got = out["v_smooth"].to_list()
    assert got[:2] == [1.0, 2.0]
    assert got[2] != got[2]  # NaN passes through
    assert got[3:] == [5.0, 6.0]


def test_time_weighted_ema_decays_by_distance() -> None:
    df = pl.DataFrame({"step": [0, 10, 20, 50], "v": [0.0, 0.0, 0.0, 8.0]})
    out = smoothing.smooth(df, "v", method=smoothing.TIME_EMA, weight=0.5)["v_smooth"].to_list()
    # three logging intervals since the last point: 0.5³ of the past is kept
    assert out[-1] == pytest.approx(8.0 * (1 - 0.5**3))
    even = pl.DataFrame({"step": [0, 10, 20, 30], "v": [0.0, 0.0, 0.0, 8.0]})
    assert smoothing.smooth(even, "v", method=smoothing.TIME_EMA, weight=0.5)["v_smooth"][
        -1
    ] == pytest.approx(4.0)


def test_smooth_ema_matches_ema_and_rejects_unknown_methods() -> None:
    df = pl.DataFrame({"step": [0, 1, 2], "v": [1.0, 2.0, 4.0]})
    assert (
        smoothing.smooth(df, "v", weight=0.6)["v_smooth"].to_list()
        == smoothing.ema(df, "v", 0.6)["v"].to_list()
    )
    with pytest.raises(ValueError):
        smoothing.smooth(df, "v", method="gaussian")
    assert smoothing.running_window(0.9) == 10
