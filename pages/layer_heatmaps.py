"""Layer heatmaps: one per-layer metric as layer × step, per run, plus differences from the baseline."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from ponder_app import charts, prepare, ui
from ponder_app.state import Context


@ui.fragment
def page_body(ctx: Context) -> None:
    """The controls and the heatmaps: a fragment, so a control redraws these charts only."""
    present = prepare.layer_metrics(ctx.runs)
    if not present:
        st.info("None of the shown runs logged per-layer lines.")
    else:
        by_col = {m.column: m for m in present}
        flat = prepare.flat_in(ctx.runs, ctx.rules)
        notes = {c: prepare.flat_note(m.key, flat, ctx.runs) for c, m in by_col.items()}
        c1, c2, c3 = st.columns([3, 2, 1])
        col = c1.selectbox(
            "Per-layer metric",
            list(by_col),
            index=list(by_col).index("k") if "k" in by_col else 0,
            format_func=lambda c: (
                f"{prepare.picker_label(by_col[c], notes[c])} — {by_col[c].meaning}"
            ),
            key="lh_metric",
        )
        cols = c2.slider("Columns (step buckets, mean per bucket)", 50, 400, 200, 25, key="lh_cols")
        with c3:
            include_audit = ui.audit_toggle(page="layer_heatmaps")
        m = by_col[col]
        st.caption(m.help())
        if notes[col]:
            st.warning(f"{m.label}: {notes[col]}. The heatmap below is not a measurement.")
        lo, hi = prepare.step_extent(r.layers for r in ctx.runs)
        step_range = st.slider("Step range", lo, hi, (lo, hi), key="lh_range")
        base = ctx.baseline
        x_domain = (float(step_range[0]), float(step_range[1]) + 1)
        profile = prepare.layer_profile(ctx.runs, col, step_range, include_audit)
        ui.show_chart(
            charts.layer_profile_chart(
                profile,
                title=f"{m.label}: mean per layer over the step range",
                value_title=m.label,
                colors=ctx.colors,
                value_format=charts.d3_format(m.fmt),
            ),
            f"layer-profile-{col}",
            data=profile,
        )

        def build() -> tuple[
            list[tuple[str, Any, pl.DataFrame]], list[tuple[str, Any, pl.DataFrame]], bool
        ]:
            """Every heatmap of this choice, and the differences from the baseline, with
            the cells each plots (their data downloads)."""
            buckets = prepare.grid_buckets(ctx.runs, cols, step_range)
            grids = {
                r.name: prepare.layer_grid(
                    r, col, cols, step_range, include_audit=include_audit, buckets=buckets
                )
                for r in ctx.runs
            }
            marks = {
                r.name: None if include_audit else prepare.audit_marks(r, step_range)
                for r in ctx.runs
            }
            domain = prepare.value_domain(grids.values())
            maps = [
                (
                    name,
                    charts.heatmap(
                        grid,
                        title=name,
                        value_title=m.label,
                        domain=domain,
                        value_format=charts.d3_format(m.fmt),
                        marks=marks[name],
                        x_domain=x_domain,
                    ),
                    grid,
                )
                for name, grid in grids.items()
            ]
            audited = not include_audit and any(
                mk is not None and mk.height for mk in marks.values()
            )
            diffs = prepare.layer_diffs(grids, base.name) if base is not None else {}
            ddom = prepare.value_domain(diffs.values())
            diff_maps = [
                (
                    n,
                    charts.heatmap(
                        d,
                        title=f"{n} − {base.name}",
                        value_title=f"Δ {m.label}",
                        domain=ddom,
                        diverging=True,
                        x_domain=x_domain,
                    ),
                    d,
                )
                for n, d in diffs.items()
                if base is not None
            ]
            return maps, diff_maps, audited

        # The same runs and choices give the same heatmaps: from the cache, specs included.
        maps, diff_maps, audited = ui.cached(
            (ctx.content_key(), col, cols, step_range, include_audit, base and ctx.key(base)),
            build,
        )
        for name, (chart, spec), grid in maps:
            ui.show_chart(chart, f"heatmap-{col}-{name}", spec=spec, data=grid)
        if audited:
            st.caption("▼ audit steps: their layer lines (forced k=2) are left out of the cells.")
        if diff_maps and base is not None:
            st.subheader(f"Difference from the baseline run ({ui.plain(base.name)})")
            st.caption(
                "Run minus baseline on the cells both have: red above the baseline, blue below."
            )
            for n, (chart, spec), d in diff_maps:
                ui.show_chart(chart, f"heatmap-diff-{col}-{n}", spec=spec, data=d)


ctx = ui.page_context("layer_heatmaps")
if ctx is not None:
    page_body(ctx)
