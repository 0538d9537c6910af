"""Survival traces: which of the guide's four shapes each layer's trace takes, over time."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ponder_app import charts, prepare, ui
from ponder_parse.analysis import patterns, phases

ctx = ui.page_context(
    "Survival traces",
    "s_trace is the survival probability entering each pass (level 3, every 50 steps). "
    "Each trace is classified into the guide's patterns: healthy sharp drop, not stopping "
    "(ponder collapse), over-penalized (stops after k=1), gate stuck at 0.5, or other.",
)
if ctx is not None:
    runs = [r for r in ctx.runs if r.traces.height]
    if not runs:
        st.info("None of the shown runs logged survival traces.")
    else:
        with st.expander("How traces are classified", expanded=False):
            t = patterns.DEFAULT
            st.markdown(
                "\n".join(
                    f"- **{patterns.PATTERN_TITLES[p]}** — {patterns.PATTERN_MEANINGS[p]}"
                    for p in patterns.PATTERNS
                )
            )
            st.caption(f"Thresholds: {t}")
        st.subheader("Pattern timeline")
        for run in runs:
            ph = ctx.phases(run)
            gate = ph.filter(ph["phase"] == "gate_learning")["start"]
            force_end = int(gate[0]) if gate.len() else None
            cells = prepare.trace_timeline(run, force_end=force_end)
            ui.show_chart(
                charts.pattern_timeline(cells, title=run.name), f"pattern-timeline-{run.name}"
            )

        st.subheader("Pattern shares per phase")
        parts = []
        for run in runs:
            sh = patterns.pattern_shares(run, by=("phase",), phases_df=ctx.phases(run))
            if sh.height:
                parts.append(sh.with_columns(pl.lit(run.name).alias("run")))
        if parts:
            shares = phases.with_phase_labels(
                pl.concat(parts, how="diagonal_relaxed")
            ).with_columns(
                pl.col("pattern")
                .replace_strict({p: i for i, p in enumerate(patterns.PATTERNS)}, default=99)
                .alias("pattern_rank")
            )
            ui.show_chart(
                charts.pattern_share_bars(shares, title="Share of each pattern, per run and phase"),
                "pattern-shares",
            )
            ui.show_table(
                shares.select("run", "phase", "pattern", "n", "share").sort(
                    "run", "phase", "pattern"
                ),
                "pattern-shares",
            )

        st.subheader("Traces at one step")
        all_steps = sorted({s for r in runs for s in r.traces["step"].unique().to_list()})
        step = st.select_slider("Trace step", all_steps, value=all_steps[-1], key="st_step")
        left, right = st.columns([1, 4])
        with left:
            ui.show_chart(charts.reference_shapes_chart(), "reference-shapes", downloads=False)
        frames = []
        for run in runs:
            data = prepare.traces_at(run, step)
            if data.height:
                at = int(data["step"][0])
                frames.append(data.with_columns(pl.lit(f"{run.name} @ {at}").alias("series")))
        curves = pl.concat(frames) if frames else pl.DataFrame()
        with right:
            ui.show_chart(
                charts.trace_curves(curves, title=f"Every layer's trace at step {step}"),
                f"traces-at-{step}",
            )
