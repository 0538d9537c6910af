"""Phase comparison: the three training phases of each run, side by side, against the baseline."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ponder_app import charts, state, ui
from ponder_app.state import Context
from ponder_parse.analysis import phases as ph
from ponder_parse.analysis import summaries


@ui.fragment
def phase_summaries(ctx: Context) -> None:
    """The phase table and the per-phase charts with their two switches: a fragment, so a
    switch redraws these only."""
    st.subheader("Phase summaries")
    include_audit = ui.audit_toggle(page="phase_comparison")
    base = ctx.baseline
    assert base is not None  # a context with runs selected always has a baseline
    comparison = summaries.compare_phases(
        ctx.runs,
        base.name,
        summaries={r.name: ctx.phase_summary(r, include_audit) for r in ctx.runs},
    )
    if comparison.is_empty():
        st.info("No phases: the shown runs have no step lines.")
    else:
        show_diff = st.toggle(
            f"Show differences from the baseline ({base.name})", **state.kept("pc_diff", True)
        )
        table = summaries.phase_table(comparison, diffs=show_diff)
        ui.show_table(
            table,
            "phase-summary",
            column_config={
                c: st.column_config.NumberColumn(help=h)
                for c, h in summaries.column_help(table.columns).items()
            },
        )
        st.subheader("Key metrics per phase")
        key_metrics = [
            ("lm_change", "LM change over the phase"),
            ("k_mean", "mean depth k (AVGS k)"),
            ("ctrl_err_abs_mean", "mean |CTRL_ERR|"),
            ("win_rate", "ECONOMIC WIN rate (policy steps)"),
            ("p_near_clamp_mean", "mean P_NR"),
            ("grad_p95", "GRAD p95"),
        ]
        bars = ph.with_phase_labels(comparison)
        left, right = st.columns(2)
        for i, (col, title) in enumerate(key_metrics):
            with left if i % 2 == 0 else right:
                ui.show_chart(
                    charts.grouped_bars(bars, value=col, title=title, colors=ctx.colors),
                    f"phase-{col}",
                )


ctx = ui.page_context("phase_comparison")
if ctx is not None:
    st.subheader("Phase boundaries")
    bounds = ph.boundaries_table(ctx.runs, {r.name: ctx.overrides(r) for r in ctx.runs})
    edited = st.data_editor(
        bounds,
        disabled=["run", "force_end from", "ponder_start from"],
        hide_index=True,
        width="stretch",
        key="phase_editor",
        column_config={
            "force_end": st.column_config.NumberColumn(
                "force_end (first gate-learning step)", min_value=0, step=1
            ),
            "ponder_start": st.column_config.NumberColumn(
                "ponder_start (first economic step)", min_value=0, step=1
            ),
        },
    )
    overrides = st.session_state.get("phase_overrides", {})
    new_overrides = ph.edited_overrides(bounds, pl.DataFrame(edited), overrides)
    if new_overrides is not None:
        st.session_state["phase_overrides"] = new_overrides
        state.save_edits(ctx.runs)
        st.rerun()
    if any(overrides.get(r.name) for r in ctx.runs) and st.button(
        "Reset to what the logs say", key="phase_reset"
    ):
        st.session_state["phase_overrides"] = {}
        state.save_edits(ctx.runs)
        st.session_state.pop("phase_editor", None)  # the editor would re-apply its old edits
        st.rerun()

    phase_summaries(ctx)
