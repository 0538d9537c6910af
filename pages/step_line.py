"""Step line: every per-step metric, runs overlaid, smoothed, with phases and thresholds."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from ponder_app import charts, prepare, state, ui, viewstate
from ponder_app.state import Context
from ponder_parse.analysis import catalog, smoothing, sweep
from ponder_parse.analysis import red_flags as flags

SMOOTHING = 0.6
X_AXES = list(charts.X_TITLES)  # the x axes a chart can draw, with their titles
Y_SCALES = ["auto", "linear", "log"]


@ui.fragment
def step_line(ctx: Context) -> None:
    """The controls and the charts: a fragment, so changing a control redraws the charts
    and leaves the sidebar, the loading and the rest of the frame alone."""
    ss = st.session_state
    # Which metrics the runs have, from their column counts (a stored run's are in its
    # row); then only the chosen metrics' columns are read (from disk, for a stored run).
    counts = ctx.column_counts()
    options = prepare.metric_options(counts.values())
    by_key = {m.key: m for m in options}
    flat = prepare.flat_in(ctx.runs, ctx.rules, counts)
    notes = {k: prepare.flat_note(k, flat, ctx.runs, counts) for k in by_key}
    default = prepare.default_step_metrics(by_key)
    # What a shared link asks for, checked against what these runs have.
    asked = state.take_url(viewstate.METRICS)
    if (picked := viewstate.parse_choices(asked or [], list(by_key))) is not None:
        ss["sl_metrics"] = picked
    asked_range = state.take_url(viewstate.RANGE)
    asked = state.take_url(viewstate.SMOOTHING)
    if (w := viewstate.parse_float(asked or [], 0.0, 0.99)) is not None:
        ss["sl_smooth"] = w
    focus = ss.pop("step_line_focus", None)
    if focus:
        ss["sl_metrics"] = [k for k in focus["metrics"] if k in by_key] or default
        ss["sl_range"] = tuple(focus["range"])
        ss["sl_highlight"] = [focus["run"]] if focus.get("run") else []
    state.seed("sl_metrics", default)
    ss["sl_metrics"] = [k for k in ss["sl_metrics"] if k in by_key]
    state.seed("sl_smooth", SMOOTHING)
    chosen = st.multiselect(
        "Metrics",
        list(by_key),
        format_func=lambda k: (
            f"{catalog.LEVEL_TITLES[by_key[k].level]} · {by_key[k].group} — "
            f"{prepare.picker_label(by_key[k], notes[k])}"
        ),
        key="sl_metrics",
        on_change=state.remember,
        args=("sl_metrics",),
        help="Grouped by the guide's levels: the step line (level 1) and recurrence quality (level 4).",
    )
    columns = prepare.step_columns(by_key[k] for k in chosen)
    frames = {r.name: ctx.frame(r, columns) for r in ctx.runs}
    lo, top = prepare.step_extent(frames.values())
    if not focus and (rng := viewstate.parse_range(asked_range or [], lo, top)) is not None:
        ss["sl_range"] = rng
    c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
    method: str = (
        c1.selectbox(
            "Smoothing",
            list(smoothing.SMOOTHERS.keys()),
            format_func=lambda k: smoothing.SMOOTHERS[k],
            **state.kept("sl_method", smoothing.EMA, options=list(smoothing.SMOOTHERS)),
            help="EMA: TensorBoard's debiased exponential moving average. Time-weighted EMA: "
            "decays by distance in steps, so gaps and denser logging smooth alike (W&B). "
            "Running average: mean of the last 1/(1−weight) points.",
        )
        or smoothing.EMA
    )
    weight = c1.slider(
        "Smoothing weight",
        0.0,
        0.99,
        step=0.01,
        key="sl_smooth",
        on_change=state.remember,
        args=("sl_smooth",),
        help="0 = raw. The same strength for every method (an EMA weight of 0.9 ≈ a "
        "running average of 10 points).",
    )
    show_raw = c1.toggle("Raw series behind", **state.kept("sl_raw", True))
    x = c2.radio(
        "X axis",
        X_AXES,
        format_func=charts.X_TITLES.get,
        **state.kept("sl_x", "step", options=X_AXES),
        horizontal=False,
    )
    log_mode = c3.radio(
        "Y scale",
        Y_SCALES,
        **state.kept("sl_log", "auto", options=Y_SCALES),
        help="auto: log for metrics that span decades (LR, λ_p, ponder).",
    )
    ignore_outliers = c3.toggle(
        "Ignore outliers",
        **state.kept("sl_outliers", False),
        help="Fit each y axis to the 1st–99th percentile of the plotted values; spikes "
        "beyond it are cut at the edge.",
    )
    overlay = c3.toggle(
        "One chart for all metrics",
        **state.kept("sl_overlay", False),
        help="Every chosen metric in one panel: colour is the run, the dash pattern the "
        "metric. Metrics differ by orders of magnitude, so each is scaled to its own range "
        "over the step range (0 = its lowest value, 1 = its highest; one scale for all runs, "
        "so runs still compare) and the tooltip gives the values as logged. Off: a panel "
        "per metric, each with its own y axis. Metrics on a log scale (Y scale) are "
        "scaled on their logarithm.",
    )
    shared_axis = overlay and c3.toggle(
        "Shared y axis (raw values)",
        **state.kept("sl_overlay_raw", False),
        help="Draw the values as logged on one axis instead of scaling each metric: for "
        "metrics of one unit (the tail shares, the losses).",
    )
    group_keys = prepare.group_keys(ctx.runs)
    group_options = ["", prepare.SEED_GROUPS, *group_keys]
    group_by = c4.selectbox(
        "Group runs",
        group_options,
        format_func=lambda k: {
            "": "no grouping",
            prepare.SEED_GROUPS: "seeds (runs that differ only in seed)",
        }.get(k, k),
        **state.kept("sl_group_by", "", options=group_options),
        help="Runs of a group are drawn as their mean line with a band.",
    )
    band_kind: str = (
        c4.selectbox(
            "Band",
            list(prepare.BANDS.keys()),
            format_func=lambda k: prepare.BANDS[k],
            **state.kept("sl_band", "minmax", options=list(prepare.BANDS)),
        )
        or "minmax"
    )
    with c4:
        include_audit = ui.audit_toggle(page="step_line")
    marks_audit = c4.toggle("Mark audit steps", **state.kept("sl_audit", False))
    show_phases = c4.toggle("Phase bands (baseline run)", **state.kept("sl_phases", True))

    # Smoothing per chart: a chart set to its own method and weight keeps them whatever
    # the page's smoothing says (a noisy metric beside a smooth one).
    own: dict[str, tuple[str, float]] = {}
    hows = [prepare.PAGE_SMOOTHING, *smoothing.SMOOTHERS]
    with c1.popover(
        "Smoothing per chart",
        help="Give a chart a smoothing of its own (its title says so); the others follow "
        "the page's.",
    ):
        for key in chosen:
            how = st.selectbox(
                by_key[key].label,
                hows,
                format_func=lambda k: smoothing.SMOOTHERS.get(k, "the page's smoothing"),
                **state.kept(f"sl_how_{key}", prepare.PAGE_SMOOTHING, options=hows),
            )
            if how and how != prepare.PAGE_SMOOTHING:
                own[key] = (
                    how,
                    st.slider(
                        f"Weight ({by_key[key].label})",
                        0.0,
                        0.99,
                        step=0.01,
                        **state.kept(f"sl_weight_{key}", weight),
                    ),
                )

    def smoothing_of(key: str) -> tuple[str, float]:
        return own.get(key, (method, weight))

    # A range that ended at the last step follows the runs as they grow (live runs); any
    # other range is kept, clamped to the runs shown now. Set through session state only,
    # so the slider has one source of truth.
    v = state.view()
    ss["sl_range"] = viewstate.follow_range(
        ss.get("sl_range", v.get("sl_range")), lo, top, v.get("_sl_top")
    )
    v["_sl_top"], v["_sl_extent"], v["sl_range"] = top, (lo, top), ss["sl_range"]
    st.slider(
        "Step range (the x axis of every chart; the visible range is re-sampled at full resolution)",
        lo,
        top,
        key="sl_range",
        on_change=state.remember,
        args=("sl_range",),
    )
    step_range: tuple[int, int] = st.session_state["sl_range"]
    highlight = [n for n in st.session_state.get("sl_highlight", []) if n in frames]
    if highlight:
        h1, h2 = st.columns([5, 1])
        h1.caption(f"Highlighted: {', '.join(ui.plain(n) for n in highlight)} (from a red flag).")
        if h2.button("Clear highlight", key="sl_clear_highlight"):
            st.session_state["sl_highlight"] = []
            st.rerun()

    if group_by == prepare.SEED_GROUPS:
        groups = sweep.repeated_seed_groups(ctx.runs)
    elif group_by:
        groups = prepare.config_groups(ctx.runs, group_by)
    else:
        groups = {}
    base = ctx.baseline
    bands = (
        prepare.phase_bands(ctx.phases(base), frames.get(base.name), x)
        if (show_phases and base is not None)
        else None
    )
    markers = prepare.event_markers(ctx.runs, frames, x, step_range, marks_audit)
    colors = charts.with_group_colors(ctx.colors, [g for g, m in groups.items() if len(m) > 1])
    if not chosen:
        st.info("Pick at least one metric.")
    # Everything the charts are drawn from: the same inputs give the same view, from the
    # cache (specs included), so a control elsewhere costs nothing.
    view_key = (
        ctx.content_key(),
        tuple(chosen),
        x,
        tuple(smoothing_of(k) for k in chosen),
        show_raw,
        step_range,
        include_audit,
        log_mode,
        ignore_outliers,
        band_kind,
        tuple((g, tuple(m)) for g, m in groups.items()),
        marks_audit,
        ctx.phases_key([base]) if show_phases and base else None,
        tuple(colors.items()),
        tuple(highlight),
        repr(ctx.rules),
        overlay,
        shared_axis,
    )

    def build_overlay() -> tuple[alt.TopLevelMixin, pl.DataFrame] | None:
        """Every chosen metric in one panel, from the panels' own (cached) series."""
        parts = {}
        for key in chosen:
            parts[by_key[key].label] = panel_data(key).series
        logs = {
            by_key[k].label
            for k in chosen
            if (by_key[k].log_scale if log_mode == "auto" else log_mode == "log")
        }
        data = prepare.overlay_series(parts, normalize=not shared_axis, log_metrics=logs)
        if data.is_empty():
            return None
        hover = prepare.overlay_hover(
            {by_key[k].label: panel_data(k).hover for k in chosen},
            parts,
            normalize=not shared_axis,
            log_metrics=logs,
        )
        chart = charts.overlay_chart(
            data,
            title=", ".join(parts)
            + (" — one panel, each metric scaled to its own range" if not shared_axis else ""),
            colors=colors,
            x=x,
            normalized=not shared_axis,
            smoothed=any(smoothing_of(k)[1] > 0 for k in chosen),
            show_raw=show_raw,
            x_domain=prepare.x_domain(data, x, step_range),
            highlight=highlight,
            hover=hover,
        )
        return chart, data

    # What a panel is drawn from, cached apart from the drawing: the toggles that only
    # change how it looks (raw behind, outliers, y scale, phases, marks, highlight) redraw
    # from these instead of smoothing, thinning and sampling every run again.
    data_key = (
        ctx.content_key(),
        x,
        step_range,
        include_audit,
        band_kind,
        tuple((g, tuple(m)) for g, m in groups.items()),
        repr(ctx.rules),
    )

    def panel_data(key: str) -> prepare.PanelData:
        m = by_key[key]
        how, w = smoothing_of(key)
        return ui.cached(
            (*data_key, key, how, w),
            lambda: prepare.panel_data(
                frames,
                ctx.runs,
                m.column,
                m.table,
                x=x,
                weight=w,
                method=how,
                step_range=step_range,
                include_audit=include_audit,
                groups=groups,
                band_kind=band_kind,
                rules=ctx.rules,
            ),
        )

    def build() -> tuple[alt.TopLevelMixin, pl.DataFrame] | None:
        if overlay:
            return build_overlay()
        panels = []
        plotted = []
        for i, key in enumerate(chosen):
            m = by_key[key]
            d = panel_data(key)
            series, band, domain = d.series, d.band, d.x_domain
            log_y = m.log_scale if log_mode == "auto" else log_mode == "log"
            note = notes[key]
            how, w = smoothing_of(key)
            panels.append(
                charts.metric_chart(
                    series,
                    title=(f"{m.label} — {note}" if note else f"{m.label} — {m.meaning}")
                    + (f" ({prepare.smoothing_title(how, w)})" if key in own else ""),
                    y_title=m.label,
                    colors=colors,
                    x=x,
                    log_y=log_y,
                    smoothed=w > 0,
                    show_raw=show_raw,
                    refs=flags.reference_lines(m.column, m.table, ctx.rules),
                    run_refs=d.run_refs,
                    audit_points=d.audit_points,
                    bands=prepare.clip_spans(bands, domain),
                    markers=markers,
                    band=band,
                    x_domain=domain,
                    y_domain=prepare.y_domain(
                        series,
                        ("value", "smooth") if show_raw or w == 0 else ("smooth",),
                        log=log_y,
                        ignore_outliers=ignore_outliers,
                        band=band,
                    ),
                    value_format=charts.d3_format(m.fmt),
                    hover=d.hover,
                    highlight=highlight,
                    legend=i == len(chosen) - 1,  # one legend, under the last chart
                )
            )
            plotted.append(series.with_columns(pl.lit(m.column).alias("metric")))
        if not panels:
            return None
        return charts.stack(panels), pl.concat(plotted, how="diagonal_relaxed")

    built = ui.cached(view_key, build) if chosen else None
    if built is not None:
        (chart, spec), data = built
        ui.show_chart(
            chart,
            "step_line-" + "-".join(by_key[k].column for k in chosen),
            spec=spec,
            data=data,
        )
        st.caption(
            "Hover: every run's value of every metric at that step, as logged. Drag to pan, "
            "scroll to zoom the x axis; double-click to go back to the step range. Click a run "
            "or a metric in the legend to pick it out (shift-click for several). Reference lines, "
            "phase bands and group bands are drawn in the per-metric panels only."
            if overlay
            else "Hover: every run's value at that step, on every chart. Drag to pan, scroll to "
            "zoom the x axis of all charts together; double-click to go back to the step "
            "range. Click a run in the legend to highlight it (shift-click for several)."
        )
    for key in chosen:
        m = by_key[key]
        with st.expander(f"About {m.label}", expanded=False):
            st.markdown(flags.metric_help(m, ctx.rules))
    st.caption(
        (
            "Audit steps are counted in the lines. "
            if include_audit
            else prepare.audit_points_note(len(frames)) + " "
        )
        + "Dashed grey lines: fixed references and the red-flag thresholds (as set on the Red "
        "flags page); dashed coloured lines: each run's own TARGET_K, the λ_p clamps its "
        "config sets, and thresholds relative to its own level. "
        f"Each run is reduced to at most {prepare.points_per_run(len(frames))} points per metric by keeping "
        "the minimum and maximum of every step bucket, so no spike is hidden; zoom in to see every step."
    )
    state.write_url()


ctx = ui.page_context("step_line")
if ctx is not None:
    step_line(ctx)
