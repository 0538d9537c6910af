"""Comparing a sweep: one table of settings and results, and seeds folded into bands.

A sweep is judged by what changed between runs and what that did. `sweep_table` puts
every run's hyperparameters and summary numbers side by side, `varying_hparams` picks
the columns that actually differ (a "show diff only" view), and `seed_groups` +
`group_band` turn repeated seeds into one mean line with a min-max band, the way W&B and
Aim draw grouped runs, so seed noise is not mistaken for an effect.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ponder_parse.files.hparams import SOURCE_LOG, key_order, normalize_key
from ponder_parse.run import Run
from ponder_parse.schema import TableSchema

_MISSING = object()
_INT64_MAX = 2**63 - 1

BAND_SCHEMA_VALUES: TableSchema = {
    "metric": pl.String,
    "mean": pl.Float64,
    "min": pl.Float64,
    "max": pl.Float64,
    "n": pl.Int64,
}


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _fmt(v: Any, as_float: bool = False) -> str:
    """A value as a label or table cell shows it: `2.4`, `2.0`, `0.0003`, `true`.

    A float keeps a decimal point (`eta=2.0`) so it reads as the setting was typed.
    """
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, numbers.Integral) and not as_float:
        return str(int(v))
    if _is_number(v):
        f = float(v)
        if f.is_integer() and abs(f) < 1e6:
            return f"{f:.1f}"
        return f"{f:.6g}"
    return str(v)


def _canon(v: Any) -> tuple[Any, ...]:
    """A comparison key: `2` equals `2.0`, and floats equal after a print-precision
    round trip (`2.4` from a folder name equals `2.4000000001` recovered from a log)."""
    if v is _MISSING or v is None:
        return ("missing",)
    if isinstance(v, bool):
        return ("bool", v)
    if _is_number(v):
        f = float(v)
        if math.isnan(f):
            return ("nan",)
        return ("num", float(f"{f:.9g}"))
    return ("str", str(v))


def _column(name: str, values: list[Any]) -> pl.Series:
    """One column with the narrowest honest dtype: Boolean, Int64, Float64, else String.

    Mixed kinds become text rather than being coerced, so a `seed` that is `1` in one run
    and `"auto"` in another shows both as written.
    """
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pl.Series(name, values, dtype=pl.Boolean)
    if present and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and abs(int(v)) <= _INT64_MAX
        for v in present
    ):
        return pl.Series(name, [None if v is None else int(v) for v in values], dtype=pl.Int64)
    if present and all(_is_number(v) for v in present):
        return pl.Series(name, [None if v is None else float(v) for v in values], dtype=pl.Float64)
    return pl.Series(name, [None if v is None else _fmt(v) for v in values], dtype=pl.String)


def _hparam_keys(runs: Sequence[Run]) -> list[str]:
    keys: set[str] = set()
    for run in runs:
        keys.update(run.hparams)
    return key_order(keys)


def _summary_for(
    runs: Sequence[Run], summaries: Sequence[Mapping[str, Any]] | Mapping[str, Any] | None
) -> list[Mapping[str, Any]]:
    if summaries is None:
        return [{} for _ in runs]
    if isinstance(summaries, Mapping):
        return [summaries.get(run.name) or {} for run in runs]
    if len(summaries) != len(runs):
        raise ValueError(
            f"{len(summaries)} summaries for {len(runs)} runs: pass one per run, "
            "or a mapping from run name to summary"
        )
    return list(summaries)


def sweep_table(
    runs: Sequence[Run],
    summaries: Sequence[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None = None,
) -> pl.DataFrame:
    """One row per run: `run`, every hyperparameter (union over runs, null where a run
    lacks it), then the summary metrics.

    `summaries` is either one dict per run, in the order of `runs`, or a mapping from run
    name to dict (a run without an entry gets nulls). Summary keys that clash with a
    hyperparameter column get a ` (summary)` suffix; a `run` key is ignored. Columns are
    Boolean / Int64 / Float64 where every value is, else String.
    """
    per_run = _summary_for(runs, summaries)
    hkeys = _hparam_keys(runs)
    columns: list[pl.Series] = [pl.Series("run", [r.name for r in runs], dtype=pl.String)]
    for key in hkeys:
        columns.append(_column(key, [r.hparams.get(key) for r in runs]))
    taken = {"run", *hkeys}
    skeys: list[str] = []
    for summary in per_run:
        for k in summary:
            if k not in skeys and k != "run":
                skeys.append(k)
    for k in skeys:
        name = f"{k} (summary)" if k in taken else k
        values = [s.get(k) for s in per_run]
        values = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
        columns.append(_column(name, values))
    return pl.DataFrame(columns)


def varying_hparams(runs: Sequence[Run]) -> list[str]:
    """Hyperparameters whose value is not the same in every run, in table column order.

    A key present in some runs and missing from others varies. Floats are compared at
    print precision, and `2` equals `2.0`. Fewer than two runs vary in nothing.
    """
    if len(runs) < 2:
        return []
    out = []
    for key in _hparam_keys(runs):
        seen = {_canon(r.hparams.get(key, _MISSING)) for r in runs}
        if len(seen) > 1:
            out.append(key)
    return out


OUTCOMES: tuple[str, ...] = (
    "final_lm",
    "best_lm",
    "k_mean_economic",
    "ctrl_err_abs_mean_economic",
    "win_rate",
    "lambda_p_end",
    "n_critical",
    "n_warning",
)
"""The `run_summary` figures a sweep is judged by, in the order its table shows them."""

DEFAULT_OUTCOME_AXES: tuple[str, ...] = ("final_lm", "k_mean_economic", "win_rate")
"""Outcomes drawn on the parallel coordinates unless the user picks others."""


@dataclass(frozen=True)
class SweepView:
    """A sweep's table and the column choices its views offer."""

    table: pl.DataFrame
    """Every run: `run`, every hyperparameter, the `OUTCOMES`."""
    shown: list[str]
    """The table's columns as shown: `run`, outcomes, then the hyperparameters (only
    those that vary, if asked). Outcomes first: a sweep is read by ranking runs, then
    asking what they had in common."""
    axes: list[str]
    """Shown numeric columns that differ between runs: what parallel coordinates can draw."""
    default_axes: list[str]
    """The first five such hyperparameters and the headline outcomes."""
    x_options: list[str]
    """Hyperparameters to plot an outcome against: those that differ, else all."""
    y_options: list[str]
    """Outcomes to plot."""


def sweep_view(
    runs: Sequence[Run],
    summaries: Mapping[str, Mapping[str, Any]],
    only_varying: bool = True,
) -> SweepView:
    """The sweep table of `runs` with their `summaries` (run name → `run_summary`), and
    what each of its views can show."""
    table = sweep_table(runs, {n: {k: s.get(k) for k in OUTCOMES} for n, s in summaries.items()})
    varying = set(varying_hparams(runs))
    hp_cols = [c for c in table.columns if c != "run" and c not in OUTCOMES]
    outcomes = [c for c in OUTCOMES if c in table.columns]
    shown = ["run", *outcomes, *([c for c in hp_cols if c in varying] if only_varying else hp_cols)]
    axes = [c for c in shown[1:] if table.schema[c].is_numeric() and table[c].n_unique() > 1]
    hp_axes = [c for c in axes if c not in OUTCOMES]
    return SweepView(
        table=table,
        shown=shown,
        axes=axes,
        default_axes=hp_axes[:5] + [c for c in DEFAULT_OUTCOME_AXES if c in axes],
        x_options=[c for c in hp_cols if table[c].n_unique() > 1] or hp_cols,
        y_options=outcomes,
    )


def swept_hparams(runs: Sequence[Run]) -> list[str]:
    """The settings the sweep varied: hyperparameters that differ between runs and that
    some run got from a config file, its folder name or the user.

    Model facts the log prints (parameter count, width...) differ only between variants,
    and would crowd out the settings a sweep is about.
    """
    swept = {
        k for r in runs for k, src in r.meta.get("hparam_sources", {}).items() if src != SOURCE_LOG
    }
    return [k for k in varying_hparams(runs) if k in swept]


def _common_label(names: list[str]) -> str:
    """A label for seeds of an unnamed configuration: the shared start of their names
    without the trailing seed marker (`tk2.4_seed1`, `tk2.4_seed2` -> `tk2.4`)."""
    prefix = os.path.commonprefix(names)
    prefix = re.sub(r"(?i)[\s_\-.,;=]*seed[\s_\-=]*$", "", prefix).rstrip(" _-.,;=")
    return prefix if len(prefix) >= 2 else "seeds"


def _usual_values(
    label_keys: list[str], configs: list[tuple[tuple[Any, ...], ...]]
) -> dict[str, tuple[Any, ...]]:
    """Per key, the value most configurations share, when one value clearly does.

    A one-at-a-time sweep (a baseline plus one change per run) has such a value for every
    key; a full grid has none. A tie means no usual value: the key is always shown.
    """
    usual: dict[str, tuple[Any, ...]] = {}
    for i, key in enumerate(label_keys):
        counts: dict[tuple[Any, ...], int] = {}
        for config in configs:
            counts[config[i]] = counts.get(config[i], 0) + 1
        ranked = sorted(counts.values(), reverse=True)
        if len(ranked) > 1 and ranked[0] > ranked[1]:
            usual[key] = max(counts, key=lambda v: counts[v])
    return usual


def seed_groups(runs: Sequence[Run], seed_keys: Sequence[str] = ("seed",)) -> dict[str, list[str]]:
    """Runs that differ only in seed, grouped under a readable label.

    The label names what sets the group apart: its values of the non-seed hyperparameters
    that vary among seeded runs (`target_k=2.4,eta=2.0`), leaving out a value most
    configurations share (in a baseline-plus-one-change sweep the baseline's settings would
    otherwise fill every label). When nothing is left, e.g. the baseline itself or a sweep
    of seeds only, the label is the shared start of the member names (`baseline`), or if
    they share none, all of the group's varying values. A run
    without a seed value, or alone with its settings, is its own group labelled with its
    name; a group label never equals a run's name. Runs with identical settings including
    the seed (a re-run) group together too: nothing recorded tells them apart. Groups come
    in the order of their first run; members keep the order of `runs`.
    """
    seeds = {normalize_key(k) for k in seed_keys}
    seeded = [r for r in runs if any(r.hparams.get(k) is not None for k in seeds)]
    # Only what differs among seeded runs tells their groups apart; a key that varies just
    # because a seedless run lacks it would only lengthen every label.
    label_keys = [k for k in varying_hparams(seeded) if k not in seeds]
    float_keys = {k for k in label_keys if any(isinstance(r.hparams.get(k), float) for r in seeded)}
    buckets: dict[tuple[Any, ...], list[Run]] = {}
    order: list[tuple[Any, ...]] = []
    for i, run in enumerate(runs):
        has_seed = any(run.hparams.get(k) is not None for k in seeds)
        sig: tuple[Any, ...] = (
            ("config", tuple(_canon(run.hparams.get(k, _MISSING)) for k in label_keys))
            if has_seed
            else ("alone", i)
        )
        if sig not in buckets:
            buckets[sig] = []
            order.append(sig)
        buckets[sig].append(run)
    usual = _usual_values(label_keys, [sig[1] for sig in order if sig[0] == "config"])

    names = {r.name for r in runs}
    out: dict[str, list[str]] = {}
    for sig in order:
        members = buckets[sig]
        member_names = [r.name for r in members]
        if len(members) == 1:
            label = members[0].name
        else:
            first = members[0].hparams
            shown = [
                (k, value)
                for k, value in zip(label_keys, sig[1], strict=True)
                if k in first and usual.get(k) != value
            ]
            everything = [(k, v) for k, v in zip(label_keys, sig[1], strict=True) if k in first]
            label = ",".join(f"{k}={_fmt(first[k], k in float_keys)}" for k, _ in shown)
            if not label:
                label = _common_label(member_names)
            if label == "seeds" and everything:
                label = ",".join(f"{k}={_fmt(first[k], k in float_keys)}" for k, _ in everything)
            if label in names:  # a group must never look like one of the runs
                label = f"{label} (seeds)"
        base, n = label, 1
        while label in out:
            n += 1
            label = f"{base} #{n}"
        out[label] = member_names
    return out


def repeated_seed_groups(
    runs: Sequence[Run], seed_keys: Sequence[str] = ("seed",)
) -> dict[str, list[str]]:
    """The `seed_groups` with more than one run: the ones a mean line and band can stand
    for (a group of one is just its run)."""
    return {g: m for g, m in seed_groups(runs, seed_keys).items() if len(m) > 1}


def group_band(
    frames: Mapping[str, pl.DataFrame],
    groups: Mapping[str, Sequence[str]],
    x: str = "step",
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Mean and min-max band of each metric across a group's runs, aligned on `x`.

    Long format `group, <x>, metric, mean, min, max, n`, one row per group, metric and
    `x` value that at least one run of the group has; `n` is how many of the group's runs
    have a value there, so a band that thins out where a seed crashed early is visible.
    Null and NaN values count as absent (a NaN would otherwise blank the whole band);
    a run that logs one `x` twice counts with its last value. `frames` maps run name to a
    table (e.g. `run.steps`, possibly smoothed); `columns` defaults to every numeric
    column but `x`. Sorted by group (in `groups` order), metric, then `x`.
    """
    parts: list[pl.DataFrame] = []
    metric_order: list[str] = []
    x_dtype: pl.DataType | None = None
    for label, members in groups.items():
        for name in members:
            df = frames.get(name)
            if df is None or x not in df.columns:
                continue
            wanted = (
                list(columns)
                if columns is not None
                else [c for c, t in df.schema.items() if c != x and t.is_numeric()]
            )
            present = [
                c
                for c in wanted
                if c in df.columns
                and c != x
                and (df.schema[c].is_numeric() or df.schema[c] == pl.Boolean)
            ]
            if not present:
                continue
            for c in present:
                if c not in metric_order:
                    metric_order.append(c)
            if x_dtype is None:
                x_dtype = df.schema[x]
            long = (
                df.lazy()
                .select(pl.col(x), *[pl.col(c).cast(pl.Float64, strict=False) for c in present])
                .filter(pl.col(x).is_not_null())
                .unique(subset=[x], keep="last", maintain_order=True)
                .unpivot(index=x, on=present, variable_name="metric", value_name="value")
                .filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())
                .with_columns(pl.lit(label, dtype=pl.String).alias("group"))
                .collect()
            )
            parts.append(long)
    schema: TableSchema = {"group": pl.String, x: x_dtype or pl.Int64}
    schema.update(BAND_SCHEMA_VALUES)
    if not parts:
        return pl.DataFrame(schema=schema)
    group_rank = {g: i for i, g in enumerate(groups)}
    metric_rank = {m: i for i, m in enumerate(metric_order)}
    return (
        pl.concat(parts, how="vertical_relaxed")
        .group_by("group", "metric", x)
        .agg(
            pl.col("value").mean().alias("mean"),
            pl.col("value").min().alias("min"),
            pl.col("value").max().alias("max"),
            pl.len().cast(pl.Int64).alias("n"),
        )
        .with_columns(
            pl.col("group").replace_strict(group_rank, return_dtype=pl.Int64).alias("_g"),
            pl.col("metric").replace_strict(metric_rank, return_dtype=pl.Int64).alias("_m"),
        )
        .sort("_g", "_m", x)
        .select(list(schema))
    )
