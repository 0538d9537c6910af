"""Runs: every loaded run at a glance, with health, hyperparameters and problems."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ponder_app import ui
from ponder_parse.analysis import sweep

ctx = ui.page_context("home")
if ctx is not None:
    rows = []
    for run in ctx.runs:
        s = ctx.summary(run)
        if not run.n_steps:
            health = "no data"
        else:
            health = "critical" if s["n_critical"] else ("warning" if s["n_warning"] else "healthy")
        rows.append(
            {
                "run": run.name,
                "health": health,
                "variant": run.variant,
                "steps": s["steps"],
                "last step": s["last_step"],
                "final LM": s["final_lm"],
                "best LM": s["best_lm"],
                "mean k (economic)": s["k_mean_economic"],
                "TARGET_K": s["target_k"],
                "win rate": s["win_rate"],
                "dominant trace": s["dominant_pattern"],
                "restarts": s["restarts"],
                "problems": s["problems"],
                "red flags": s["n_critical"] + s["n_warning"],
            }
        )
    table = pl.DataFrame(rows)
    # The settings the sweep varied (from config files and folder names), not the model
    # facts the logs print (parameter count, width...), which differ only between variants.
    swept = {
        k for r in ctx.runs for k, src in r.meta.get("hparam_sources", {}).items() if src != "log"
    }
    varying = [k for k in sweep.varying_hparams(ctx.runs) if k in swept]
    if varying:
        hp_all = sweep.sweep_table(ctx.runs)
        hp = hp_all.select("run", *[k for k in varying if k in hp_all.columns])
        hp = hp.with_columns(pl.all().exclude("run").cast(pl.String))
        # What differs between runs sits next to the run's name and health, before the outcomes.
        table = table.join(hp, on="run", how="left").select(
            "run", "health", *hp.columns[1:], pl.exclude("run", "health", *hp.columns[1:])
        )
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Runs shown", f"{len(ctx.runs)} / {len(ctx.all_runs)}")
    c2.metric("Healthy", sum(r["health"] == "healthy" for r in rows))
    c3.metric("With critical flags", sum(r["health"] == "critical" for r in rows))
    c4.metric("Lines not understood", sum(r["problems"] for r in rows))
    ui.show_table(
        table,
        "runs",
        column_config={
            "final LM": st.column_config.NumberColumn(format="%.4f"),
            "best LM": st.column_config.NumberColumn(format="%.4f"),
            "mean k (economic)": st.column_config.NumberColumn(format="%.3f"),
            "win rate": st.column_config.NumberColumn(format="percent"),
        },
    )
    st.caption(
        "Health: *critical* at least one critical red flag, *warning* warnings only, *healthy* none "
        "(see *Red flags*), *no data* no step line could be read (see the run's problems below). "
        "Hyperparameter columns show only what differs between the shown runs."
    )

    st.subheader("What each log said")
    for run in ctx.runs:
        meta = run.meta
        label = f"{run.name} — {run.n_steps} steps, {run.problems.height} problem(s)"
        with st.expander(label, expanded=False):
            c1, c2 = st.columns(2)
            with c1:
                st.markdown(
                    f"**Source:** `{run.source.name if run.source else '?'}` ({run.variant})"
                )
                if meta.get("init"):
                    st.code(meta["init"], language=None)
                facts = {
                    "layers": meta.get("n_layers"),
                    "Kmax": meta.get("kmax"),
                    "TARGET_K": meta.get("target_k"),
                    "TARGET_K from": meta.get("target_k_source"),
                    "deadband engaged at step": meta.get("deadband_step"),
                    "resumed at steps": ", ".join(map(str, meta.get("resume_steps", []))) or None,
                    "log still being written": meta.get("truncated"),
                }
                st.table(
                    pl.DataFrame(
                        {"fact": list(facts), "value": [ui.fmt(v) for v in facts.values()]}
                    )
                )
            with c2:
                hp = run.hparams
                if hp:
                    src = meta.get("hparam_sources", {})
                    st.markdown("**Hyperparameters**")
                    st.dataframe(
                        pl.DataFrame(
                            {
                                "key": list(hp),
                                "value": [str(v) for v in hp.values()],
                                "from": [src.get(k, "") for k in hp],
                            }
                        ),
                        hide_index=True,
                        width="stretch",
                        height=240,
                    )
            kinds = meta.get("line_kinds", {})
            if kinds:
                st.caption(
                    f"{meta.get('n_lines', 0)} lines: "
                    + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in kinds.items())
                )
            if run.problems.height:
                st.markdown("**Lines not understood** (line number, text, reason)")
                ui.show_table(run.problems, f"problems-{run.name}", height=200)
            else:
                st.success("Every line of the log was understood.")
