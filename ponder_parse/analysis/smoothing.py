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
