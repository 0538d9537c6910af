"""Generations: what the model wrote at a given step, runs side by side. Shown as plain text."""

from __future__ import annotations

import streamlit as st

from ponder_app import prepare, state, ui
from ponder_app.state import Context


@ui.fragment
def page_body(ctx: Context) -> None:
    """The step picker and the samples: a fragment, so picking a step redraws them only."""
    runs = prepare.runs_with_generations(ctx.runs)
    if not runs:
        st.info("None of the shown runs logged generation samples.")
    else:
        steps = prepare.generation_steps(runs)
        c1, c2 = st.columns([3, 2])
        step = c1.select_slider(
            "Generation step",
            steps,
            **state.kept(
                "gen_step", prepare.default_generation_step(runs) or steps[-1], options=steps
            ),
        )
        latest = (
            c2.radio(
                "Show",
                ["latest", "exact"],
                format_func=lambda v: {
                    "latest": "each run's latest sample up to this step",
                    "exact": "only samples at exactly this step",
                }[v],
                **state.kept("gen_mode", "latest", options=["latest", "exact"]),
            )
            == "latest"
        )
        silent = [r.name for r in ctx.runs if r not in runs]
        if silent:
            st.caption("No generation samples in: " + ", ".join(ui.plain(n) for n in silent) + ".")
        cols = st.columns(min(3, len(runs)))
        for i, run in enumerate(runs):
            with cols[i % len(cols)]:
                st.text(run.name)
                if latest:
                    at, rows = prepare.latest_samples_at(run, step)
                    if at is not None and at != step:
                        st.caption(f"latest sample: step {at}")
                else:
                    rows = prepare.samples_at(run, step)
                failures = prepare.failures_at(run, step)
                for message in failures:
                    st.text(message)
                if rows.is_empty() and not failures:
                    st.caption(
                        f"no sample at or before step {step}"
                        if latest
                        else f"no sample at step {step} (choose “latest sample” to see its last one)"
                    )
                for g in rows.iter_rows(named=True):
                    st.caption(
                        f"Sample {g['sample']} · prompt {g['prompt_tokens']} tokens · output {g['output_tokens']} tokens"
                    )
                    st.text(g["prompt"])
                    st.code(g["output"], language=None, wrap_lines=True)


ctx = ui.page_context("generations")
if ctx is not None:
    page_body(ctx)
