"""Recurrence economics: what the RECURRENCE QUALITY lines say about whether extra passes
pay for themselves.

Policy steps (the gate chose the depth, λ_p reacts) and audit steps (k=2 forced as a
counterfactual, λ_p does not move) answer different questions, so every figure here keeps
them apart by the statuses `schema` names.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from ponder_parse import schema
from ponder_parse.run import Run

QUALITY_OF_RUNS_SCHEMA: schema.TableSchema = {
    "run": pl.String,
    "step": pl.Int64,
    "delta_ce": pl.Float64,
    "status": pl.String,
    "confidence": pl.Boolean,
}

AUDIT_SUMMARY_SCHEMA: schema.TableSchema = {
    "run": pl.String,
    "audit steps": pl.UInt32,
    "AUDIT-POS share": pl.Float64,
    "mean ΔCE": pl.Float64,
}


def quality_of(runs: Sequence[Run]) -> pl.DataFrame:
    """Every run's quality lines in one frame, named by run (`QUALITY_OF_RUNS_SCHEMA`)."""
    parts = [
        r.quality.select(pl.lit(r.name).alias("run"), *list(QUALITY_OF_RUNS_SCHEMA)[1:])
        for r in runs
    ]
    if not parts:
        return pl.DataFrame(schema=QUALITY_OF_RUNS_SCHEMA)
    return pl.concat(parts, how="vertical_relaxed")


def policy_steps(quality: pl.DataFrame) -> pl.DataFrame:
    """The quality lines of steps where the gate chose the depth (audits left out)."""
    return quality.filter(pl.col("status").is_in(schema.POLICY_STATUSES))


def status_mix(quality: pl.DataFrame) -> pl.DataFrame:
    """Steps per run and status (`run, status, n`), runs and statuses in order of first
    appearance."""
    return quality.group_by("run", "status", maintain_order=True).agg(pl.len().alias("n"))


def audit_summary(quality: pl.DataFrame) -> pl.DataFrame:
    """Per run with audit steps: how many, the share where the forced extra pass helped
    (AUDIT-POS), and the mean ΔCE over them (columns: `AUDIT_SUMMARY_SCHEMA`)."""
    audit = quality.filter(pl.col("status").is_in(schema.AUDIT_STATUSES))
    if audit.is_empty():
        return pl.DataFrame(schema=AUDIT_SUMMARY_SCHEMA)
    return (
        audit.group_by("run")
        .agg(
            pl.len().alias("audit steps"),
            (pl.col("status") == schema.AUDIT_POS).mean().alias("AUDIT-POS share"),
            pl.col("delta_ce").mean().alias("mean ΔCE"),
        )
        .sort("run")
    )
