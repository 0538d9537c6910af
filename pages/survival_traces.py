"""Survival traces: which shape each layer's trace takes, over time, read as the trainer prints it."""

from __future__ import annotations

import altair as alt
import polars as pl
import streamlit as st

from ponder_app import charts, prepare, state, ui, viewstate
from ponder_app.state import Context
from ponder_parse.analysis import patterns, phases
from ponder_parse.run import Run


@ui.fragment
def pattern_shares(ctx: Context, runs: list[Run]) -> None:
    """Pattern shares per phase, with the audit switch that changes them: a fragment of
    its own."""
    st.subheader("Pattern shares per phase")
    include_audit = ui.audit_toggle(page="survival_traces")

    def build() -> tuple[alt.TopLevelMixin, pl.DataFrame]:
        shares = prepare.pattern_share_bars(
            runs, {r.name: ctx.phases(r) for r in runs}, include_audit=include_audit
        )
        return (
            charts.pattern_share_bars(shares, title="Share of each pattern, per run and phase"),
            shares,
        )

    (chart, spec), shares = ui.cached(
        (
            "pattern-shares",
            ctx.phases_key(runs),
            include_audit,
        ),
        build,
    )
    if shares.height:
        ui.show_chart(chart, "pattern-shares", spec=spec)
        st.caption(
            "Forced traces (force-2 warmup"
            + (", audit steps" if include_audit else "; audit steps are left out")
            + ") are a category of their own, never a gate pattern."
        )
        ui.show_table(prepare.pattern_share_table(shares), "pattern-shares")


@ui.fragment
def traces_at_step(runs: list[Run]) -> None:
    """The traces at one step: a fragment, so moving the step redraws these two charts
    only. On the latest step it stays on the latest as a followed run grows."""
    ss = st.session_state
    all_steps = prepare.trace_steps(runs)
    v = state.view()
    # A shared link's step, when the runs shown logged traces at it.
    asked = state.take_url(viewstate.TRACE_STEP)
    if (at := viewstate.parse_step(asked or [], all_steps)) is not None:
        ss["st_step"] = at
    ss["st_step"] = viewstate.follow_step(
        ss.get("st_step", v.get("st_step")), all_steps, v.get("_st_last")
    )
    v["_st_last"], v["st_step"] = all_steps[-1], ss["st_step"]
    step = st.select_slider(
        "Trace step", all_steps, key="st_step", on_change=state.remember, args=("st_step",)
    )
    # Full width, above the runs' traces: in a side column it was squashed to a line.
    ui.show_chart_cached(
        ("reference-shapes",), charts.reference_shapes_chart, "reference-shapes", downloads=False
    )

    def build() -> tuple[alt.TopLevelMixin, pl.DataFrame]:
        curves = prepare.traces_of(runs, step)
        return charts.trace_curves(curves, title=f"Every layer's trace at step {step}"), curves

    (chart, spec), curves = ui.cached(("traces-at", state.context().content_key(runs), step), build)
    ui.show_chart(chart, f"traces-at-{step}", spec=spec, data=curves)
    state.write_url()


ctx = ui.page_context("survival_traces")
if ctx is not None:
    runs = prepare.runs_with(ctx.runs, "traces")
    if not runs:
        st.info("None of the shown runs logged survival traces.")
    else:
        with st.expander("How traces are classified", expanded=False):
            st.markdown(
                "A trace lists the survival entering each pass that **ran**; the loop stops "
                "once nothing is alive, so a trace shorter than the run's Kmax (its longest "
                "trace) means the missing passes had survival ≈ 0. Where the trace alone "
                "cannot tell, the layer line of the same step decides. First match wins:"
            )
            rules = patterns.pattern_rules(patterns.DEFAULT)
            st.markdown(
                "\n".join(
                    f"- **{patterns.CATEGORY_TITLES[p]}** — {patterns.PATTERN_MEANINGS[p]} "
                    f"*Decided by:* {rule}"
                    for p, rule in rules.items()
                )
            )
        st.subheader("Pattern timeline")

        def timelines(page: Context = ctx) -> tuple[alt.TopLevelMixin, pl.DataFrame]:
            """Every run's timeline as one view on one step axis (the same step sits at
            the same place down the page), with the cells it plots."""
            cells_of = {}
            for run in runs:
                force_end = phases.phase_start(page.phases(run), phases.GATE_LEARNING)
                cells_of[run.name] = prepare.trace_timeline(run, force_end=force_end)
            shared_x = prepare.value_domain(
                [c.select(pl.col("start").alias("value")) for c in cells_of.values()]
                + [c.select(pl.col("end").alias("value")) for c in cells_of.values()]
            )
            panels = []
            for run in runs:
                kmax = patterns.run_kmax(run)
                panels.append(
                    charts.pattern_timeline(
                        cells_of[run.name],
                        title=f"{run.name} (Kmax {kmax if kmax is not None else '?'})",
                        x_domain=shared_x,
                    )
                )
            return charts.stack(panels), prepare.with_run(cells_of)

        # The same runs (and phase edits, which move the force-2 end) give the same view.
        (chart, spec), cells = ui.cached(
            (
                "pattern-timelines",
                ctx.phases_key(runs),
            ),
            timelines,
        )
        ui.show_chart(chart, "pattern-timelines", spec=spec, data=cells)

        pattern_shares(ctx, runs)
        traces_at_step(runs)
