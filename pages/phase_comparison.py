"""Phase comparison: the three training phases of each run, side by side, against the baseline."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ponder_app import charts, ui
from ponder_parse.analysis import phases as ph

ctx = ui.page_context(
    "Phase comparison",
    "Force-2 warmup → gate learning → economic control. Boundaries are read from each log "
    "where it proves them (else the trainer defaults) and can be edited per run.",
)
if ctx is not None:
    st.subheader("Phase boundaries")
    rows = []
    for run in ctx.runs:
        b = ph.boundaries(run, ctx.overrides(run) or None)
        rows.append(
            {
                "run": run.name,
                "force_end": b["force_end"][0],
                "force_end from": b["force_end"][1],
                "ponder_start": b["ponder_start"][0],
                "ponder_start from": b["ponder_start"][1],
            }
        )
    bounds = pl.DataFrame(rows)
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
    overrides = dict(st.session_state.get("phase_overrides", {}))
    changed = False
    for old, new in zip(
        bounds.iter_rows(named=True), pl.DataFrame(edited).iter_rows(named=True), strict=True
    ):
        ov = dict(overrides.get(old["run"], {}))
        for k in ("force_end", "ponder_start"):
            if new[k] is not None and int(new[k]) != old[k]:
                ov[k] = int(new[k])
                changed = True
        overrides[old["run"]] = ov
    if changed:
        st.session_state["phase_overrides"] = overrides
        st.rerun()
    if any(overrides.get(r.name) for r in ctx.runs) and st.button(
        "Reset to what the logs say", key="phase_reset"
    ):
        st.session_state["phase_overrides"] = {}
        st.session_state.pop("phase_editor", None)  # the editor would re-apply its old edits
        st.rerun()

    st.subheader("Phase summaries")
    base = ctx.baseline
    table = pl.concat([ctx.phase_summary(r) for r in ctx.runs], how="diagonal_relaxed")
    if table.is_empty():
        st.info("No phases: the shown runs have no step lines.")
    else:
        from ponder_parse.analysis.summaries import COMPARED_METRICS

        base_rows = table.filter(pl.col("run") == base.name).select(
            "phase", *[pl.col(c).alias(f"_b_{c}") for c in COMPARED_METRICS if c in table.columns]
        )
        diffs = (
            table.join(base_rows, on="phase", how="left")
            .with_columns(
                (pl.col(c) - pl.col(f"_b_{c}")).alias(f"{c}_diff")
                for c in COMPARED_METRICS
                if c in table.columns
            )
            .drop([f"_b_{c}" for c in COMPARED_METRICS if c in table.columns])
        )
        diffs = ph.with_phase_labels(diffs)
        show_diff = st.toggle(
            f"Show differences from the baseline ({base.name})", value=True, key="pc_diff"
        )
        cols = [
            "run",
            "phase",
            "start",
            "end",
            "steps",
            *COMPARED_METRICS,
            "dominant_pattern",
            "dominant_pattern_share",
        ]
        if show_diff:
            cols += [f"{c}_diff" for c in COMPARED_METRICS]
        cols = list(dict.fromkeys(c for c in cols if c in diffs.columns))
        order = {p: i for i, p in enumerate(ph.PHASES)}
        ui.show_table(
            diffs.with_columns(pl.col("phase").replace_strict(order, default=99).alias("_o"))
            .sort("_o", "run")
            .select(cols),
            "phase-summary",
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
        left, right = st.columns(2)
        for i, (col, title) in enumerate(key_metrics):
            if col in diffs.columns:
                with left if i % 2 == 0 else right:
                    ui.show_chart(
                        charts.grouped_bars(diffs, value=col, title=title, colors=ctx.colors),
                        f"phase-{col}",
                    )
