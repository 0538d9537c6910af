"""Helpers for driving the Streamlit app with AppTest and reading what it shows.

Charts are `vega_lite_chart` elements (no dedicated accessor in AppTest): the spec is JSON
in `proto.spec`, and the data Streamlit sends sits in `proto.datasets` as Arrow IPC
streams, one per named dataset the spec refers to.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl
import pyarrow as pa
from streamlit.testing.v1 import AppTest

from ponder_app import registry

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
SAMPLE_RUNS = ROOT / "sample_runs"
SAMPLE_NAMES = sorted(p.name for p in SAMPLE_RUNS.iterdir() if p.is_dir())
PAGES = tuple(p.id for p in registry.PAGES)
"""Every page's id, in navigation order (the script is `pages/<id>.py`)."""
CHART_PAGES = tuple(
    p.id
    for p in (
        registry.STEP_LINE,
        registry.LAYER_HEATMAPS,
        registry.SURVIVAL_TRACES,
        registry.PHASE_COMPARISON,
        registry.ECONOMICS,
        registry.SWEEP,
    )
)
"""The pages that draw charts (each must draw at least one on the sample sweep)."""
TIMEOUT = 120


def new_app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


def goto(at: AppTest, page: str) -> AppTest:
    """Switch to `pages/<page>.py` and run it; fails the test on a script exception."""
    at.switch_page(f"pages/{page}.py").run()
    assert_ok(at)
    return at


def open_tab(at: AppTest, key: str, label: str) -> AppTest:
    """Select a lazy tab (`ui.lazy_tabs`: only the selected one is drawn) and rerun; fails
    the test on a script exception."""
    at.session_state[key] = label
    at.run()
    assert_ok(at)
    return at


def open_run_details(at: AppTest) -> AppTest:
    """The Runs page with every run's "what the log said" expander open (their content is
    made only while open); fails the test on a script exception."""
    goto(at, "home")
    for name in at.multiselect(key="selected_widget").value:
        at.session_state[f"home_log_{name}"] = True
    at.run()
    assert_ok(at)
    return at


def failures(at: AppTest) -> list[str]:
    """What went wrong on the page: uncaught exceptions, and what the app turns them into
    (a page-level `st.error` in the main area, per-run "could not be computed" warnings)."""
    out = [f"exception: {e.value}" for e in at.exception]
    out += [f"error: {e.value}" for e in at.main.error]
    out += [
        f"warning: {w.value}" for w in at.main.warning if "could not be computed" in str(w.value)
    ]
    return out


def assert_ok(at: AppTest) -> None:
    problems = failures(at)
    assert not problems, f"the app failed: {problems}"


# --- charts ---------------------------------------------------------------------------------


class Panel:
    """One chart of a stacked view (`charts.stack`: the step line draws its metrics as one
    Vega-Lite view so zoom and crosshair are shared), read like a chart of its own: its
    spec, and the parent's datasets that it uses."""

    def __init__(self, parent: Any, sub: dict[str, Any]) -> None:
        used = set(re.findall(r'"data": \{"name": "([^"]+)"\}', json.dumps(sub)))
        self.proto = SimpleNamespace(
            spec=json.dumps(sub), datasets=[d for d in parent.proto.datasets if d.name in used]
        )


def charts(at: AppTest) -> list[Any]:
    """Every chart on the page; a stacked view counts as its charts."""
    out: list[Any] = []
    for c in at.get("vega_lite_chart"):
        s = spec(c)
        if "vconcat" in s and all("title" in p for p in s["vconcat"]):
            out += [Panel(c, p) for p in s["vconcat"]]
        else:
            out.append(c)
    return out


def spec(chart: Any) -> dict[str, Any]:
    return json.loads(chart.proto.spec)


def datasets(chart: Any) -> dict[str, pl.DataFrame]:
    """Every named dataset the chart carries, as Polars frames."""
    out = {}
    for d in chart.proto.datasets:
        table = pa.ipc.open_stream(d.data.data).read_all()
        out[d.name] = pl.from_arrow(table)
    return out


def title(chart: Any) -> str:
    t = spec(chart).get("title", "")
    return t.get("text", "") if isinstance(t, dict) else str(t)


def chart_by_title(at: AppTest, prefix: str) -> Any:
    found = [c for c in charts(at) if title(c).startswith(prefix)]
    assert found, f"no chart titled {prefix!r}; have {[title(c) for c in charts(at)]}"
    return found[0]


def _layers(s: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield s
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for sub in s.get(key, []):
            yield from _layers(sub)
    if "spec" in s:
        yield from _layers(s["spec"])


def layers_with(chart: Any, kind: str) -> list[dict[str, Any]]:
    """The chart's layers of one mark type (`"rule"`, `"line"` …), at any depth."""
    out = []
    for layer in _layers(spec(chart)):
        m = layer.get("mark")
        if m is not None and (m if isinstance(m, str) else m["type"]) == kind:
            out.append(layer)
    return out


def marks(chart: Any) -> list[str]:
    out = []
    for layer in _layers(spec(chart)):
        m = layer.get("mark")
        if m is not None:
            out.append(m if isinstance(m, str) else m["type"])
    return out


def line_data(chart: Any) -> pl.DataFrame:
    """The rows of a metric chart's lines (the dataset with `run` and `value`)."""
    frames = [df for df in datasets(chart).values() if {"run", "value"} <= set(df.columns)]
    assert frames, f"no line data in chart {title(chart)!r}"
    return max(frames, key=lambda df: df.height)


def dataset_with(chart: Any, *columns: str) -> pl.DataFrame | None:
    for df in datasets(chart).values():
        if set(columns) <= set(df.columns):
            return df
    return None


def _mark_type(layer: dict[str, Any]) -> str | None:
    m = layer.get("mark")
    return m if isinstance(m, str) or m is None else m.get("type")


def line_encodings(chart: Any, channel: str) -> list[dict[str, Any]]:
    """The `channel` encoding of every line layer of a chart."""
    return [
        layer["encoding"][channel]
        for layer in _layers(spec(chart))
        if _mark_type(layer) == "line" and channel in layer.get("encoding", {})
    ]


def x_field(chart: Any) -> str:
    fields = {e["field"] for e in line_encodings(chart, "x")}
    assert len(fields) == 1, f"line layers disagree on x: {fields}"
    return fields.pop()


def y_scale_types(chart: Any) -> set[str | None]:
    return {(e.get("scale") or {}).get("type") for e in line_encodings(chart, "y")}


# --- tables and text --------------------------------------------------------------------------


def table(element: Any) -> pl.DataFrame:
    return pl.from_pandas(element.value)


def table_with(at: AppTest, column: str, *, where: Any = None) -> pl.DataFrame:
    """The first dataframe shown (main area by default) that has `column`."""
    scope = at if where is None else where
    for el in scope.dataframe:
        df = table(el)
        if column in df.columns:
            return df
    raise AssertionError(f"no table with a {column!r} column")


def runs_table(at: AppTest) -> pl.DataFrame:
    """Home page: the table of shown runs (with a `vs peers` column; the run chooser's
    table above it has `health` too)."""
    return table_with(at, "vs peers")


_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")


def rendered(markdown: str) -> str:
    """Markdown source as the reader sees it: backslash escapes of punctuation (how the
    app shows file-supplied names as typed) resolved, as CommonMark renders them."""
    return _ESCAPED.sub(r"\1", markdown)


def texts(node: Any) -> list[str]:
    """Every markdown / caption / text / code / alert string under `node`, as shown."""
    out = []
    for kind in ("markdown", "caption", "error", "warning", "info", "success"):
        out += [rendered(str(e.value)) for e in getattr(node, kind)]
    for kind in ("text", "code"):  # shown verbatim
        out += [str(e.value) for e in getattr(node, kind)]
    return out


def sidebar_text(at: AppTest) -> str:
    parts = texts(at.sidebar)
    for exp in at.sidebar.expander:
        parts.append(rendered(exp.label))
    return "\n".join(parts)


def main_text(at: AppTest) -> str:
    return "\n".join(texts(at.main))


# --- run folders for loading tests --------------------------------------------------------------


def copy_run(name: str, dest: Path, new_name: str | None = None) -> Path:
    target = dest / (new_name or name)
    shutil.copytree(SAMPLE_RUNS / name, target)
    return target


def log_of(run_dir: Path) -> Path:
    return next(p for p in run_dir.iterdir() if p.name.startswith("log_"))


def head_lines(path: Path, n: int) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [next(fh).rstrip("\n") for _ in range(n)]


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_gz_bytes(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def run_folder_members(run: str, prefix: str, max_lines: int | None = None) -> dict[str, bytes]:
    """A sample run's files as archive members under `prefix/`, the log optionally cut short."""
    out = {}
    for p in sorted((SAMPLE_RUNS / run).iterdir()):
        data = p.read_bytes()
        if max_lines is not None and p.name.startswith("log_"):
            data = b"".join(data.splitlines(keepends=True)[:max_lines])
        out[f"{prefix}/{p.name}"] = data
    return out
