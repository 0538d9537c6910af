"""Ponder run comparison: the frame. Loads runs, offers the shared sidebar, runs a page.

streamlit run app.py                       # the bundled sample sweep
streamlit run app.py -- --runs SWEEP_DIR   # your runs (or PONDER_RUNS=a:b)
streamlit run app.py -- --allow-root /data # the path box may also read below /data
streamlit run app.py -- --store STORE_DIR  # every run of a run store (`ponder-parse ingest`)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import streamlit as st

import ponder_app.preload  # noqa: F401  # first: see its docstring
from ponder_app import registry, source, state, ui

st.set_page_config(
    page_title="Ponder runs", page_icon=":material/stacked_line_chart:", layout="wide"
)

page = st.navigation(registry.navigation_pages())


def add_path() -> None:
    """Add the typed path, if it lies inside the allowed roots (see `state.confine`).

    A path outside them gets one message whether it exists or not; only inside them
    does the app look at the path at all.
    """
    raw = st.session_state.get("path_box", "").strip()
    if not raw:
        return
    p = state.confine(raw)
    if p is None:
        st.session_state["path_error"] = f"{raw}: {state.OUTSIDE_ROOTS}"
        return
    try:
        exists = p.exists()
    except OSError as exc:
        st.session_state["path_error"] = f"{raw}: cannot be read ({exc.strerror})"
        return
    if not exists:
        st.session_state["path_error"] = f"{raw}: no such file or folder"
        return
    paths = st.session_state.setdefault("extra_paths", [])
    if str(p) not in paths:
        paths.append(str(p))
    st.session_state["path_box"] = ""
    st.session_state.pop("path_error", None)


with st.sidebar:
    with st.expander("Add runs", expanded=False):
        uploads = st.file_uploader(
            "Logs, stats.json, config files, or .zip / .tar.gz of run folders",
            accept_multiple_files=True,
            key="uploads",
        )
        st.text_input(
            "Path to a run folder, a log, or a folder of runs",
            key="path_box",
            on_change=add_path,
            placeholder="/data/sweeps/target_k",
        )
        if err := st.session_state.get("path_error"):
            st.error(ui.plain(err))
        extra = st.session_state.get("extra_paths", [])
        if extra:
            st.caption("Added paths: " + ", ".join(ui.plain(p) for p in extra))
            if st.button("Clear added paths", key="clear_paths"):
                st.session_state["extra_paths"] = []
                st.rerun()
    live = st.toggle(
        "Follow live runs",
        key="live",
        help="Re-read growing logs every few seconds (only the appended bytes are parsed).",
    )

try:
    upload_dirs, upload_messages = state.materialize(uploads or [])
except OSError as exc:  # the server's temporary folder is full or gone
    logging.getLogger("ponder_app").exception("uploads could not be unpacked")
    upload_dirs, upload_messages = [], [f"uploads could not be unpacked ({exc.strerror})"]
paths = state.configured_paths()
if not paths and not source.cli_stores():
    # Uploading one's own runs means wanting to see them: the bundled samples step aside,
    # said in the sidebar with a switch to bring them back.
    show_samples = not upload_dirs
    if upload_dirs:
        with st.sidebar:
            show_samples = st.toggle(
                "Show the sample runs too",
                key="keep_samples",
                help="The bundled sample sweep is hidden while your uploads are shown.",
            )
            if not show_samples:
                st.caption("Sample runs hidden: only your uploads are shown.")
    if show_samples:
        paths = [str(state.SAMPLE_RUNS)]
upload_root = st.session_state.get("_upload_dir")
loaded = state.load_all(
    paths, upload_dirs, live=live, upload_root=Path(upload_root) if upload_root else None
)
loaded.messages.extend(upload_messages)
names = [r.name for r in loaded.runs]

baseline: str | None
with st.sidebar:
    if names:
        selected = state.selection(names)
        st.multiselect(
            "Runs shown", names, key=state.SELECTED_WIDGET, on_change=state.take_selection
        )
        base_options = selected or names
        prev_base = state.baseline_choice(base_options)
        baseline = st.selectbox(
            "Baseline run",
            base_options,
            index=base_options.index(prev_base) if prev_base in base_options else 0,
            help="Differences on the comparison pages are taken against this run.",
        )
        st.session_state["baseline"] = baseline
    else:
        selected, baseline = [], None
    if loaded.failures or loaded.messages:
        with st.expander(
            f"{len(loaded.failures) + len(loaded.messages)} load problem(s)",
            expanded=True,
            icon=":material/warning:",
        ):
            for f in loaded.failures:
                st.markdown(f"- {ui.plain(f.path)}: {ui.plain(f.reason)}")
            for m in loaded.messages:
                st.markdown(f"- {ui.plain(m)}")

ctx = state.build_context(loaded, selected, baseline)
state.set_context(ctx)

if live:

    @st.fragment(run_every="5s")
    def _follow() -> None:
        """Rerun the app when any followed log has grown."""
        sizes = state.live_sizes([r.source for r in ctx.all_runs if r.source is not None])
        if st.session_state.get("_live_sizes") not in (None, sizes):
            st.session_state["_live_sizes"] = sizes
            st.rerun()
        st.session_state["_live_sizes"] = sizes
        st.caption(
            f"Following {len(sizes)} log(s), {sum(s for s in sizes if s > 0) / 1e6:.1f} MB; "
            f"checked at {time.strftime('%H:%M:%S')} (every 5 s)."
        )

    with st.sidebar:
        _follow()

try:
    with ui.frame():
        page.run()
except Exception as exc:  # noqa: BLE001 - a page failing on odd input gets a message, not a traceback
    ui.page_failed(exc, f"page {page.title}")
ui.show_errors(ctx)
state.write_url()
