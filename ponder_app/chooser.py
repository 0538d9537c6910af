"""Choosing the runs to show among many: search, filters and sort over the table of every
loaded run, feeding the selection (`st.session_state["selected_runs"]`, through the
sidebar's *Runs shown* widget).

The table is the Runs table of every loaded run, built from summaries a store already
holds (no run's tables are read for it); the filtering is `query.select_runs`, a pure
function with its own tests; this module only draws the widgets and applies the choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl
import streamlit as st

from ponder_app import source, state, ui
from ponder_app.state import Context
from ponder_parse.analysis import red_flags as flags
from ponder_parse.analysis import summaries
from ponder_parse.files.store.query import RunFilter, choice_values, select_runs

SELECTED_WIDGET = state.SELECTED_WIDGET
SELECTED = state.SELECTED
MAX_SHOWN = 100
"""At most this many runs are shown at once from the chooser: each shown run's tables are
read when a page draws it."""


def _apply(names: Sequence[str], add: bool) -> None:
    """Set (or extend) the selection: a callback, so it lands before the sidebar widget
    that holds it is drawn again."""
    current = list(st.session_state.get(SELECTED_WIDGET, []))
    chosen = [*current, *(n for n in names if n not in current)] if add else list(names)
    st.session_state[SELECTED_WIDGET] = chosen[:MAX_SHOWN]
    st.session_state[SELECTED] = list(st.session_state[SELECTED_WIDGET])


def color_chip(color: str) -> str:
    """A run's colour as a small square image (a data URL), for a table's image column:
    the same colour the run has in every chart."""
    hex_ = color.lstrip("#")
    if not all(c in "0123456789abcdefABCDEF" for c in hex_):
        hex_ = "999999"
    svg = (
        "<svg xmlns='http://www.w3.org/2000/svg' width='14' height='14'>"
        f"<rect width='14' height='14' rx='3' fill='%23{hex_}'/></svg>"
    )
    return "data:image/svg+xml;utf8," + svg


def table_of_all(ctx: Context) -> pl.DataFrame:
    """Every loaded run as a Runs-table row. A stored run's row is its stored summary,
    with the default red-flag settings and phases even when this session edited them:
    anything else would read the tables of every stored run."""
    rows = {}
    for r in ctx.all_runs:
        stored = source.stored_summary(r, flags.DEFAULT, False, {})
        rows[r.name] = stored if stored is not None else ctx.summary(r)
    return summaries.runs_table(ctx.all_runs, rows)


def _outcome_columns(table: pl.DataFrame) -> list[str]:
    return [
        c
        for c in [*summaries.RUNS_TABLE_COLUMNS.values(), "red flags"]
        if c in table.columns and table.schema[c].is_numeric()
    ]


def _setting_columns(table: pl.DataFrame) -> list[str]:
    taken = {"run", "health", *summaries.RUNS_TABLE_COLUMNS.values(), "red flags"}
    extra = ["variant", "dominant trace"]
    return [c for c in table.columns if c not in taken] + [c for c in extra if c in table]


def _within(lo: float, hi: float) -> Callable[[Any], bool]:
    """Whether a remembered outcome range still fits the runs' values (a slider refuses
    one that does not)."""
    return lambda v: isinstance(v, tuple | list) and len(v) == 2 and lo <= v[0] <= v[1] <= hi


def run_filter(table: pl.DataFrame) -> RunFilter:
    """The filter the widgets describe (each kept with `state.kept`, so it survives page
    switches: a filtered thousand-run list comes back filtered)."""
    c1, c2, c3 = st.columns([3, 1, 2])
    search = c1.text_input(
        "Search run names",
        **state.kept("pick_search", ""),
        placeholder="seed=1, target_k=2.4 … (or a regular expression)",
    )
    regex = c2.toggle("Regular expression", **state.kept("pick_regex", False))
    healths = [h for h in summaries.HEALTHS if h in set(table["health"].to_list())]
    health = c3.multiselect("Health", healths, **state.kept("pick_health", [], options=healths))
    c1, c2 = st.columns(2)
    settings = _setting_columns(table)
    by_value = c1.multiselect(
        "Filter by setting or tag",
        settings,
        **state.kept("pick_settings", [], options=settings),
        help="Hyperparameters and tags that differ between the runs (yours included).",
    )
    values: dict[str, tuple[str, ...]] = {}
    for col in by_value:
        offered = choice_values(table, col)
        chosen = c1.multiselect(
            f"{col} is one of", offered, **state.kept(f"pick_value_{col}", [], options=offered)
        )
        values[col] = tuple(chosen)
    outcomes = _outcome_columns(table)
    by_range = c2.multiselect(
        "Filter by outcome", outcomes, **state.kept("pick_outcomes", [], options=outcomes)
    )
    ranges: dict[str, tuple[float | None, float | None]] = {}
    for col in by_range:
        s = table[col].drop_nulls()
        lo, hi = (float(s.min()), float(s.max())) if s.len() else (0.0, 0.0)  # type: ignore[arg-type]
        if lo >= hi:
            c2.caption(f"{ui.plain(col)}: every run has {lo:g}")
            continue
        got = c2.slider(
            col,
            lo,
            hi,
            **state.kept(f"pick_range_{col}", (lo, hi), valid=_within(lo, hi)),
        )
        ranges[col] = (float(got[0]), float(got[1]))
    c1, c2 = st.columns(2)
    sorts = ["run", *(c for c in table.columns if c != "run")]
    sort = c1.selectbox("Sort by", sorts, **state.kept("pick_sort", "run", options=sorts))
    descending = c2.toggle("Descending", **state.kept("pick_desc", False))
    return RunFilter(
        search=search,
        regex=regex,
        health=tuple(health),
        values=values,
        ranges=ranges,
        sort=sort,
        descending=descending,
    )


def draw(ctx: Context) -> None:
    """The chooser: filters, the matching runs (tick rows to pick them), and buttons that
    make them the shown runs."""
    table = table_of_all(ctx)
    f = run_filter(table)
    try:
        matched = select_runs(table, f)
    except ValueError as exc:
        st.error(ui.plain(exc))
        matched = table.clear()
    shown = {r.name for r in ctx.runs}
    chips = {name: color_chip(c) for name, c in ctx.colors.items()}
    view = matched.select(
        pl.col("run").is_in(list(shown)).alias("shown"),
        pl.col("run").replace_strict(chips, default=None, return_dtype=pl.String).alias("colour"),
        pl.all(),
    )
    event: Any = st.dataframe(
        view,
        width="stretch",
        hide_index=True,
        height=min(420, 38 + 35 * max(view.height, 1)),
        on_select="rerun",
        selection_mode="multi-row",
        key="pick_table",
        column_config={
            "shown": st.column_config.CheckboxColumn("shown", width="small"),
            "colour": st.column_config.ImageColumn("", width="small"),
            "final LM": st.column_config.NumberColumn(format="%.4f"),
            "best LM": st.column_config.NumberColumn(format="%.4f"),
            "win rate": st.column_config.NumberColumn(format="percent"),
        },
    )
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    ticked = [view["run"][i] for i in rows if 0 <= i < view.height]
    names = matched["run"].to_list()
    row = st.container(horizontal=True)
    row.button(
        f"Show the {len(ticked)} ticked",
        key="pick_show_ticked",
        disabled=not ticked,
        on_click=_apply,
        args=(ticked, False),
    )
    row.button(
        f"Add the {len(ticked)} ticked",
        key="pick_add_ticked",
        disabled=not ticked,
        on_click=_apply,
        args=(ticked, True),
    )
    row.button(
        f"Show the {min(len(names), MAX_SHOWN)} matching"
        + (f" (first {MAX_SHOWN} of {len(names)})" if len(names) > MAX_SHOWN else ""),
        key="pick_show_matching",
        disabled=not names,
        on_click=_apply,
        args=(names[:MAX_SHOWN], False),
    )
    edited = bool(ctx.rules.names or st.session_state.get("phase_overrides"))
    st.caption(
        f"{len(names)} of {len(ctx.all_runs)} runs match; {len(ctx.runs)} shown. Tick rows "
        "(left edge) to pick runs; each shown run's tables are read when a page draws it."
        + (
            " Stored runs are judged here with the default red-flag settings and phases;"
            " the table below uses yours."
            if edited and any(source.as_stored(r) for r in ctx.all_runs)
            else ""
        )
    )
