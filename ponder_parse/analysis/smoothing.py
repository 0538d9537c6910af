"""TensorBoard-style exponential smoothing, vectorised.

TensorBoard's smoother keeps `last = last·w + (1−w)·x` over finite points and divides by
`1 − w^n` (n = finite points seen so far) so the start is not pulled toward 0. Users
compare curves against TensorBoard and W&B, which both use exactly this, so the numbers
must match theirs rather than merely look similar.

That debiased recurrence is algebraically the "adjusted" exponentially weighted mean
`Σ w^(n−i)·x_i / Σ w^(n−i)`, which is Polars' `ewm_mean(alpha=1−w, adjust=True)`. With
`ignore_nulls=True` Polars weights by position among non-null values only, which is
TensorBoard's "n counts only finite points". Non-finite values are therefore turned into
nulls for the smoothing, then written back unchanged: a NaN or inf passes through and
does not poison later values, and nulls (gaps) stay null.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

DEFAULT_WEIGHT = 0.6
"""TensorBoard's and W&B's default smoothing weight."""


def ema_expr(column: str, weight: float = DEFAULT_WEIGHT) -> pl.Expr:
    """Smoothed `column` as an expression (use `.over(...)` for per-group smoothing)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    c = pl.col(column).cast(pl.Float64)
    if weight == 0.0:
        return c
    finite = c.is_finite().fill_null(False)
    smoothed = (
        pl.when(finite)
        .then(c)
        .otherwise(None)
        .ewm_mean(alpha=1.0 - weight, adjust=True, ignore_nulls=True, min_samples=1)
    )
    return pl.when(finite).then(smoothed).otherwise(c)


def ema(
    df: pl.DataFrame,
    columns: str | Sequence[str],
    weight: float = DEFAULT_WEIGHT,
    by: str | Sequence[str] | None = None,
    suffix: str = "",
) -> pl.DataFrame:
    """Smooth `columns` in row order (sort by x first), separately per `by` group.

    With an empty `suffix` the columns are replaced; otherwise the smoothed values are
    added as `<column><suffix>` so a chart can draw raw and smoothed together. Weight 0 is
    the identity; weights must be below 1 (at 1 nothing would ever move).
    """
    cols = [columns] if isinstance(columns, str) else list(columns)
    groups = [by] if isinstance(by, str) else list(by or [])
    exprs = []
    for col in cols:
        e = ema_expr(col, weight)
        if groups:
            e = e.over(groups)
        exprs.append(e.alias(f"{col}{suffix}"))
    return df.with_columns(exprs)


EMA = "ema"
TIME_EMA = "time_ema"
RUNNING = "running"
SMOOTHERS: dict[str, str] = {
    EMA: "EMA (TensorBoard, debiased)",
    TIME_EMA: "time-weighted EMA (W&B)",
    RUNNING: "running average",
}
"""The smoothing methods a chart offers, with what the picker says of each."""


def _finite(c: pl.Expr) -> pl.Expr:
    return c.is_finite().fill_null(False)


def running_window(weight: float) -> int:
    """The trailing window (points) of a running average as strong as an EMA of `weight`:
    an EMA's weights sum like a window of `1 / (1 − w)` points."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    return max(1, round(1.0 / (1.0 - weight)))


def running_average_expr(column: str, window: int) -> pl.Expr:
    """Mean of the last `window` finite points (fewer at the start): W&B's running
    average. Non-finite values pass through unchanged and are left out of the means."""
    c = pl.col(column).cast(pl.Float64)
    finite = _finite(c)
    smoothed = pl.when(finite).then(c).otherwise(None).rolling_mean(window, min_samples=1)
    return pl.when(finite).then(smoothed).otherwise(c)


def time_weighted_ema_expr(column: str, x: str, weight: float, spacing: float) -> pl.Expr:
    """An EMA whose decay follows the distance along `x`, not the point count: a point
    `spacing` after the previous one keeps `weight` of the past, one twice as far keeps
    `weight²`. Irregular logging (a gap, a resumed run, a denser stretch) then smooths
    the same per step, as W&B's time-weighted EMA does. `x` must be sorted."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    c = pl.col(column).cast(pl.Float64)
    if weight == 0.0:
        return c
    # weight per `spacing` ⇔ half of the past left after spacing · ln ½ / ln w
    half_life = max(1, round(max(spacing, 1.0) * math.log(0.5) / math.log(weight)))
    finite = _finite(c)
    smoothed = (
        pl.when(finite)
        .then(c)
        .otherwise(None)
        .ewm_mean_by(pl.col(x).cast(pl.Int64), half_life=f"{half_life}i")
    )
    return pl.when(finite).then(smoothed).otherwise(c)


def smooth(
    df: pl.DataFrame,
    column: str,
    *,
    method: str = EMA,
    weight: float = DEFAULT_WEIGHT,
    x: str = "step",
    suffix: str = "_smooth",
) -> pl.DataFrame:
    """`column` smoothed by `method` (`SMOOTHERS`) as `<column><suffix>`, in row order of
    one series sorted by `x`. `weight` is the strength of each method in the same units:
    the EMA weight, the time-weighted EMA's weight per typical logging interval, and a
    running-average window of `running_window(weight)` points."""
    out = f"{column}{suffix}"
    if weight == 0.0:
        return df.with_columns(pl.col(column).cast(pl.Float64).alias(out))
    if method == EMA:
        return df.with_columns(ema_expr(column, weight).alias(out))
    if method == RUNNING:
        return df.with_columns(running_average_expr(column, running_window(weight)).alias(out))
    if method == TIME_EMA:
        gaps = df[x].cast(pl.Float64).diff().drop_nulls()
        gaps = gaps.filter(gaps > 0)
        spacing = float(gaps.median()) if gaps.len() else 1.0  # type: ignore[arg-type]
        return df.with_columns(time_weighted_ema_expr(column, x, weight, spacing).alias(out))
    raise ValueError(f"unknown smoothing method {method!r}; one of {', '.join(SMOOTHERS)}")
