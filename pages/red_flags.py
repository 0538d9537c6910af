"""Red flags: every rule evaluated over every run and against the sweep, with evidence,
actions and the rules' editable settings."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from ponder_app import state, ui
from ponder_parse.analysis import red_flags as flags
from ponder_parse.formatting import edit_step

ICON = {
    "critical": ":red[:material/error:]",
    "warning": ":orange[:material/warning:]",
    "info": ":blue[:material/info:]",
}


def _widget_key(rule: str, path: str) -> str:
    return f"rf_set_{rule}_{path}"


def _on_edit(rule: str, path: str) -> None:
    value = st.session_state[_widget_key(rule, path)]
    state.set_flag_rules(flags.edit(state.flag_rules(), rule, path, value))


def _on_reset(rule: str | None) -> None:
    rules = state.flag_rules()
    names = [rule] if rule else list(rules.names)
    for name in names:
        rules = rules.without(name)
        for f in flags.setting_fields(flags.RULES[name].settings):
            st.session_state.pop(_widget_key(name, f.path), None)
    state.set_flag_rules(rules)


def _settings_editor(rules: flags.FlagRules) -> None:
    changed = rules.names
    st.caption(
        "Every number a rule uses; a change applies to every page (health on Runs, the "
        "summaries, these findings). "
        + (f"Changed: {', '.join(sorted(changed))}." if changed else "All at their defaults.")
    )
    if changed:
        st.button("Reset all", key="rf_reset_all", on_click=_on_reset, args=(None,))
    for rule in flags.RULES.values():
        fields = flags.setting_fields(rules.of(rule))
        if not fields:
            continue
        mark = " · changed" if rule.name in changed else ""
        with st.expander(f"`{rule.name}` — {rule.title}{mark}"):
            cols = st.columns(3)
            for i, f in enumerate(fields):
                kw: dict[str, Any] = {"format": "%d"} if f.kind is int else {"format": "%g"}
                kw["step"] = 1 if f.kind is int else edit_step(f.value)
                cols[i % 3].number_input(
                    f.label,
                    value=f.value,
                    key=_widget_key(rule.name, f.path),
                    help=f.help or None,
                    on_change=_on_edit,
                    args=(rule.name, f.path),
                    **kw,
                )
            if rule.name in changed:
                st.button(
                    "Reset", key=f"rf_reset_{rule.name}", on_click=_on_reset, args=(rule.name,)
                )


ctx = ui.page_context("red_flags")
if ctx is not None:
    findings = pl.concat([ctx.flags_all(), ctx.sweep_flags()])
    c1, c2 = st.columns([2, 3])
    severities = c1.multiselect(
        "Severity",
        list(flags.SEVERITIES),
        **state.kept("rf_sev", ["critical", "warning"], options=list(flags.SEVERITIES)),
    )
    shown = findings.filter(pl.col("severity").is_in(severities))
    counts = flags.counts(findings)
    c2.markdown(
        " · ".join(f"{ICON.get(s, '')} **{n}** {s}" for s, n in counts.items() if n)
        or "No findings."
    )
    with ui.lazy_expander("The rules", key="rf_rules_open") as open_:
        if open_:
            st.dataframe(flags.rules_table(), hide_index=True, width="stretch")
    with ui.lazy_expander("Thresholds", key="rf_thresholds_open") as open_:
        if open_:
            _settings_editor(ctx.rules)
    st.caption(
        "`sweep_` findings compare a run with its peers among the shown runs (same trainer and model "
        "size; for mean k also the same TARGET_K): a robust z-score against their median and MAD, "
        "from 4 runs on."
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
                st.session_state["step_line_focus"] = {
                    "metrics": metrics,
                    "range": flags.focus_range(f["first_step"], f["last_step"]),
                    "run": f["run"],
                }
                st.switch_page("pages/step_line.py")
