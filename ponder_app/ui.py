"""Small Streamlit helpers every page uses: charts and tables with downloads, the page
heading from the registry, and the guard that keeps every page inside the frame."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
import runpy
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, Literal, ParamSpec

import altair as alt
import polars as pl
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ponder_app import charts, registry, state
from ponder_app.state import Context, context

# Everything Streamlit's Markdown (and its LaTeX and directive extensions) gives a meaning
# to, including what starts a block (`#`, `-`, `+`, `1.`, `>`, `|`).
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\](){}#+\-.!$<>|~])")


def plain(text: object) -> str:
    """`text` escaped so Markdown shows it as typed: for every name a file or a user
    supplies (runs, folders, uploads, archive members) that meets `st.markdown`, a widget
    label, a caption or a message. Unescaped, `![](http://host/x.png)` in a folder name
    makes the browser fetch an image and `$x$` renders as math. Line breaks become spaces,
    so a name cannot start a block of its own."""
    one_line = " ".join(str(text).splitlines())
    return _MARKDOWN_SPECIALS.sub(r"\\\1", one_line)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:80] or "chart"


def chart_image(chart: alt.TopLevelMixin, fmt: str) -> bytes:
    """The chart as a PNG or SVG file (through vl-convert), made only when the user asks
    for the download: rendering every chart up front would slow every rerun."""
    import json

    import vl_convert as vlc

    spec = json.dumps(charts.export_spec(chart))
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec).encode()
    return vlc.vegalite_to_png(spec, scale=2)


@st.cache_resource(show_spinner=False, max_entries=512, ttl=3600)
def _built(key: str, _build: Callable[[], alt.TopLevelMixin]) -> tuple[alt.TopLevelMixin, dict]:
    chart = _build()
    return chart, charts.to_spec(chart)


@st.cache_resource(show_spinner=False, max_entries=128, ttl=3600)
def _built_set(key: str, _build: Callable[[], Any]) -> Any:
    return _with_specs(_build())


def _with_specs(value: Any) -> Any:
    """Charts anywhere in lists, tuples and pairs replaced by `(chart, spec)`."""
    if isinstance(value, alt.TopLevelMixin):
        return value, charts.to_spec(value)
    if isinstance(value, list | tuple):
        return type(value)(_with_specs(v) for v in value)
    return value


def cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    """What `build` returns, with every chart in it paired with its spec, for a `key`
    that fully determines it (as `show_chart_cached`); for a block of charts computed
    together (heatmaps sharing one colour scale)."""
    return _built_set(repr(key), build)


def show_chart_cached(
    key: tuple[Any, ...], build: Callable[[], alt.TopLevelMixin], name: str, **kw: Any
) -> None:
    """`show_chart` for a chart that `key` fully determines (the runs' content keys, see
    `Context.content_key`, and every control that shapes it): built and turned into a
    spec once, shared by reruns, page returns and sessions, so a control elsewhere on
    the page costs this chart nothing. Bounded: 512 charts, an hour after last use."""
    chart, spec = _built(repr(key), build)
    show_chart(chart, name, spec=spec, **kw)


def show_chart(
    chart: alt.TopLevelMixin,
    name: str,
    *,
    downloads: bool = True,
    data: pl.DataFrame | None = None,
    spec: dict | None = None,
) -> None:
    """Draw an Altair chart at container width, with PNG/SVG downloads beneath it (drawn
    at a fixed width: a file has no container) and, given the plotted `data`, its rows
    as CSV and Parquet. `spec`: the chart's spec, already made (`show_chart_cached`)."""
    # A shallow copy: Streamlit moves the datasets out of the dict it is given.
    st.vega_lite_chart({**(spec or charts.to_spec(chart))}, width="stretch")
    if downloads:
        row = st.container(horizontal=True)
        slug = _slug(name)
        if data is not None and data.height:
            _download(row, "Data (CSV)", lambda: csv_bytes(data), slug, "csv", "csv-chart")
            _download(
                row, "Data (Parquet)", lambda: parquet_bytes(data), slug, "parquet", "parquet-chart"
            )
        _download(row, "PNG", lambda: chart_image(chart, "png"), slug, "png", "png")
        _download(row, "SVG", lambda: chart_image(chart, "svg"), slug, "svg", "svg")


_MIMES = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "png": "image/png",
    "svg": "image/svg+xml",
}


def _download(
    where: Any, label: str, make: Callable[[], bytes], slug: str, ext: str, key: str
) -> None:
    """A download button whose file is made only when clicked (`make`), and whose click
    does not rerun the page."""
    where.download_button(
        label,
        data=make,
        file_name=f"{slug}.{ext}",
        mime=_MIMES[ext],
        key=f"{key}-{slug}",
        on_click="ignore",
        icon=":material/download:",
    )


def show_table(
    df: pl.DataFrame,
    name: str,
    *,
    column_config: dict[str, Any] | None = None,
    height: int | Literal["auto", "stretch", "content"] = "auto",
    hide_index: bool = True,
) -> None:
    """A sortable table with a CSV download (list columns written as text)."""
    st.dataframe(
        df, width="stretch", hide_index=hide_index, column_config=column_config, height=height
    )
    _download(st, "CSV", lambda: csv_bytes(df), _slug(name), "csv", "csv")


def csv_bytes(df: pl.DataFrame) -> bytes:
    """A table as CSV; list columns (survival traces) are written as `[1.0, 0.82, …]` text."""
    lists = [c for c, d in df.schema.items() if isinstance(d, pl.List)]
    out = df.with_columns(
        ("[" + pl.col(c).cast(pl.List(pl.String)).list.join(", ") + "]").alias(c) for c in lists
    )
    structs = [c for c, d in out.schema.items() if isinstance(d, pl.Struct)]
    out = out.with_columns(pl.col(c).struct.json_encode() for c in structs)
    return out.write_csv().encode()


def parquet_bytes(df: pl.DataFrame) -> bytes:
    """A table as a Parquet file (types kept, list columns included)."""
    buf = io.BytesIO()
    df.write_parquet(buf)
    return buf.getvalue()


PAGE_FAILED = (
    "This page could not be drawn for the selected runs ({kind}). "
    "Try deselecting the run that causes it in the sidebar; the other pages still work."
)


def page_failed(exc: Exception, where: str) -> None:
    """A page (or a block of one) failed on odd input: a message, not a traceback. The
    exception's text can hold server paths: it goes to the log, the page gets its kind."""
    logging.getLogger("ponder_app").exception("%s failed", where)
    st.error(PAGE_FAILED.format(kind=type(exc).__name__), icon=":material/error:")


P = ParamSpec("P")


def fragment(fn: Callable[P, None]) -> Callable[P, None]:
    """`st.fragment` with the frame's failure handling: Streamlit shows an exception
    raised inside a fragment itself (as a traceback), so app.py's guard around the page
    never sees it. Streamlit's own rerun/stop signals are BaseExceptions and pass."""

    @functools.wraps(fn)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - see above
            page_failed(exc, f"{fn.__module__}.{fn.__qualname__}")

    return st.fragment(guarded)


_IN_FRAME: ContextVar[bool] = ContextVar("ponder_app_in_frame", default=False)


@contextlib.contextmanager
def lazy_expander(label: str, key: str) -> Iterator[bool]:
    """A collapsed expander whose content is made and sent only while it is open (yields
    whether it is). A closed expander's content still costs the script its work and the
    browser its drawing: a page of them (a table per run, dozens of threshold inputs)
    took the browser most of a page switch. Opening it reruns the page once."""
    box = st.expander(label, expanded=False, key=key, on_change="rerun")
    with box:
        yield bool(box.open)


def lazy_tabs(labels: Sequence[str], key: str) -> list[tuple[DeltaGenerator, bool]]:
    """Tabs of which only the selected one's content is made and sent: each tab with
    whether it is the selected one. A page of seven charts took the browser twice as long
    to switch to as one of three; switching tabs reruns the page (or its fragment) once.
    The selected tab is remembered like the other controls (`state.seed`)."""
    state.seed(key, labels[0])
    boxes = st.tabs(list(labels), key=key, on_change=state.remember, args=(key,))
    return [(box, bool(box.open)) for box in boxes]


@contextlib.contextmanager
def frame() -> Iterator[None]:
    """Mark, for the script thread, that app.py's frame (sidebar, loaded runs) is drawn and
    the page runs inside it (app.py wraps `page.run()` in this). A context variable rather
    than session state: it cannot outlive the run that set it, whatever the page raises
    (a rerun, a page switch)."""
    token = _IN_FRAME.set(True)
    try:
        yield
    finally:
        _IN_FRAME.reset(token)


def _run_frame_here() -> None:
    """Run app.py in this script run, for a page script Streamlit started without it.

    With a `pages/` folder beside app.py, Streamlit treats that folder as its legacy page
    directory until some session calls `st.navigation`, and in that mode it runs a page's
    script alone. That happens when a bookmarked page is the server's very first request,
    and in AppTest on every run (it resets the mode before each one). app.py, run here,
    declares the navigation with `st.navigation` (which ends the legacy mode for the whole
    process, as its documentation says), draws the sidebar, loads the runs and runs this
    same page inside the frame; the outer run then draws nothing of its own.

    Doing it in the same run matters: switching to the page instead (`st.switch_page`, a
    second run through app.py) would drop a button press made in the first run, because
    Streamlit resets buttons when a run ends in a rerun.
    """
    runpy.run_path(str(registry.ENTRYPOINT), run_name="__main__")


def page_context(page_id: str, *, unselected: bool = False) -> Context | None:
    """Title the page from the registry and return the context, or None when the page has
    nothing to draw: no runs loaded or selected (said on the page; with `unselected`, a
    page that chooses runs is drawn with none selected), or the page script was started
    outside the frame (the frame has then drawn it, see `_run_frame_here`)."""
    page = registry.page(page_id)
    if not _IN_FRAME.get():
        _run_frame_here()
        return None
    st.title(page.title)
    st.caption(page.caption)
    ctx = context()
    if not ctx.all_runs:
        st.info(
            "No runs loaded. Add run folders or logs in the sidebar (upload, or a path), "
            "or start the app with `streamlit run app.py -- --runs PATH`."
        )
        return None
    if not ctx.runs:
        st.info("No runs selected: pick runs to show in the sidebar, or on *Runs*.")
        if not unselected:
            return None
    return ctx


def show_errors(ctx: Context) -> None:
    """Per-run analysis failures, said plainly at the end of the page."""
    for note in st.session_state.pop(state.EDIT_NOTES, None) or []:
        st.warning(plain(note), icon=":material/save:")
    for name, message in ctx.errors.items():
        st.warning(
            f"**{plain(name)}**: {plain(message)}. The other runs are unaffected.",
            icon=":material/warning:",
        )


INCLUDE_AUDIT = "include_audit"
AUDIT_HELP = (
    "Audit steps force every layer to k=2 as a counterfactual: their depth, gate and "
    "controller values are the forcing's, not the run's. Left out of every aggregate, "
    "heatmap, smoothed curve and phase mean by default (shown as marks); on: counted."
)


def audit_toggle(where: Any = None, page: str = "") -> bool:
    """The "Include audit steps" switch: one choice for the whole app, offered on every
    page that aggregates (the value lives outside the widget, so it survives page switches)."""
    key = f"{INCLUDE_AUDIT}_{page}"
    if key not in st.session_state:
        st.session_state[key] = bool(st.session_state.get(INCLUDE_AUDIT, False))

    def _keep() -> None:
        st.session_state[INCLUDE_AUDIT] = bool(st.session_state[key])

    value = (where or st).toggle("Include audit steps", key=key, help=AUDIT_HELP, on_change=_keep)
    return bool(value)
