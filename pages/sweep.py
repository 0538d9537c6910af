"""Sweep: runs × hyperparameters × outcomes, to see which settings trained well."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ponder_app import charts, prepare, state, ui
from ponder_parse.analysis import summaries, sweep
from ponder_parse.files import hparams

ctx = ui.page_context("sweep")
if ctx is not None:
    c1, c2 = st.columns(2)
    only_diff = c1.toggle("Show only hyperparameters that differ", **state.kept("sw_diff", True))
    with c2:
        include_audit = ui.audit_toggle(page="sweep")
    outcomes = {r.name: ctx.summary(r, include_audit) for r in ctx.runs}
    view = sweep.sweep_view(ctx.runs, outcomes, only_diff)
    table = view.table
    ui.show_table(
        table.select(view.shown),
        "sweep",
        column_config={
            "win_rate": st.column_config.NumberColumn(format="percent"),
            **{
                c: st.column_config.NumberColumn(help=h)
                for c, h in summaries.column_help(view.shown).items()
            },
        },
    )

    multi = sweep.repeated_seed_groups(ctx.runs)
    if multi:
        st.markdown(
            "**Seed groups** (runs that differ only in seed; grouped on the step line with *Group seeds*):"
        )
        st.markdown(
            "\n".join(
                f"- {ui.plain(g)}: {', '.join(ui.plain(n) for n in m)}" for g, m in multi.items()
            )
        )

    st.subheader("Parallel coordinates")
    axes = st.multiselect(
        "Axes", view.axes, **state.kept("sw_axes", view.default_axes, options=view.axes)
    )
    ui.show_chart(
        charts.parallel_coordinates(table, axes=axes, colors=ctx.colors), "sweep-parallel"
    )

    st.subheader("Outcome against a hyperparameter")
    c1, c2 = st.columns(2)
    if view.x_options and view.y_options:
        x = c1.selectbox(
            "Hyperparameter",
            view.x_options,
            **state.kept("sw_x", view.x_options[0], options=view.x_options),
        )
        y = c2.selectbox(
            "Outcome",
            view.y_options,
            **state.kept("sw_y", view.y_options[0], options=view.y_options),
        )
        log_x = c1.toggle(
            "Log x",
            **state.kept("sw_logx", False),
            help="For settings swept over decades (λ_p bounds, learning rates).",
        )
        ui.show_chart(
            charts.scatter(table, x=x, y=y, colors=ctx.colors, log_x=log_x), f"sweep-{y}-vs-{x}"
        )

    st.subheader("Loss against compute")
    spent = prepare.compute_spent({r.name: ctx.frame(r, prepare.SPENT_COLUMNS) for r in ctx.runs})
    costs = {
        "k_mean_economic": "mean k (economic phase)",
        prepare.COMPUTE_SPENT: "Σ passes × tokens",
    }
    c1, c2 = st.columns(2)
    cost = (
        c1.selectbox(
            "Compute",
            list(costs.keys()),
            format_func=lambda c: costs[c],
            **state.kept("sw_pareto_x", "k_mean_economic", options=list(costs)),
        )
        or "k_mean_economic"
    )
    losses = [c for c in ("final_lm", "best_lm") if c in table.columns]
    outcome = (
        c2.selectbox(
            "Loss",
            losses,
            **state.kept("sw_pareto_y", losses[0] if losses else None, options=losses),
            help="final_lm: the windowed final LM of the run summaries.",
        )
        or "final_lm"
    )
    have = [c for c in (outcome, cost) if c in table.columns and c != prepare.COMPUTE_SPENT]
    frontier = prepare.pareto_front(
        table.select("run", *have).join(spent, on="run", how="left"), cost, outcome
    )
    ui.show_chart(
        charts.pareto_chart(
            frontier, x=cost, y=outcome, colors=ctx.colors, x_title=costs[cost], y_title=outcome
        ),
        f"sweep-pareto-{outcome}-{cost}",
        data=frontier,
    )
    st.caption(
        "A run is on the front when no other shown run reached a lower loss with less "
        "compute. Runs off the front paid for depth they did not turn into loss."
    )

    st.subheader("Edit tags")
    st.caption(
        "Fix a missing seed, or tag runs for grouping. Edits are saved beside the run "
        "(`.ponder-edits.json`; in your cache folder when the run's folder is read-only), "
        "so they are there next time; an uploaded run's edits last for this session."
    )
    names = [r.name for r in ctx.runs]
    run_name = st.selectbox("Run", names, **state.kept("sw_tag_run", names[0], options=names))
    run = next(r for r in ctx.runs if r.name == run_name)
    edited = st.data_editor(
        hparams.tags_frame(run.hparams),
        num_rows="dynamic",
        hide_index=True,
        width="stretch",
        key=f"sw_tags_{run_name}",
    )
    if st.button("Apply tags", key="sw_apply"):
        changes = hparams.tag_changes(run.hparams, pl.DataFrame(edited).iter_rows())
        edits = dict(st.session_state.get("tag_edits", {}))
        edits[run_name] = {**edits.get(run_name, {}), **changes}
        st.session_state["tag_edits"] = edits
        state.save_edits([run])
        st.rerun()
