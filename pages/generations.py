"""Generations: what the model wrote at a given step, runs side by side. Shown as plain text."""

from __future__ import annotations

import streamlit as st

from ponder_app import prepare, ui

ctx = ui.page_context("generations")
if ctx is not None:
    runs = prepare.runs_with(ctx.runs, "generations")
    if not runs:
        st.info("None of the shown runs logged generation samples.")
    else:
        steps = prepare.generation_steps(runs)
        step = st.select_slider("Generation step", steps, value=steps[-1], key="gen_step")
        cols = st.columns(min(3, len(runs)))
        for i, run in enumerate(runs):
            with cols[i % len(cols)]:
                st.markdown(f"**{ui.plain(run.name)}**")
                rows = prepare.samples_at(run, step)
                if rows.is_empty():
                    st.caption(f"no sample at step {step}")
                for g in rows.iter_rows(named=True):
                    st.caption(
                        f"Sample {g['sample']} · prompt {g['prompt_tokens']} tokens · output {g['output_tokens']} tokens"
                    )
                    st.text(g["prompt"])
                    st.code(g["output"], language=None, wrap_lines=True)
