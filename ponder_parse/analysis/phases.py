"""Training phases: force warmup, gate learning, economic control.

Most judgements about a ponder run only make sense inside one phase (a "not stopping"
trace is expected while layers are forced to 2 passes, alarming once λ_p is on), so every
other analysis asks this module where the phases are.

Boundaries come, in order of trust: from the user (`overrides`), from what the log
proves (the first RECURRENCE QUALITY line or audit step marks the ponder start; the first
per-layer line where a layer leaves exactly 2 passes marks the end of the force warmup),
from the run's hyperparameters when they name the constants, else from the trainer
defaults (force warmup ends at 800, ponder starts at 1200). Boundary values are the
*first step of the next phase*, like the trainer's constants; phase rows carry inclusive
`start`/`end` steps clipped to the logged range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from ponder_parse.run import Run
from ponder_parse.schema import TableSchema, as_int

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

FORCE_END_DEFAULT = 800
PONDER_START_DEFAULT = 1200

FORCE_WARMUP = "force_warmup"
GATE_LEARNING = "gate_learning"
ECONOMIC = "economic"

PHASES: tuple[str, ...] = (FORCE_WARMUP, GATE_LEARNING, ECONOMIC)
"""Phase names in training order; use for sorting and colour domains."""

PHASE_LABELS: dict[str, str] = {
    FORCE_WARMUP: "force-2 warmup",
    GATE_LEARNING: "gate learning",
    ECONOMIC: "economic control",
}
"""How tables and charts name each phase, in training order."""

SRC_QUALITY = "log: first RECURRENCE QUALITY line"
SRC_AUDIT = "log: first audit step"
SRC_LAYERS = "log: layers leave exactly 2 passes"
SRC_LAYERS_STILL = "log: layers still run exactly 2 passes"
SRC_DEFAULT = "default"
SRC_USER = "user"
SRC_CONFIG = "config"
SRC_FIRST = "log: first logged step"
SRC_LAST = "log: last logged step"

PHASES_SCHEMA: TableSchema = {
    "phase": pl.String,
    "start": pl.Int64,
    "end": pl.Int64,
    "source": pl.String,
    "end_source": pl.String,
}

# Hyperparameter names (case-insensitive) that carry the phase constants in a sweep config.
_HPARAM_KEYS: dict[str, tuple[str, ...]] = {
    "force_end": ("force_end", "force_steps", "force_2_steps", "force_warmup_steps"),
    "ponder_start": ("ponder_start",),
}

_K_TOL = 0.005  # expected_k is printed with 2 decimals: 2.00 means "exactly 2" to print precision


def _hparam(run: Run, name: str) -> int | None:
    lowered = {str(k).lower(): v for k, v in (run.hparams or {}).items()}
    for key in _HPARAM_KEYS[name]:
        value = lowered.get(key)
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                return None
    return None


def _logged_ponder_start(run: Run, first_step: int) -> tuple[int, str] | None:
    """Earliest step the log shows economic control running, if the log proves it.

    A quality line or an audit step only exists once λ_p is on. If the very first logged
    step already has one and the log does not begin at 0, the log was started inside the
    economic phase and only bounds the start from above, so it proves nothing.
    """
    candidates: list[tuple[int, str]] = []
    q = run.quality
    if q.height:
        s = q["step"].drop_nulls()
        if s.len():
            candidates.append((as_int(s.min()), SRC_QUALITY))
    st = run.steps
    if st.height and "audit" in st.columns:
        a = st.filter(pl.col("audit").fill_null(False))["step"]
        if a.len():
            candidates.append((as_int(a.min()), SRC_AUDIT))
    if not candidates:
        return None
    step, src = min(candidates)
    if step <= first_step and first_step > 0:
        return None
    return step, src


def _forced_observations(run: Run) -> pl.DataFrame:
    """Per observed step: were all layers running exactly 2 passes?"""
    frames: list[pl.DataFrame] = []
    lay = run.layers
    if lay.height:
        frames.append(
            lay.filter(pl.col("step").is_not_null())
            .group_by("step")
            .agg(
                forced=(
                    (pl.col("k_exec") == 2).fill_null(True)
                    & ((pl.col("k") - 2.0).abs() <= _K_TOL).fill_null(True)
                ).all(),
                seen=(pl.col("k_exec").is_not_null() | pl.col("k").is_not_null()).any(),
            )
            .filter(pl.col("seen"))
            .select("step", "forced")
        )
    if not frames:
        return pl.DataFrame(schema={"step": pl.Int64, "forced": pl.Boolean})
    return pl.concat(frames).sort("step")


def _logged_force_end(run: Run, default: int) -> tuple[int, str] | None:
    """First step of gate learning as the per-layer lines prove it.

    Needs at least one forced observation before the first unforced one: a log that never
    shows a forced layer (resumed later, or a trainer whose expected_k is not 2.00 while
    forced) proves nothing about where the force ended.
    """
    obs = _forced_observations(run)
    if obs.is_empty():
        return None
    forced = obs["forced"].to_list()
    steps = obs["step"].to_list()
    if not forced[0]:
        return None
    for step, is_forced in zip(steps, forced, strict=True):
        if not is_forced:
            return int(step), SRC_LAYERS
    # Forced at every observation: past the default, the log proves the force lasted at
    # least that long, and nothing in it says the force ever ended.
    if int(steps[-1]) >= default:
        last_logged = as_int(run.steps["step"].max()) if run.steps.height else int(steps[-1])
        return max(last_logged, int(steps[-1])) + 1, SRC_LAYERS_STILL
    return None


def boundaries(run: Run, overrides: dict[str, Any] | None = None) -> dict[str, tuple[int, str]]:
    """The two phase boundaries (`force_end`, `ponder_start`) with where each came from.

    Both values are the first step of the following phase. `force_end` is capped at
    `ponder_start` (a gate-learning phase cannot end before it starts).
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    first = 0 if run.steps.is_empty() else as_int(run.steps["step"].min())

    if "ponder_start" in overrides:
        ponder = (int(overrides["ponder_start"]), SRC_USER)
    else:
        logged = _logged_ponder_start(run, first)
        hp = _hparam(run, "ponder_start")
        if logged is not None:
            ponder = logged
        elif hp is not None:
            ponder = (hp, SRC_CONFIG)
        else:
            ponder = (PONDER_START_DEFAULT, SRC_DEFAULT)

    if "force_end" in overrides:
        force = (int(overrides["force_end"]), SRC_USER)
    else:
        hp = _hparam(run, "force_end")
        default = hp if hp is not None else FORCE_END_DEFAULT
        logged = _logged_force_end(run, default)
        if logged is not None:
            force = logged
        elif hp is not None:
            force = (hp, SRC_CONFIG)
        else:
            force = (FORCE_END_DEFAULT, SRC_DEFAULT)
    if force[0] > ponder[0]:
        force = (ponder[0], force[1])
    return {"force_end": force, "ponder_start": ponder}


BOUNDARY_KEYS: tuple[str, ...] = ("force_end", "ponder_start")

BOUNDARIES_SCHEMA: TableSchema = {
    "run": pl.String,
    "force_end": pl.Int64,
    "force_end from": pl.String,
    "ponder_start": pl.Int64,
    "ponder_start from": pl.String,
}


def boundaries_table(
    runs: Sequence[Run], overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> pl.DataFrame:
    """Both boundaries of every run with where each came from, one row per run
    (columns: `BOUNDARIES_SCHEMA`), the form in which a user reviews and edits them.

    `overrides` maps run name → `boundaries()` overrides.
    """
    rows = []
    for run in runs:
        b = boundaries(run, dict((overrides or {}).get(run.name) or {}) or None)
        row: dict[str, Any] = {"run": run.name}
        for key in BOUNDARY_KEYS:
            row[key], row[f"{key} from"] = b[key]
        rows.append(row)
    return pl.DataFrame(rows, schema=BOUNDARIES_SCHEMA)


def edited_overrides(
    shown: pl.DataFrame,
    edited: pl.DataFrame,
    overrides: Mapping[str, Mapping[str, int]],
) -> dict[str, dict[str, int]] | None:
    """The overrides after a user edited the `boundaries_table` `shown` into `edited`
    (same rows, same order); None when no boundary changed.

    A cleared cell keeps the boundary it had, and a value equal to what was shown is not
    an edit, so re-submitting the table never pins a boundary the log would move.
    """
    out = {name: dict(ov) for name, ov in overrides.items()}
    changed = False
    for old, new in zip(shown.iter_rows(named=True), edited.iter_rows(named=True), strict=True):
        ov = out.setdefault(old["run"], {})
        for key in BOUNDARY_KEYS:
            if new[key] is not None and int(new[key]) != old[key]:
                ov[key] = int(new[key])
                changed = True
    return out if changed else None


def phases(run: Run, overrides: dict[str, Any] | None = None) -> pl.DataFrame:
    """One row per phase present in the logged range.

    Columns: `phase`, `start`, `end` (inclusive steps, clipped to the first and last
    logged step), `source` (how `start` was determined), `end_source` (how `end` was).
    Phases the run never reached are omitted; an empty run gives an empty, typed frame.
    `overrides` may hold `force_end` and/or `ponder_start` (first step of gate learning /
    economic control).
    """
    if run.steps.is_empty() or run.steps["step"].drop_nulls().is_empty():
        return pl.DataFrame(schema=PHASES_SCHEMA)
    first = as_int(run.steps["step"].min())
    last = as_int(run.steps["step"].max())
    b = boundaries(run, overrides)
    (force, force_src), (ponder, ponder_src) = b["force_end"], b["ponder_start"]
    nominal = [
        (FORCE_WARMUP, None, force - 1, SRC_FIRST, force_src),
        (GATE_LEARNING, force, ponder - 1, force_src, ponder_src),
        (ECONOMIC, ponder, None, ponder_src, SRC_LAST),
    ]
    rows: list[dict[str, Any]] = []
    for name, lo, hi, src_lo, src_hi in nominal:
        start = first if lo is None or lo < first else lo
        end = last if hi is None or hi > last else hi
        if start > end:
            continue
        rows.append(
            {
                "phase": name,
                "start": start,
                "end": end,
                "source": SRC_FIRST if start == first and (lo is None or lo < first) else src_lo,
                "end_source": SRC_LAST if end == last and (hi is None or hi > last) else src_hi,
            }
        )
    return pl.DataFrame(rows, schema=PHASES_SCHEMA)


def phase_expr(phases_df: pl.DataFrame, step_col: str = "step") -> pl.Expr:
    """Expression mapping a step column to its phase name (null outside every phase)."""
    expr: Then | ChainedThen | None = None
    for row in phases_df.iter_rows(named=True):
        cond = pl.col(step_col).is_between(row["start"], row["end"], closed="both")
        expr = (
            pl.when(cond).then(pl.lit(row["phase"]))
            if expr is None
            else expr.when(cond).then(pl.lit(row["phase"]))
        )
    if expr is None:
        return pl.lit(None, dtype=pl.String)
    return expr.otherwise(pl.lit(None, dtype=pl.String)).cast(pl.String)


def assign_phase(
    df: pl.DataFrame, phases_df: pl.DataFrame, step_col: str = "step", name: str = "phase"
) -> pl.DataFrame:
    """Add the phase of every row (order preserved; steps outside all phases get null).

    A `when/then` chain over at most three intervals: vectorised, order-preserving, and
    also usable on a LazyFrame via `phase_expr`.
    """
    return df.with_columns(phase_expr(phases_df, step_col).alias(name))


def phase_rank(column: str = "phase") -> pl.Expr:
    """Position of a phase in training order (unknown names last), for sorting by phase."""
    return pl.col(column).replace_strict(PHASES, list(range(len(PHASES))), default=len(PHASES))


def with_phase_labels(df: pl.DataFrame, column: str = "phase") -> pl.DataFrame:
    """`df` plus `phase_label`, the phase's display name (unknown names kept as they are)."""
    return df.with_columns(
        pl.col(column).replace_strict(PHASE_LABELS, default=pl.col(column)).alias("phase_label")
    )


def phase_start(phases_df: pl.DataFrame, phase: str) -> int | None:
    """First step of `phase` in a `phases()` frame, None when the run never reached it."""
    start = phases_df.filter(pl.col("phase") == phase)["start"]
    return int(start[0]) if start.len() else None
