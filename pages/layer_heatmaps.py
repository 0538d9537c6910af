"""Layer heatmaps: one per-layer metric as layer × step, per run, plus differences from the baseline."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ponder_app import charts, prepare, ui
from ponder_parse.analysis import catalog

ctx = ui.page_context("layer_heatmaps")
if ctx is not None:
    metrics = [
        m
        for m in catalog.metrics_for("layers", numeric_only=True)
        if m.column not in ("step", "layer")
    ]
    present = [
        m
        for m in metrics
        if any(
            m.column in r.layers.columns and r.layers[m.column].is_not_null().any()
            for r in ctx.runs
        )
    ]
    if not present:
        st.info("None of the shown runs logged per-layer lines.")
    else:
        by_col = {m.column: m for m in present}
        c1, c2 = st.columns([3, 2])
        col = c1.selectbox(
            "Per-layer metric",
            list(by_col),
            index=list(by_col).index("k") if "k" in by_col else 0,
            format_func=lambda c: f"{by_col[c].label} — {by_col[c].meaning}",
            key="lh_metric",
        )
        cols = c2.slider("Columns (step buckets, mean per bucket)", 50, 400, 200, 25, key="lh_cols")
        m = by_col[col]
        st.caption(m.help())
        lo = min((int(r.layers["step"].min()) for r in ctx.runs if r.layers.height), default=0)
        hi = max((int(r.layers["step"].max()) for r in ctx.runs if r.layers.height), default=1)
        step_range = st.slider(
            "Step range", lo, max(hi, lo + 1), (lo, max(hi, lo + 1)), key="lh_range"
        )
        grids = {r.name: prepare.layer_grid(r, col, cols, step_range) for r in ctx.runs}
        values = (
            pl.concat([g.select("value") for g in grids.values() if g.height])
            if any(g.height for g in grids.values())
            else pl.DataFrame()
        )
        domain = (
            (float(values["value"].min()), float(values["value"].max())) if values.height else None
        )
        for name, grid in grids.items():
            ui.show_chart(
                charts.heatmap(
                    grid,
                    title=name,
                    value_title=m.label,
                    domain=domain,
                    value_format=m.fmt if not m.fmt.endswith("%") else ".2%",
                ),
                f"heatmap-{col}-{name}",
            )
        base = ctx.baseline
        others = [n for n in grids if base is not None and n != base.name]
        if base is not None and others:
            st.subheader(f"Difference from the baseline run ({base.name})")
            st.caption(
                "Run minus baseline on the cells both have: red above the baseline, blue below."
            )
            diffs = {n: prepare.layer_diff(grids[n], grids[base.name]) for n in others}
            dv = (
                pl.concat([d.select("value") for d in diffs.values() if d.height])
                if any(d.height for d in diffs.values())
                else pl.DataFrame()
            )
            ddom = (float(dv["value"].min()), float(dv["value"].max())) if dv.height else None
            for n, d in diffs.items():
                ui.show_chart(
                    charts.heatmap(
                        d,
                        title=f"{n} − {base.name}",
                        value_title=f"Δ {m.label}",
                        domain=ddom,
                        diverging=True,
                    ),
                    f"heatmap-diff-{col}-{n}",
                )
