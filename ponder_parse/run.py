"""The `Run`: everything one training run's files say, as typed Polars tables.

A plain dataclass with no hidden state: every analysis is a function of a `Run`, and a
`Run` can be built directly from frames (tests and the simulator do exactly that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ponder_parse import schema


def _empty_factory(s: dict[str, pl.DataType]):  # noqa: ANN202 - dataclass factory
    return field(default_factory=lambda: schema.empty(s))


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
    meta: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)

    @property
    def last_step(self) -> int | None:
        return None if self.steps.is_empty() else int(self.steps["step"].max())  # type: ignore[arg-type]

    @property
    def n_steps(self) -> int:
        return self.steps.height

    @property
    def final_lm(self) -> float | None:
        """Last logged LM loss: the number a sweep is usually ranked by."""
        if self.steps.is_empty():
            return None
        return self.steps["lm_loss"][-1]

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
