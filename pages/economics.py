"""Recurrence economics: the compute price λ_p, and whether recurrence earns its cost."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ponder_app import charts, prepare, ui
from ponder_parse.analysis import catalog

ctx = ui.page_context("economics")
if ctx is not None:
    frames = {r.name: ctx.frame(r) for r in ctx.runs}
    c1, c2 = st.columns(2)
    weight = c1.slider("Smoothing (EMA weight)", 0.0, 0.99, 0.0, 0.01, key="ec_smooth")
    window = c2.slider("Window for rates (policy steps)", 20, 500, 100, 10, key="ec_window")
    markers = prepare.event_markers(ctx.runs, frames, "step", None, audits=False)
    m = catalog.metric("lambda_p")
    lam = prepare.step_series(frames, "lambda_p", weight=weight)
    ui.show_chart(
        charts.metric_chart(
            lam,
            title="λ_p — compute price per extra pass (dashed verticals: deadband engaged / resumes)",
            y_title="λ_p",
            colors=ctx.colors,
            log_y=True,
            smoothed=weight > 0,
            refs=catalog.reference_lines("lambda_p"),
            markers=markers,
            value_format=".2e",
        ),
        "economics-lambda_p",
    )
    ctrl = prepare.step_series(frames, "ctrl_err", weight=max(weight, 0.6))
    ui.show_chart(
        charts.metric_chart(
            ctrl,
            title="CTRL_ERR = avg k − TARGET_K (λ_p rises while positive)",
            y_title="CTRL_ERR",
            colors=ctx.colors,
            refs=[(0.0, "on target")],
            markers=markers,
            value_format="+.3f",
        ),
        "economics-ctrl_err",
    )
    rates = [
        prepare.rolling_rates(r, window, prepare.points_per_run(len(ctx.runs))) for r in ctx.runs
    ]
    rates = [r for r in rates if r.height]
    if rates:
        rr = pl.concat(rates)
        for col, title in (
            ("win_rate", "ECONOMIC WIN share of policy steps"),
            ("confidence_rate", "CONFIDENCE+ share of policy steps (ΔCE > 0 and ΔH < 0)"),
        ):
            series = rr.select(
                "run", "step", pl.col(col).alias("value"), pl.col(col).alias("smooth")
            ).drop_nulls("value")
            ui.show_chart(
                charts.metric_chart(
                    series,
                    title=f"{title}, trailing {window} policy steps",
                    y_title=col,
                    colors=ctx.colors,
                    smoothed=False,
                    refs=[(0.5, "half")],
                    value_format=".1%",
                ),
                f"economics-{col}",
            )
    else:
        st.info(
            "No RECURRENCE QUALITY lines yet: the shown runs have not reached the ponder start."
        )
    q = pl.concat(
        [
            r.quality.select(
                pl.lit(r.name).alias("run"), "step", "delta_ce", "status", "confidence"
            )
            for r in ctx.runs
        ],
        how="vertical_relaxed",
    )
    if q.height:
        left, right = st.columns(2)
        with left:
            bins = prepare.histogram_bins(
                q.filter(pl.col("status").is_in(["ECONOMIC WIN", "TAX ONLY"])), "delta_ce"
            )
            ui.show_chart(
                charts.histogram(
                    bins,
                    title="ΔCE on policy steps (right of 0: recurrence helped)",
                    x_title="ΔCE",
                    colors=ctx.colors,
                ),
                "economics-delta_ce",
            )
        with right:
            counts = q.group_by("run", "status").agg(pl.len().alias("n"))
            ui.show_chart(
                charts.count_bars(
                    counts,
                    category="status",
                    title="Quality status mix",
                    domain=["ECONOMIC WIN", "TAX ONLY", "AUDIT-POS", "AUDIT-NEG"],
                    range_=["#59a14f", "#e15759", "#76b7b2", "#f28e2b"],
                ),
                "economics-status",
            )
        audit = q.filter(pl.col("status").str.starts_with("AUDIT"))
        if audit.height:
            st.markdown("**Audit steps** (forced k=2 counterfactuals; λ_p does not move on them)")
            table = (
                audit.group_by("run")
                .agg(
                    pl.len().alias("audit steps"),
                    (pl.col("status") == "AUDIT-POS").mean().alias("AUDIT-POS share"),
                    pl.col("delta_ce").mean().alias("mean ΔCE"),
                )
                .sort("run")
            )
            ui.show_table(
                table,
                "audit-summary",
                column_config={"AUDIT-POS share": st.column_config.NumberColumn(format="percent")},
            )
