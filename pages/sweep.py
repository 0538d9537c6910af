"""Sweep: runs × hyperparameters × outcomes, to see which settings trained well."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from ponder_app import charts, ui
from ponder_parse.analysis import sweep
from ponder_parse.files import hparams

OUTCOMES = (
    "final_lm",
    "best_lm",
    "k_mean_economic",
    "ctrl_err_abs_mean_economic",
    "win_rate",
    "lambda_p_end",
    "n_critical",
    "n_warning",
)

ctx = ui.page_context("sweep")
if ctx is not None:
    summaries = {r.name: ctx.summary(r) for r in ctx.runs}
    table = sweep.sweep_table(
        ctx.runs, {n: {k: s[k] for k in OUTCOMES} for n, s in summaries.items()}
    )
    varying = sweep.varying_hparams(ctx.runs)
    only_diff = st.toggle("Show only hyperparameters that differ", value=True, key="sw_diff")
    hp_cols = [c for c in table.columns if c != "run" and c not in OUTCOMES]
    # Outcomes first: a sweep is read by ranking runs, then asking what they had in common.
    keep = [
        "run",
        *[c for c in OUTCOMES if c in table.columns],
        *([c for c in hp_cols if c in varying] if only_diff else hp_cols),
    ]
    ui.show_table(
        table.select(keep),
        "sweep",
        column_config={"win_rate": st.column_config.NumberColumn(format="percent")},
    )

    groups = sweep.seed_groups(ctx.runs)
    multi = {g: m for g, m in groups.items() if len(m) > 1}
    if multi:
        st.markdown(
            "**Seed groups** (runs that differ only in seed; grouped on the step line with *Group seeds*):"
        )
        st.markdown("\n".join(f"- `{g}`: {', '.join(m)}" for g, m in multi.items()))

    numeric = [c for c in keep[1:] if table.schema[c].is_numeric() and table[c].n_unique() > 1]
    st.subheader("Parallel coordinates")
    hp_numeric = [c for c in numeric if c not in OUTCOMES]
    out_numeric = [c for c in ("final_lm", "k_mean_economic", "win_rate") if c in numeric]
    axes = st.multiselect("Axes", numeric, default=hp_numeric[:5] + out_numeric, key="sw_axes")
    ui.show_chart(
        charts.parallel_coordinates(table, axes=axes, colors=ctx.colors), "sweep-parallel"
    )

    st.subheader("Outcome against a hyperparameter")
    c1, c2 = st.columns(2)
    xs = [c for c in hp_cols if table[c].n_unique() > 1] or hp_cols
    ys = [c for c in OUTCOMES if c in table.columns]
    if xs and ys:
        x = c1.selectbox("Hyperparameter", xs, key="sw_x")
        y = c2.selectbox("Outcome", ys, key="sw_y")
        log_x = c1.toggle(
            "Log x",
            key="sw_logx",
            help="For settings swept over decades (λ_p bounds, learning rates).",
        )
        ui.show_chart(
            charts.scatter(table, x=x, y=y, colors=ctx.colors, log_x=log_x), f"sweep-{y}-vs-{x}"
        )

    st.subheader("Edit tags")
    st.caption("Your edits apply to this session: fix a missing seed, or tag runs for grouping.")
    run_name = st.selectbox("Run", [r.name for r in ctx.runs], key="sw_tag_run")
    run = next(r for r in ctx.runs if r.name == run_name)
    current = pl.DataFrame(
        {"key": list(run.hparams), "value": [str(v) for v in run.hparams.values()]},
        schema={"key": pl.String, "value": pl.String},
    )
    edited = st.data_editor(
        current, num_rows="dynamic", hide_index=True, width="stretch", key=f"sw_tags_{run_name}"
    )
    if st.button("Apply tags", key="sw_apply"):
        rows = pl.DataFrame(edited).drop_nulls("key").filter(pl.col("key").str.strip_chars() != "")
        new: dict[str, Any] = {
            str(k).strip(): hparams.parse_scalar(str(v)) for k, v in rows.iter_rows()
        }
        removed = {k: None for k in run.hparams if k not in new}
        changes = {k: v for k, v in new.items() if run.hparams.get(k) != v} | removed
        edits = dict(st.session_state.get("tag_edits", {}))
        edits[run_name] = {**edits.get(run_name, {}), **changes}
        st.session_state["tag_edits"] = edits
        st.rerun()
