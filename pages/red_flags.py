"""Red flags: the guide's trouble table evaluated over every run, with evidence and actions."""

from __future__ import annotations

import polars as pl
import streamlit as st

from ponder_app import ui
from ponder_parse.analysis import red_flags as flags

ICON = {
    "critical": ":red[:material/error:]",
    "warning": ":orange[:material/warning:]",
    "info": ":blue[:material/info:]",
}

ctx = ui.page_context("red_flags")
if ctx is not None:
    findings = ctx.flags_all()
    c1, c2 = st.columns([2, 3])
    severities = c1.multiselect(
        "Severity", list(flags.SEVERITIES), default=["critical", "warning"], key="rf_sev"
    )
    shown = findings.filter(pl.col("severity").is_in(severities))
    counts = findings.group_by("severity").len()
    c2.markdown(
        " · ".join(f"{ICON.get(s, '')} **{n}** {s}" for s, n in counts.sort("severity").iter_rows())
        or "No findings."
    )
    with st.expander("The rules", expanded=False):
        st.dataframe(
            pl.DataFrame(
                [
                    {
                        "rule": r.name,
                        "checks": r.title,
                        "severity": r.severity,
                        "where": r.scope,
                        "action": r.action,
                    }
                    for r in flags.RULES.values()
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    if shown.is_empty():
        st.success("No findings at the chosen severities in the shown runs.")
    ui.show_table(shown, "red-flags")
    for i, f in enumerate(shown.iter_rows(named=True)):
        with st.container(border=True):
            a, b = st.columns([5, 1])
            rule = flags.RULES.get(f["rule"])
            a.markdown(
                f"{ICON.get(f['severity'], '')} **{ui.plain(f['run'])}** — {rule.title if rule else f['rule']}  \n"
                f"steps {f['first_step']}–{f['last_step']} ({f['n_steps']} steps) · evidence: {f['evidence']}  \n"
                f"*Action:* {f['action']}"
            )
            metrics = list(rule.metrics) if rule else []
            if (
                metrics
                and f["first_step"] is not None
                and b.button("Open in step line", key=f"rf-open-{i}")
            ):
                pad = max(50, (f["last_step"] - f["first_step"]) // 5)
                st.session_state["step_line_focus"] = {
                    "metrics": metrics,
                    "range": (max(0, f["first_step"] - pad), f["last_step"] + pad),
                }
                st.switch_page("pages/step_line.py")
