"""Step line: every per-step metric, runs overlaid, smoothed, with phases and thresholds."""

from __future__ import annotations

import altair as alt
import streamlit as st

from ponder_app import charts, prepare, state, ui, viewstate
from ponder_app.state import Context
from ponder_parse.analysis import catalog, sweep

SMOOTHING = 0.6


@ui.fragment
def step_line(ctx: Context) -> None:
    """The controls and the charts: a fragment, so changing a control redraws the charts
    and leaves the sidebar, the loading and the rest of the frame alone."""
    ss = st.session_state
    frames = {r.name: ctx.frame(r) for r in ctx.runs}
    options = prepare.metric_options(frames)
    by_key = {m.key: m for m in options}
    flat = prepare.flat_in(ctx.runs)
    notes = {k: prepare.flat_note(k, flat, ctx.runs) for k in by_key}
    lo, top = prepare.step_extent(frames.values())
    default = prepare.default_step_metrics(by_key)
    # What a shared link asks for, checked against what these runs have.
    asked = state.take_url(viewstate.METRICS)
    if (picked := viewstate.parse_choices(asked or [], list(by_key))) is not None:
        ss["sl_metrics"] = picked
    asked = state.take_url(viewstate.RANGE)
    if (rng := viewstate.parse_range(asked or [], lo, top)) is not None:
        ss["sl_range"] = rng
    asked = state.take_url(viewstate.SMOOTHING)
    if (w := viewstate.parse_float(asked or [], 0.0, 0.99)) is not None:
        ss["sl_smooth"] = w
    focus = ss.pop("step_line_focus", None)
    if focus:
        ss["sl_metrics"] = [k for k in focus["metrics"] if k in by_key] or default
        ss["sl_range"] = tuple(focus["range"])
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
    c1, c2, c3, c4 = st.columns([2, 2, 2, 2])
    weight = c1.slider(
        "Smoothing (EMA weight)",
        0.0,
        0.99,
        step=0.01,
        key="sl_smooth",
        on_change=state.remember,
        args=("sl_smooth",),
        help="TensorBoard-style debiased exponential moving average. 0 = raw.",
    )
    x = c2.radio(
        "X axis",
        ["step", "elapsed_min", "tokens"],
        format_func=charts.X_TITLES.get,
        key="sl_x",
        horizontal=False,
    )
    log_mode = c3.radio(
        "Y scale",
        ["auto", "linear", "log"],
        key="sl_log",
        help="auto: log for metrics that span decades (LR, λ_p, ponder).",
    )
    group_seeds = c4.toggle(
        "Group seeds (mean, min–max band)",
        key="sl_group",
        help="Runs that differ only in seed drawn as one line with a band.",
    )
    with c4:
        include_audit = ui.audit_toggle(page="step_line")
    marks_audit = c4.toggle("Mark audit steps", key="sl_audit", value=False)
    show_phases = c4.toggle("Phase bands (baseline run)", key="sl_phases", value=True)

    # A range that ended at the last step follows the runs as they grow (live runs); any
    # other range is kept, clamped to the runs shown now. Set through session state only,
    # so the slider has one source of truth.
    v = state.view()
    ss["sl_range"] = viewstate.follow_range(
        ss.get("sl_range", v.get("sl_range")), lo, top, v.get("_sl_top")
    )
    v["_sl_top"], v["_sl_extent"], v["sl_range"] = top, (lo, top), ss["sl_range"]
    st.slider(
        "Step range (zoom: the visible range is re-sampled at full resolution)",
        lo,
        top,
        key="sl_range",
        on_change=state.remember,
        args=("sl_range",),
    )
    step_range: tuple[int, int] = st.session_state["sl_range"]

    groups = sweep.repeated_seed_groups(ctx.runs) if group_seeds else {}
    base = ctx.baseline
    bands = (
        prepare.phase_bands(ctx.phases(base), frames.get(base.name), x)
        if (show_phases and base is not None)
        else None
    )
    markers = prepare.event_markers(ctx.runs, frames, x, step_range, marks_audit)
    colors = charts.with_group_colors(ctx.colors, list(groups), len(ctx.all_runs))
    if not chosen:
        st.info("Pick at least one metric.")
    # Everything a chart is drawn from: the same inputs give the same chart, from the cache.
    shared_key = (
        ctx.content_key(),
        x,
        weight,
        step_range,
        include_audit,
        log_mode,
        tuple((g, tuple(m)) for g, m in groups.items()),
        marks_audit,
        (ctx.key(base), tuple(sorted(ctx.overrides(base).items())))
        if show_phases and base
        else None,
        tuple(colors.items()),
    )
    for key in chosen:
        m = by_key[key]

        def build(m: catalog.Metric = m, key: str = key) -> alt.TopLevelMixin:
            band = None
            if groups:
                full = prepare.step_series(
                    frames,
                    m.column,
                    x=x,
                    weight=weight,
                    step_range=step_range,
                    thin=False,
                    include_audit=include_audit,
                )
                series, band = prepare.seed_group_series(full, groups, x)
            else:
                series = prepare.step_series(
                    frames,
                    m.column,
                    x=x,
                    weight=weight,
                    step_range=step_range,
                    include_audit=include_audit,
                )
            log_y = m.log_scale if log_mode == "auto" else log_mode == "log"
            note = notes[key]
            return charts.metric_chart(
                series,
                title=f"{m.label} — {note}" if note else f"{m.label} — {m.meaning}",
                y_title=m.label,
                colors=colors,
                x=x,
                log_y=log_y,
                smoothed=weight > 0,
                refs=catalog.reference_lines(m.column, m.table),
                run_refs=prepare.run_refs(ctx.runs, m.column, m.table),
                audit_points=None
                if include_audit
                else prepare.audit_points(frames, m.column, x=x, step_range=step_range),
                bands=bands,
                markers=markers,
                band=band,
                value_format=charts.d3_format(m.fmt),
            )

        ui.show_chart_cached((key, *shared_key), build, f"step_line-{m.column}")
        with st.expander(f"About {m.label}", expanded=False):
            st.markdown(m.help())
    st.caption(
        (
            "Audit steps are counted in the lines. "
            if include_audit
            else "Open circles: values "
            "on audit steps (forced k=2), left out of the lines and the smoothing. "
        )
        + "Dashed coloured lines: each run's own TARGET_K (and λ_p clamps its config sets). "
        f"Each run is reduced to at most {prepare.points_per_run(len(frames))} points per metric by keeping "
        "the minimum and maximum of every step bucket, so no spike is hidden; zoom in to see every step."
    )
    state.write_url()


ctx = ui.page_context("step_line")
if ctx is not None:
    step_line(ctx)
