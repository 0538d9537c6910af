"""Small Streamlit helpers every page uses: charts and tables with downloads, guards."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl
import streamlit as st

from ponder_app import charts
from ponder_app.state import Context, context


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:80] or "chart"


def _render(chart: alt.TopLevelMixin, fmt: str) -> bytes:
    """PNG/SVG through vl-convert, only when the user asks for the file."""
    import vl_convert as vlc

    spec = chart.to_json()
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec).encode()
    return vlc.vegalite_to_png(spec, scale=2)


def show_chart(chart: alt.TopLevelMixin, name: str, *, downloads: bool = True) -> None:
    """Draw an Altair chart at container width, with PNG/SVG downloads beneath it."""
    st.vega_lite_chart(charts.to_spec(chart), width="stretch")
    if downloads:
        row = st.container(horizontal=True)
        slug = _slug(name)
        row.download_button(
            "PNG",
            data=lambda: _render(chart, "png"),
            file_name=f"{slug}.png",
            mime="image/png",
            key=f"png-{slug}",
            on_click="ignore",
            icon=":material/download:",
        )
        row.download_button(
            "SVG",
            data=lambda: _render(chart, "svg"),
            file_name=f"{slug}.svg",
            mime="image/svg+xml",
            key=f"svg-{slug}",
            on_click="ignore",
            icon=":material/download:",
        )


def show_table(
    df: pl.DataFrame,
    name: str,
    *,
    column_config: dict[str, Any] | None = None,
    height: int | str = "auto",
    hide_index: bool = True,
) -> None:
    """A sortable table with a CSV download (list columns written as text)."""
    st.dataframe(
        df, width="stretch", hide_index=hide_index, column_config=column_config, height=height
    )
    st.download_button(
        "CSV",
        data=lambda: csv_bytes(df),
        file_name=f"{_slug(name)}.csv",
        mime="text/csv",
        key=f"csv-{_slug(name)}",
        on_click="ignore",
        icon=":material/download:",
    )


def csv_bytes(df: pl.DataFrame) -> bytes:
    """A table as CSV; list columns (survival traces) are written as `[1.0, 0.82, …]` text."""
    lists = [c for c, d in df.schema.items() if isinstance(d, pl.List)]
    out = df.with_columns(
        ("[" + pl.col(c).cast(pl.List(pl.String)).list.join(", ") + "]").alias(c) for c in lists
    )
    structs = [c for c, d in out.schema.items() if isinstance(d, pl.Struct)]
    out = out.with_columns(pl.col(c).struct.json_encode() for c in structs)
    return out.write_csv().encode()


def ensure_frame(page_path: str) -> None:
    """Run a page inside the frame (sidebar, loaded runs) even on a deep link.

    Streamlit runs a `pages/` script on its own when a deep link is the server's very
    first request (before `app.py` has declared its navigation). Such a run goes to the
    frame first and comes back to the page from there.
    """
    if st.session_state.get("_in_frame"):
        return
    st.session_state["_deep_link"] = page_path
    st.switch_page("app.py")


def page_context(title: str, caption: str | None = None) -> Context | None:
    """Title the page and return the context, or explain why there is nothing to show."""
    caller = sys._getframe(1).f_globals.get("__file__")
    if caller:
        ensure_frame(f"pages/{Path(caller).name}")
    st.title(title)
    if caption:
        st.caption(caption)
    ctx = context()
    if not ctx.all_runs:
        st.info(
            "No runs loaded. Add run folders or logs in the sidebar (upload, or a path), "
            "or start the app with `streamlit run app.py -- --runs PATH`."
        )
        return None
    if not ctx.runs:
        st.info("No runs selected: pick runs to show in the sidebar.")
        return None
    return ctx


def show_errors(ctx: Context) -> None:
    """Per-run analysis failures, said plainly at the end of the page."""
    for name, message in ctx.errors.items():
        st.warning(
            f"**{name}**: {message}. The other runs are unaffected.", icon=":material/warning:"
        )


def fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "–"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)
