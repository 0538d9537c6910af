"""Min/max bucket downsampling that never hides a spike.

Sending 10 000 steps × dozens of series to the browser is slow, and the usual cure
(TensorBoard's reservoir sample) drops exactly the loss spikes people look for. Here the
visible x range is cut into equal-width buckets and each bucket keeps its minimum and its
maximum point, plus the first and last point of the range: a line drawn through the kept
points (ordered by x) reaches every extreme the full series reaches. Zooming in passes a
narrower `x_range`, which re-buckets at full resolution, as W&B does.

Output is **long format**: one row per kept point, columns `*by, x, "series", "value"`,
sorted by `*by, series, x`. Each (group, series) is downsampled on its own, because the
extremes of different metrics fall on different steps; long format also feeds Altair's
`color`/`facet` encodings directly. Null and non-finite values are dropped (a chart
cannot draw them; the red-flag table reports NaN/inf).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ponder_parse.schema import TableSchema

DEFAULT_MAX_POINTS = 2000
MIN_MAX_POINTS = 4  # first + last + one bucket's min and max


def downsample(
    df: pl.DataFrame,
    x: str = "step",
    columns: str | Sequence[str] | None = None,
    max_points: int = DEFAULT_MAX_POINTS,
    x_range: tuple[float | None, float | None] | None = None,
    by: str | Sequence[str] | None = None,
) -> pl.DataFrame:
    """At most `max_points` points per (`by` group, series), every bucket extreme kept.

    `columns` defaults to every numeric column except `x` and `by`. `x_range` is
    inclusive; either end may be None (open).
    """
    if max_points < MIN_MAX_POINTS:
        raise ValueError(f"max_points must be at least {MIN_MAX_POINTS}, got {max_points}")
    groups = [by] if isinstance(by, str) else list(by or [])
    if columns is None:
        cols = [
            c
            for c, t in df.schema.items()
            if c != x and c not in groups and (t.is_numeric() or t == pl.Boolean)
        ]
    else:
        cols = [columns] if isinstance(columns, str) else list(columns)
    schema: TableSchema = {
        **{g: df.schema[g] for g in groups},
        x: df.schema[x],
        "series": pl.String,
        "value": pl.Float64,
    }
    if not cols or df.is_empty():
        return pl.DataFrame(schema=schema)

    data = df.select([*groups, x, *cols])
    if x_range is not None:
        lo, hi = x_range
        if lo is not None:
            data = data.filter(pl.col(x) >= lo)
        if hi is not None:
            data = data.filter(pl.col(x) <= hi)
    long = (
        data.with_columns(pl.col(c).cast(pl.Float64) for c in cols)
        .unpivot(on=cols, index=[*groups, x], variable_name="series", value_name="value")
        .filter(pl.col("value").is_finite().fill_null(False) & pl.col(x).is_not_null())
        .sort([*groups, "series", x], maintain_order=True)
    )
    if long.is_empty():
        return pl.DataFrame(schema=schema)

    keys = [*groups, "series"]
    n_buckets = (max_points - 2) // 2
    xf = pl.col(x).to_physical().cast(pl.Float64)
    lo_e, hi_e = xf.min().over(keys), xf.max().over(keys)
    span = hi_e - lo_e
    bucket = (
        pl.when(span > 0)
        .then(((xf - lo_e) / span * n_buckets).floor().clip(0, n_buckets - 1))
        .otherwise(0.0)
        .cast(pl.Int64)
    )
    bk = [*keys, "_bucket"]
    long = long.with_row_index("_i").with_columns(_bucket=bucket)
    # Group-bys rather than window expressions: one pass per level, far less work on a
    # sweep's worth of series.
    per_key = long.group_by(keys).agg(
        pl.col("_i").min().alias("first"), pl.col("_i").max().alias("last"), pl.len().alias("n")
    )
    per_bucket = long.group_by(bk).agg(
        pl.col("_i").get(pl.col("value").arg_max()).alias("max"),
        pl.col("_i").get(pl.col("value").arg_min()).alias("min"),
    )
    keep = pl.concat(
        [
            per_key.select(pl.col("first").alias("_i")),
            per_key.select(pl.col("last").alias("_i")),
            per_bucket.select(pl.col("max").alias("_i")),
            per_bucket.select(pl.col("min").alias("_i")),
        ]
    )
    whole = per_key.filter(pl.col("n") <= max_points).select(keys)  # small series: keep all
    out = long.join(keep.unique(), on="_i", how="semi")
    if whole.height:
        out = pl.concat([out, long.join(whole, on=keys, how="semi")]).unique("_i")
    out = out.sort("_i")
    return out.select(list(schema)).cast(pl.Schema(schema))
