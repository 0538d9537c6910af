"""The `Run`: everything one training run's files say, as typed Polars tables.

A plain dataclass with no hidden state: every analysis is a function of a `Run`, and a
`Run` can be built directly from frames (tests and the simulator do exactly that).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Self, TypedDict

import polars as pl

from ponder_parse import schema

COUNTED_TABLES: tuple[str, ...] = ("steps", "layers", "quality")
"""The per-step tables whose numeric columns `Run.column_counts` counts."""


class TableCounts(TypedDict):
    """How much of a table holds data: what metric pickers and the "printed as 0 on every
    line" notes need, without the table itself (a stored run keeps it in its row)."""

    rows: int
    values: dict[str, int]  # per numeric column: lines with a value (not null)
    nonzero: dict[str, int]  # per numeric column: values other than 0 (NaN is not one)


def count_columns(df: pl.DataFrame) -> TableCounts:
    """`TableCounts` of one table, in one pass over its numeric columns."""
    cols = [c for c, d in df.schema.items() if d.is_numeric()]
    if not cols:
        return {"rows": df.height, "values": {}, "nonzero": {}}
    row = df.select(
        *[pl.col(c).is_not_null().sum().alias(f"n:{c}") for c in cols],
        *[(pl.col(c).fill_nan(None) != 0).sum().alias(f"nz:{c}") for c in cols],
    ).row(0, named=True)
    return {
        "rows": df.height,
        "values": {c: int(row[f"n:{c}"] or 0) for c in cols},
        "nonzero": {c: int(row[f"nz:{c}"] or 0) for c in cols},
    }


def _empty_factory(s: schema.TableSchema):  # noqa: ANN202 - dataclass factory
    return field(default_factory=lambda: schema.empty(s))


class RunMeta(TypedDict, total=False):
    """What a log says about its run as a whole, one typed key per fact.

    A dict, so `run.meta["kmax"]` reads as it always has and a fact the log does not state
    is simply absent; typed, so a misspelt key or a wrong type is a checker error. Facts
    about the text come from the parser, facts about the run from `parse.meta`,
    `hparam_sources` from the loader; nothing here belongs to the app.
    """

    # the text itself
    n_lines: int
    line_kinds: dict[str, int]
    truncated: bool  # the last line has no newline yet (a log still being written)
    invalid_utf8: bool  # bytes that could not be decoded (in `encoding`, when given)
    encoding: str  # a wide encoding the log was decoded from (`UTF-16LE`, ...); absent: UTF-8
    live: bool  # built by the live follower from appended chunks
    # the INIT line
    init: str
    params: int
    emb: str
    d_model: int
    n_layers_cfg: int
    n_heads: int
    experts: str
    ponder: str
    K: int
    # the controller
    target_k: float
    target_k_source: str  # "deadband" (printed) or "ctrl_err" (recovered as AVGS k - CTRL_ERR)
    deadband_step: int | None
    deadband_lambda_p: float | None
    cli_lambda_p: float | None
    # resumes
    resume_steps: list[int]
    restarts: int
    last_checkpoint_step: int | None  # where the run can be resumed from
    last_checkpoint_lambda_p: float | None
    # shape of the run
    n_layers: int
    kmax: int
    first_step: int
    last_step: int
    # where each hyperparameter came from (config file, folder name, log, user)
    hparam_sources: dict[str, str]


@dataclass
class Run:
    """One training run.

    `meta` holds what the log says about the run itself (parameter count, layer count,
    Kmax, TARGET_K, restarts, deadband step, ...); `hparams` holds the sweep's
    hyperparameters (from a config file, the folder name, or the log), used to compare runs.
    """

    name: str
    source: Path | None = None
    variant: str = "model3b"
    steps: pl.DataFrame = _empty_factory(schema.STEPS)
    layers: pl.DataFrame = _empty_factory(schema.LAYERS)
    traces: pl.DataFrame = _empty_factory(schema.TRACES)
    quality: pl.DataFrame = _empty_factory(schema.QUALITY)
    lr_checks: pl.DataFrame = _empty_factory(schema.LR_CHECKS)
    events: pl.DataFrame = _empty_factory(schema.EVENTS)
    generations: pl.DataFrame = _empty_factory(schema.GENERATIONS)
    problems: pl.DataFrame = _empty_factory(schema.PROBLEMS)
    snapshot: dict[str, Any] | None = None
    snapshot_layers: pl.DataFrame = _empty_factory(schema.SNAPSHOT_LAYERS)
    meta: RunMeta = field(default_factory=RunMeta)
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def last_step(self) -> int | None:
        return None if self.steps.is_empty() else schema.as_int(self.steps["step"].max())

    @property
    def n_steps(self) -> int:
        return self.steps.height

    @property
    def final_lm(self) -> float | None:
        """Last logged LM loss: the number a sweep is usually ranked by."""
        if self.steps.is_empty():
            return None
        return self.steps["lm_loss"][-1]

    def replaced(self, **changes: Any) -> Self:
        """A shallow copy with these fields changed (what `dataclasses.replace` does, but
        without reading every field first: a run whose tables are read on first use, like
        the store's `StoredRun`, stays unread)."""
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise TypeError(f"Run has no field(s) {sorted(unknown)}")
        out = copy.copy(self)
        for name, value in changes.items():
            setattr(out, name, value)
        return out

    def table(self, name: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """One table by name, or only these of its columns (in this order; columns the
        table lacks are left out, as a run of another trainer build may lack some). A
        stored run reads just those columns from disk, so a page asking for the columns it
        draws reads those, not the whole table."""
        df: pl.DataFrame = getattr(self, name)
        if columns is None:
            return df
        return df.select([c for c in columns if c in df.columns])

    def column_counts(self) -> dict[str, TableCounts]:
        """`TableCounts` of each of `COUNTED_TABLES`. Computed from the tables here; a
        stored run answers from its row, so a picker of 20 stored runs reads no table."""
        return {t: count_columns(getattr(self, t)) for t in COUNTED_TABLES}

    def tables(self) -> dict[str, pl.DataFrame]:
        """Every table by name (the names `schema.TABLES` uses), e.g. for export."""
        return {name: getattr(self, name) for name in schema.TABLES} | {
            "snapshot_layers": self.snapshot_layers
        }

    def __repr__(self) -> str:
        return (
            f"Run(name={self.name!r}, variant={self.variant!r}, steps={self.n_steps}, "
            f"last_step={self.last_step}, problems={self.problems.height})"
        )
