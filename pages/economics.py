"""Recurrence economics: the compute price λ_p, and whether recurrence earns its cost."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from ponder_app import charts, prepare, registry, state, ui
from ponder_app.state import Context
from ponder_parse.analysis import economics
from ponder_parse.analysis import red_flags as flags


@ui.fragment
def page_body(ctx: Context) -> None:
    """The controls and the charts: a fragment, so a control redraws these charts only."""
    looks = (ctx.content_key(), tuple(ctx.colors.items()))
    # One tab drawn at a time: the controller view alone is three panels of every run.
    (ctl_tab, ctl_open), (rates_tab, rates_open), (q_tab, q_open) = ui.lazy_tabs(
        registry.ECONOMICS_TABS, "ec_tab"
    )
    if ctl_open:
        with ctl_tab:
            controller_view(ctx, looks)
    if rates_open:
        with rates_tab:
            rates_view(ctx, looks)
    if q_open:
        with q_tab:
            quality_view(ctx, looks)


NO_QUALITY = "No RECURRENCE QUALITY lines yet: the shown runs have not reached the ponder start."
"""What the rates and quality tabs say when no shown run has reached the ponder start."""


def controller_view(ctx: Context, looks: tuple[object, ...]) -> None:
    frames = {r.name: ctx.frame(r, ("lambda_p", "avg_k", "ctrl_err")) for r in ctx.runs}
    c1, c2 = st.columns([3, 1])
    # Seeded and remembered: a control of a tab not shown is not drawn, and would forget.
    state.seed("ec_smooth", 0.0)
    weight = c1.slider(
        "Smoothing (EMA weight)",
        0.0,
        0.99,
        step=0.01,
        key="ec_smooth",
        on_change=state.remember,
        args=("ec_smooth",),
    )
    with c2:
        include_audit = ui.audit_toggle(page="economics")

    def controller() -> tuple[alt.TopLevelMixin, pl.DataFrame]:
        """λ_p, depth and CTRL_ERR as one view (they zoom, pan and hover together),
        with the rows they plot."""
        markers = prepare.event_markers(ctx.runs, frames, "step", None, audits=False)
        lam = prepare.step_series(frames, "lambda_p", weight=weight, include_audit=include_audit)
        depth = prepare.step_series(
            frames, "avg_k", weight=max(weight, 0.6), include_audit=include_audit
        )
        ctrl = prepare.step_series(
            frames, "ctrl_err", weight=max(weight, 0.6), include_audit=include_audit
        )
        lo, hi = prepare.step_extent(frames.values())
        domain = (float(lo), float(hi))
        # One view: the three controller charts zoom, pan and hover together.
        panels = [
            charts.metric_chart(
                lam,
                title="λ_p — compute price per extra pass (dashed verticals: deadband engaged / resumes)",
                y_title="λ_p",
                colors=ctx.colors,
                log_y=True,
                smoothed=weight > 0,
                refs=flags.reference_lines("lambda_p", rules=ctx.rules),
                run_refs=prepare.run_refs(ctx.runs, "lambda_p", rules=ctx.rules),
                markers=markers,
                value_format=".2e",
                x_domain=domain,
                y_domain=prepare.y_domain(lam, log=True),
                hover=prepare.hover_table(lam, "step", domain, "smooth"),
                legend=False,
            ),
            charts.metric_chart(
                depth,
                title="AVGS k against each run's own TARGET_K (the controller prices depth toward it)",
                y_title="AVGS k",
                colors=ctx.colors,
                run_refs=prepare.run_refs(ctx.runs, "avg_k"),
                audit_points=None if include_audit else prepare.audit_points(frames, "avg_k"),
                markers=markers,
                value_format=".2f",
                x_domain=domain,
                hover=prepare.hover_table(depth, "step", domain, "smooth"),
                legend=False,
            ),
            charts.metric_chart(
                ctrl,
                title="CTRL_ERR = avg k − TARGET_K (λ_p rises while positive)",
                y_title="CTRL_ERR",
                colors=ctx.colors,
                refs=[(0.0, "on target")],
                audit_points=None if include_audit else prepare.audit_points(frames, "ctrl_err"),
                markers=markers,
                value_format="+.3f",
                x_domain=domain,
                hover=prepare.hover_table(ctrl, "step", domain, "smooth"),
            ),
        ]
        data = pl.concat(
            [
                d.with_columns(pl.lit(m).alias("metric"))
                for m, d in (("lambda_p", lam), ("avg_k", depth), ("ctrl_err", ctrl))
            ],
            how="diagonal_relaxed",
        )
        return charts.stack(panels), data

    # The same runs and controls give the same charts: cached with their specs, so a
    # return to the page or the tab does not rebuild the controller view.
    (chart, spec), data = ui.cached(
        (*looks, "controller", weight, include_audit, repr(ctx.rules)), controller
    )
    ui.show_chart(chart, "economics-controller", spec=spec, data=data)

    st.caption(
        "Hover for every run's value at a step; drag to pan, scroll to zoom, double-click to reset."
        + ("" if include_audit else " " + prepare.audit_points_note(len(frames)))
    )


def rates_view(ctx: Context, looks: tuple[object, ...]) -> None:
    state.seed("ec_window", 100)
    window = st.slider(
        "Window for rates (policy steps)",
        20,
        500,
        step=10,
        key="ec_window",
        on_change=state.remember,
        args=("ec_window",),
    )
    rr = ui.cached((*looks, "rates", window), lambda: prepare.rolling_rates_of(ctx.runs, window))
    if rr.height:
        for col, title in (
            ("win_rate", "ECONOMIC WIN share of policy steps"),
            ("confidence_rate", "CONFIDENCE+ share of policy steps (ΔCE > 0 and ΔH < 0)"),
        ):

            def rate_chart(col: str = col, title: str = title) -> alt.TopLevelMixin:
                series = prepare.as_series(rr, col)
                # Every run's rate at the hovered step in one tooltip, as on the other
                # charts, instead of an invisible hover target on every point.
                extent = prepare.step_extent([series])
                return charts.metric_chart(
                    series,
                    title=f"{title}, trailing {window} policy steps",
                    y_title=col,
                    colors=ctx.colors,
                    smoothed=False,
                    refs=[(0.5, "half")],
                    value_format=".1%",
                    hover=prepare.hover_table(series, "step", extent, "value"),
                )

            ui.show_chart_cached(
                (*looks, col, window),
                rate_chart,
                f"economics-{col}",
                data=rr.select("run", "step", col),
            )
    else:
        st.info(NO_QUALITY)


def quality_view(ctx: Context, looks: tuple[object, ...]) -> None:
    q = economics.quality_of(ctx.runs)
    if q.height:
        left, right = st.columns(2)
        with left:
            bins = prepare.histogram_bins(economics.policy_steps(q), "delta_ce")
            ui.show_chart_cached(
                (*looks, "delta_ce"),
                lambda: charts.histogram(
                    bins,
                    title="ΔCE on policy steps (right of 0: recurrence helped)",
                    x_title="ΔCE",
                    colors=ctx.colors,
                ),
                "economics-delta_ce",
            )
        with right:
            ui.show_chart_cached(
                (*looks, "status"),
                lambda: charts.count_bars(
                    economics.status_mix(q),
                    category="status",
                    title="Quality status mix",
                    domain=list(charts.STATUS_COLORS),
                    range_=list(charts.STATUS_COLORS.values()),
                ),
                "economics-status",
            )
        audit = economics.audit_summary(q)
        if audit.height:
            st.markdown("**Audit steps** (forced k=2 counterfactuals; λ_p does not move on them)")
            ui.show_table(
                audit,
                "audit-summary",
                column_config={"AUDIT-POS share": st.column_config.NumberColumn(format="percent")},
            )
    else:
        st.info(NO_QUALITY)


ctx = ui.page_context("economics")
if ctx is not None:
    page_body(ctx)
