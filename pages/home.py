"""Runs: every loaded run at a glance, with health, hyperparameters and problems."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ponder_app import charts, chooser, source, state, ui
from ponder_parse.analysis import red_flags as flags
from ponder_parse.analysis import summaries
from ponder_parse.files import hparams

ctx = ui.page_context("home", unselected=True)
if ctx is not None:
    # Open by itself when there are more runs than are shown at first (or none shown).
    many = len(ctx.all_runs) > source.DEFAULT_SHOWN or not ctx.runs
    if st.toggle(
        "Choose runs",
        **state.kept("pick_open", many),
        help="Search, filter and sort every loaded run, and pick the ones to show.",
    ):
        with st.container(border=True):
            chooser.draw(ctx)
if ctx is not None and ctx.runs:
    include_audit = ui.audit_toggle(page="home")
    table = summaries.runs_table(
        ctx.runs, {r.name: ctx.summary(r, include_audit) for r in ctx.runs}
    )
    table = table.join(flags.peers_text(ctx.sweep_flags()), on="run", how="left").select(
        "run", "health", "vs peers", pl.exclude("run", "health", "vs peers")
    )
    counts = summaries.runs_overview(table)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Runs shown", f"{len(ctx.runs)} / {len(ctx.all_runs)}")
    c2.metric("Healthy", counts[summaries.HEALTHY])
    c3.metric("With critical flags", counts[summaries.CRITICAL])
    c4.metric("Lines not understood", counts["problems"])
    ui.show_table(
        table,
        "runs",
        column_config={
            "final LM": st.column_config.NumberColumn(
                format="%.4f", help=summaries.RUNS_TABLE_HELP["final LM"]
            ),
            "best LM": st.column_config.NumberColumn(
                format="%.4f", help=summaries.RUNS_TABLE_HELP["best LM"]
            ),
            "mean k (economic)": st.column_config.NumberColumn(
                format="%.3f", help=summaries.RUNS_TABLE_HELP["mean k (economic)"]
            ),
            "win rate": st.column_config.NumberColumn(format="percent"),
        },
    )
    st.caption(
        "Health: *critical* at least one critical red flag, *warning* warnings only, *healthy* none "
        "(see *Red flags*), *no data* no step line could be read (see the run's problems below). "
        "Hyperparameter columns show only what differs between the shown runs. *vs peers*: "
        "where a run's outcome is far from the other shown runs' (robust z-score, see *Red "
        "flags*); it does not count towards health."
        + (
            f" Red-flag thresholds changed on *Red flags*: {', '.join(sorted(ctx.rules.names))}."
            if ctx.rules.names
            else ""
        )
    )

    st.subheader("What each log said")
    for run in ctx.runs:
        meta = run.meta
        n_problems = source.n_problems(run)
        label = f"{ui.plain(run.name)} — {run.n_steps} steps, {n_problems} problem(s)"
        with ui.lazy_expander(label, key=f"home_log_{run.name}") as open_:
            if not open_:
                continue
            c1, c2 = st.columns(2)
            with c1:
                st.markdown(
                    f"**Source:** {ui.plain(run.source.name) if run.source else '?'} ({run.variant})"
                )
                if meta.get("init"):
                    st.code(meta["init"], language=None)
                st.table(source.run_facts(run))
            with c2:
                if run.hparams:
                    st.markdown("**Hyperparameters**")
                    st.dataframe(
                        hparams.tags_frame(run.hparams, meta.get("hparam_sources", {})),
                        hide_index=True,
                        width="stretch",
                        height=240,
                    )
            kinds = summaries.line_kinds_text(run)
            if kinds:
                st.caption(kinds)
            if n_problems:
                st.markdown("**Lines not understood** (line number, text, reason)")
                ui.show_table(run.problems, f"problems-{run.name}", height=200)
            else:
                st.success("Every line of the log was understood.")

    st.subheader("Colours")
    if st.toggle("Choose run colours", **state.kept("run_colors_open", False)):
        st.caption(
            "Each run's colour comes from its name, so it is the same on every page and "
            "in any set of runs. Pick another here; it applies to every chart."
        )

        def _pick(name: str, key: str) -> None:
            picks = dict(st.session_state.get(charts.COLOR_OVERRIDES_KEY, {}))
            picks[name] = st.session_state[key]
            st.session_state[charts.COLOR_OVERRIDES_KEY] = picks

        cols = st.columns(4)
        for i, run in enumerate(ctx.runs):
            key = f"run_color_{run.name}"
            # The picker shows the colour the charts use now (it moves when a pick
            # elsewhere takes its slot); only a change the user makes is kept.
            st.session_state[key] = ctx.colors[run.name]
            cols[i % 4].color_picker(
                ui.plain(run.name), key=key, on_change=_pick, args=(run.name, key)
            )
        if st.session_state.get(charts.COLOR_OVERRIDES_KEY) and st.button(
            "Back to the colours from the names", key="run_color_reset"
        ):
            st.session_state[charts.COLOR_OVERRIDES_KEY] = {}
            st.rerun()
