"""Column names and dtypes of every table a `Run` holds.

One vocabulary from file to chart: names follow the trainer's `stats.json` where it has
one (`lm_loss`, `k`, `p_mean`, `frac_ge2`, ...). Every table is built against these
schemas, so an empty run still has typed, correctly named columns and downstream code
never needs to special-case "no data".
"""

from __future__ import annotations

from typing import TypeAlias

import polars as pl

ColumnType: TypeAlias = pl.DataType | type[pl.DataType]
"""A column's dtype as a schema writes it: a class (`pl.Float64`) or an instance (`pl.List(F)`)."""
TableSchema: TypeAlias = dict[str, ColumnType]
"""Column names to dtypes, in column order: what every table is built and cast against."""

F = pl.Float64

STEPS: TableSchema = {
    "step": pl.Int64,
    "audit": pl.Boolean,
    "tot_loss": F,
    "lm_loss": F,
    "total_ponder": F,
    "ponder_raw": F,
    "reward": F,
    "lr": F,
    "grad_norm": F,
    "lambda_p": F,
    "deadband_active": pl.Boolean,
    "ctrl_err": F,
    "p_near_clamp": F,
    "mtp_loss": F,
    "aux_loss": F,
    "baton": F,
    "baton_lam": F,
    "pl_lm": F,
    "avg_exec": F,
    "avg_k": F,
    "avg_gap": F,
    "dt_ms": F,
    "tok_per_sec": F,
    "segment": pl.Int32,
}

LAYERS: TableSchema = {
    "step": pl.Int64,
    "layer": pl.Int32,
    "k_exec": pl.Int32,
    "k": F,
    "s_final": F,
    "avg_exec_token": F,
    "p95_exec_token": F,
    "frac_ge2": F,
    "frac_ge3": F,
    "frac_ge4": F,
    "ent": F,
    "p_mean": F,
    "p_std": F,
    "d_rel": F,
    "h_diff": F,
    "p_diff": F,
    "ponder_signal": F,
    "lambda_p": F,
}

TRACES: TableSchema = {
    "step": pl.Int64,
    "layer": pl.Int32,
    "s_trace": pl.List(F),
}

QUALITY: TableSchema = {
    "step": pl.Int64,
    "delta_ce": F,
    "delta_h": F,
    "coupon": F,
    "status": pl.String,
    "confidence": pl.Boolean,
}

LR_CHECKS: TableSchema = {
    "step": pl.Int64,
    "lr": F,
    "phase": pl.String,
}

EVENTS: TableSchema = {
    "line_no": pl.Int64,
    "step": pl.Int64,
    "kind": pl.String,
    "text": pl.String,
}

GENERATIONS: TableSchema = {
    "step": pl.Int64,
    "sample": pl.Int32,
    "prompt_tokens": pl.Int32,
    "prompt": pl.String,
    "output_tokens": pl.Int32,
    "output": pl.String,
}

PROBLEMS: TableSchema = {
    "line_no": pl.Int64,
    "text": pl.String,
    "reason": pl.String,
}

SNAPSHOT_LAYERS: TableSchema = {
    "layer": pl.Int32,
    "k": F,
    "ent": F,
    "p_loss": F,
    "k_exec": pl.Int32,
    "s_final": F,
    "s_trace": pl.List(F),
    "p_mean": F,
    "p_std": F,
    "d_rel": F,
    "ponder_signal": F,
    "avg_exec_token": F,
    "p95_exec_token": F,
    "frac_ge2": F,
    "frac_ge3": F,
    "frac_ge4": F,
    "h_diff": F,
    "p_diff": F,
    "p_near_clamp": F,
}

ECONOMIC_WIN = "ECONOMIC WIN"
TAX_ONLY = "TAX ONLY"
AUDIT_POS = "AUDIT-POS"
AUDIT_NEG = "AUDIT-NEG"
POLICY_STATUSES: tuple[str, ...] = (ECONOMIC_WIN, TAX_ONLY)
"""Verdicts on steps where the gate chose the depth: λ_p reacts to these."""
AUDIT_STATUSES: tuple[str, ...] = (AUDIT_POS, AUDIT_NEG)
"""Verdicts on forced k=2 counterfactual steps: they measure, λ_p does not move."""
QUALITY_STATUSES: tuple[str, ...] = (*POLICY_STATUSES, *AUDIT_STATUSES)
"""Every RECURRENCE QUALITY status the trainer prints, policy first (a stable order)."""

TABLES: dict[str, TableSchema] = {
    "steps": STEPS,
    "layers": LAYERS,
    "traces": TRACES,
    "quality": QUALITY,
    "lr_checks": LR_CHECKS,
    "events": EVENTS,
    "generations": GENERATIONS,
    "problems": PROBLEMS,
}


def empty(schema: TableSchema) -> pl.DataFrame:
    """A zero-row frame with the table's columns, so "no data" looks like every other case."""
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: TableSchema) -> pl.DataFrame:
    """Select and cast `df` to exactly `schema` (missing columns become nulls).

    A frame whose columns already have the schema's types (what the parser produces) only
    has its columns picked: far cheaper than a select, which plans a query.
    """
    if all(df.schema.get(name) == dtype for name, dtype in schema.items()):
        return df[list(schema)]
    return df.select(
        [
            (pl.col(name) if name in df.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )


def as_float(value: object) -> float:
    """A scalar read out of a numeric column (`df["lm_loss"].median()`), as a float.

    Polars types such a scalar as any literal it could hold (dates, strings, lists); on
    the numeric columns of these tables it is a number, and anything else (None from an
    empty or all-null column included) is a bug the caller should hear about.
    """
    if isinstance(value, int | float):
        return float(value)
    raise TypeError(f"expected a number, got {value!r}")


def as_int(value: object) -> int:
    """`as_float` for step numbers, layer indices and counts."""
    if isinstance(value, int | float):
        return int(value)
    raise TypeError(f"expected a number, got {value!r}")
