"""Layer heatmaps: one per-layer metric as layer × step, per run, plus differences from the baseline."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from ponder_app import charts, prepare, registry, state, ui, viewstate
from ponder_app.state import Context

AUDITED = "▼ audit steps: their layer lines (forced k=2) are left out of the cells."

VIEWS = {"heatmaps": "Heatmaps", "lines": "Lines per layer"}
"""The page's two views, as the URL names them (`?layer_view=lines`) and as the radio shows them."""


@ui.fragment
def page_body(ctx: Context) -> None:
    """The controls and the heatmaps: a fragment, so a control redraws these charts only."""
    present = prepare.layer_metrics(ctx.runs)
    if not present:
        st.info("None of the shown runs logged per-layer lines.")
    else:
        by_col = {m.column: m for m in present}
        counts = ctx.column_counts()
        flat = prepare.flat_in(ctx.runs, ctx.rules, counts)
        notes = {c: prepare.flat_note(m.key, flat, ctx.runs, counts) for c, m in by_col.items()}
        ss = st.session_state
        default = "k" if "k" in by_col else next(iter(by_col))
        lo, hi = prepare.step_extent(r.layers for r in ctx.runs)
        # What a shared link asks for, checked against what these runs have.
        asked = state.take_url(viewstate.LAYER_METRIC)
        if (picked := viewstate.parse_choice(asked or [], list(by_col))) is not None:
            ss["lh_metric"] = picked
        asked = state.take_url(viewstate.LAYER_RANGE)
        if (rng := viewstate.parse_range(asked or [], lo, hi)) is not None:
            ss["lh_range"] = rng
        asked = state.take_url(viewstate.LAYER_VIEW)
        if (shape := viewstate.parse_choice(asked or [], list(VIEWS))) is not None:
            ss["lh_view"] = shape
        state.seed("lh_metric", default)
        state.seed("lh_view", "heatmaps")
        if ss["lh_metric"] not in by_col:  # a metric the runs shown now do not log
            ss["lh_metric"] = default
        c1, c2, c3 = st.columns([3, 2, 1])
        col = c1.selectbox(
            "Per-layer metric",
            list(by_col),
            format_func=lambda c: (
                f"{prepare.picker_label(by_col[c], notes[c])} — {by_col[c].meaning}"
            ),
            key="lh_metric",
            on_change=state.remember,
            args=("lh_metric",),
        )
        kind = c1.radio(
            "View",
            list(VIEWS),
            format_func=VIEWS.get,
            key="lh_view",
            on_change=state.remember,
            args=("lh_view",),
            horizontal=True,
            help="Heatmaps: layer × step, the mean of each step bucket, with differences "
            "from the baseline. Lines per layer: one line per layer over the steps (min "
            "and max of each bucket kept, so a spike in one layer shows), a chart per run.",
        )
        # Fewer columns to start with when many runs would make the page's maps heavy
        # for the browser (`prepare.HEATMAP_CELLS`); any width is one move away.
        state.seed("lh_cols", prepare.default_heatmap_columns(ctx.runs, ctx.baseline is not None))
        cols = c2.slider(
            "Columns (step buckets, mean per bucket)",
            50,
            400,
            step=25,
            key="lh_cols",
            on_change=state.remember,
            args=("lh_cols",),
            disabled=kind == "lines",
            help="The page starts with 200, fewer when many runs are shown (at most "
            f"{prepare.HEATMAP_CELLS:,} cells in all, each drawn by the browser).",
        )
        with c3:
            include_audit = ui.audit_toggle(page="layer_heatmaps")
        m = by_col[col]
        st.caption(m.help())
        if notes[col]:
            st.warning(f"{m.label}: {notes[col]}. The heatmap below is not a measurement.")
        # A range that ended at the last step follows the runs as they grow, as on the
        # step line; set through session state only, so the slider has one source of truth.
        v = state.view()
        ss["lh_range"] = viewstate.follow_range(
            ss.get("lh_range", v.get("lh_range")), lo, hi, v.get("_lh_top")
        )
        v["_lh_top"], v["_lh_extent"], v["lh_range"] = hi, (lo, hi), ss["lh_range"]
        st.slider(
            "Step range", lo, hi, key="lh_range", on_change=state.remember, args=("lh_range",)
        )
        step_range: tuple[int, int] = ss["lh_range"]
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

        if kind == "lines":
            lines_per_layer(ctx, col, step_range, include_audit, x_domain)
            state.write_url()
            return

        def build() -> tuple[Any, pl.DataFrame, Any, pl.DataFrame, bool]:
            """Every run's heatmap of this choice as one view, and the differences from the
            baseline as another, with the cells each plots (their data downloads). One
            view, not a chart per run: the browser compiles and draws one Vega view, and
            one step sits at one place down the page."""
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
            maps = charts.stack(
                [
                    charts.heatmap(
                        grid,
                        title=name,
                        value_title=m.label,
                        domain=domain,
                        value_format=charts.d3_format(m.fmt),
                        marks=marks[name],
                        x_domain=x_domain,
                    )
                    for name, grid in grids.items()
                ]
            )
            audited = not include_audit and any(
                mk is not None and mk.height for mk in marks.values()
            )
            diffs = prepare.layer_diffs(grids, base.name) if base is not None else {}
            ddom = prepare.value_domain(diffs.values())
            diff_maps = (
                charts.stack(
                    [
                        charts.heatmap(
                            d,
                            title=f"{n} − {base.name}",
                            value_title=f"Δ {m.label}",
                            domain=ddom,
                            diverging=True,
                            x_domain=x_domain,
                        )
                        for n, d in diffs.items()
                    ]
                )
                if diffs and base is not None
                else None
            )
            return maps, prepare.with_run(grids), diff_maps, prepare.with_run(diffs), audited

        # The same runs and choices give the same heatmaps: from the cache, specs included.
        (chart, spec), cells, diff_view, diff_cells, audited = ui.cached(
            (ctx.content_key(), col, cols, step_range, include_audit, base and ctx.key(base)),
            build,
        )

        def show_maps() -> None:
            ui.show_chart(chart, f"heatmaps-{col}", spec=spec, data=cells)
            if audited:
                st.caption(AUDITED)

        if diff_view is None or base is None:
            show_maps()
        else:
            # The differences are as many maps again: in a tab of their own, drawn when
            # chosen, so a control costs the browser the maps in view only.
            (runs_tab, runs_open), (diff_tab, diff_open) = ui.lazy_tabs(
                registry.HEATMAP_TABS, "lh_tab"
            )
            if runs_open:
                with runs_tab:
                    show_maps()
            if diff_open:
                with diff_tab:
                    st.subheader(f"Difference from the baseline run ({ui.plain(base.name)})")
                    st.caption(
                        "Run minus baseline on the cells both have: red above the baseline, "
                        "blue below."
                    )
                    diff_chart, diff_spec = diff_view
                    ui.show_chart(
                        diff_chart, f"heatmap-diffs-{col}", spec=diff_spec, data=diff_cells
                    )
    state.write_url()


def lines_per_layer(
    ctx: Context,
    col: str,
    step_range: tuple[int, int],
    include_audit: bool,
    x_domain: tuple[float, float],
) -> None:
    """A chart per shown run, a line per layer; one value axis for all, so the runs compare."""
    m = {lm.column: lm for lm in prepare.layer_metrics(ctx.runs)}[col]

    def build() -> tuple[Any, pl.DataFrame]:
        """Every run's lines as one view (one Vega view to build, one set of downloads),
        with the rows they plot."""
        lines = {r.name: prepare.layer_lines(r, col, step_range, include_audit) for r in ctx.runs}
        y_domain = prepare.value_domain(lines.values())
        view = charts.stack(
            [
                charts.layer_lines_chart(
                    data,
                    title=name,
                    value_title=m.label,
                    value_format=charts.d3_format(m.fmt),
                    x_domain=x_domain,
                    y_domain=y_domain,
                )
                for name, data in lines.items()
            ]
        )
        return view, prepare.with_run(lines)

    (chart, spec), data = ui.cached(
        ("layer-lines", ctx.content_key(), col, step_range, include_audit), build
    )
    ui.show_chart(chart, f"layer-lines-{col}", spec=spec, data=data)
    st.caption(
        f"Each layer is reduced to at most {prepare.LAYER_LINE_POINTS} points by keeping "
        "the minimum and maximum of every step bucket, so no spike is hidden"
        + ("." if include_audit else "; audit steps (forced k=2) are left out.")
        + " Click a layer in the legend to pick it out."
    )


ctx = ui.page_context("layer_heatmaps")
if ctx is not None:
    page_body(ctx)
