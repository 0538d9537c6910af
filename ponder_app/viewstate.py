"""The view a user has set up, as plain values: which runs are shown, the baseline, the
step line's metrics, step range and smoothing, the layer heatmaps' metric, step range and
view (heatmaps or lines per layer), the survival traces' step. Read from and written to the page's URL,
so a reload or a shared link opens the same view; pure (no Streamlit), so every rule
about what a URL may say is testable.

A URL is user-supplied text: every value is checked against what exists (run names,
metric keys, step bounds), and anything else is ignored, never raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

RUNS = "run"
BASELINE = "baseline"
METRICS = "metric"
RANGE = "steps"
SMOOTHING = "smooth"
LAYER_METRIC = "layer_metric"
LAYER_RANGE = "layer_steps"
LAYER_VIEW = "layer_view"
TRACE_STEP = "trace_step"
PARAMS = (
    RUNS,
    BASELINE,
    METRICS,
    RANGE,
    SMOOTHING,
    LAYER_METRIC,
    LAYER_RANGE,
    LAYER_VIEW,
    TRACE_STEP,
)
"""Every query parameter the app reads or writes, in the order it writes them."""

NO_RUNS = ""
"""`?run=` (one empty value): the user chose to show no run."""


def reconcile_selection(
    names: Sequence[str], chosen: Sequence[str] | None, known: Sequence[str] | None
) -> list[str]:
    """The runs to show, given the loaded `names`, the user's last choice `chosen`
    (None before any) and the names loaded when it was made (`known`).

    Chosen runs that are gone are dropped; runs that appeared since (an upload, a new
    path, a new run folder) are shown, since the user just asked for them; nothing else
    changes the choice. In load order, whatever order the user picked them in.
    """
    if chosen is None:
        return list(names)
    keep = set(chosen)
    if known is not None:
        keep |= set(names) - set(known)
    return [n for n in names if n in keep]


def parse_runs(values: Sequence[str], names: Sequence[str]) -> list[str] | None:
    """`?run=a&run=b` → the named runs that are loaded; `?run=` → no run. None (ignore the
    parameter) when it names no loaded run at all: a link to runs this server does not
    have shows what it has."""
    if list(values) == [NO_RUNS]:
        return []
    wanted = set(values)
    out = [n for n in names if n in wanted]
    return out or None


def parse_choice(values: Sequence[str], options: Sequence[str]) -> str | None:
    """The first value that is one of `options`, else None."""
    return next((v for v in values if v in options), None)


def parse_choices(values: Sequence[str], options: Sequence[str]) -> list[str] | None:
    """The values that are `options`, in the URL's order, without repeats; None when none is."""
    allowed = set(options)
    out = list(dict.fromkeys(v for v in values if v in allowed))
    return out or None


def parse_range(values: Sequence[str], lo: int, hi: int) -> tuple[int, int] | None:
    """`?steps=200-900` → (200, 900), clamped into `[lo, hi]`; None when it is not two
    whole numbers in order."""
    if not values:
        return None
    a, sep, b = values[-1].strip().partition("-")
    if not sep or not a.strip().isdigit() or not b.strip().isdigit():
        return None
    start, end = int(a), int(b)
    if start > end or lo > hi:
        return None
    return max(lo, min(start, hi)), max(lo, min(end, hi))


def parse_float(values: Sequence[str], lo: float, hi: float) -> float | None:
    """A number in `[lo, hi]`, else None (`nan`, `inf`, words and out-of-range values are
    ignored, not clamped: a typo should not quietly pick the extreme)."""
    if not values:
        return None
    try:
        x = float(values[-1])
    except ValueError:
        return None
    if not math.isfinite(x) or not lo <= x <= hi:
        return None
    return x


def parse_step(values: Sequence[str], steps: Sequence[int]) -> int | None:
    """`?trace_step=1200` → 1200 when it is one of `steps` (the steps that have data), else
    None: a step the runs never logged is not quietly moved to a neighbour."""
    if not values:
        return None
    v = values[-1].strip()
    if not v.isdigit():
        return None
    n = int(v)
    return n if n in set(steps) else None


def format_range(step_range: tuple[int, int]) -> str:
    return f"{int(step_range[0])}-{int(step_range[1])}"


def encode(
    *,
    names: Sequence[str],
    selected: Sequence[str],
    baseline: str | None,
    metrics: Sequence[str] | None = None,
    step_range: tuple[int, int] | None = None,
    full_range: tuple[int, int] | None = None,
    smoothing: float | None = None,
    layer_metric: str | None = None,
    layer_range: tuple[int, int] | None = None,
    layer_full_range: tuple[int, int] | None = None,
    layer_view: str | None = None,
    trace_step: int | None = None,
) -> dict[str, list[str]]:
    """The query parameters for a view. What is the default is left out, so a plain view
    has a plain URL: every run shown, the first shown run as baseline, the whole step
    range. Values are lists (repeated parameters: run names may hold commas)."""
    out: dict[str, list[str]] = {}
    if list(selected) != list(names):
        out[RUNS] = list(selected) or [NO_RUNS]
    if baseline is not None and selected and baseline != selected[0]:
        out[BASELINE] = [baseline]
    if metrics is not None:
        out[METRICS] = list(metrics)
    if step_range is not None and tuple(step_range) != full_range:
        out[RANGE] = [format_range(step_range)]
    if smoothing is not None:
        out[SMOOTHING] = [f"{smoothing:g}"]
    if layer_metric is not None:
        out[LAYER_METRIC] = [layer_metric]
    if layer_range is not None and tuple(layer_range) != layer_full_range:
        out[LAYER_RANGE] = [format_range(layer_range)]
    if layer_view is not None:
        out[LAYER_VIEW] = [layer_view]
    if trace_step is not None:
        out[TRACE_STEP] = [str(int(trace_step))]
    return out


def changes(
    current: Mapping[str, Sequence[str]], wanted: Mapping[str, Sequence[str]]
) -> tuple[dict[str, list[str]], list[str]]:
    """What to set and what to delete so the URL's own parameters become `wanted`
    (parameters the app does not own are left alone)."""
    to_set = {k: list(v) for k, v in wanted.items() if list(current.get(k, [])) != list(v)}
    to_drop = [k for k in PARAMS if k in current and k not in wanted]
    return to_set, to_drop


def follow_range(
    chosen: tuple[int, int] | None, lo: int, top: int, previous_top: int | None
) -> tuple[int, int]:
    """The step range to show when the runs' last step may have grown from `previous_top`
    to `top`: a range that ended at the old last step follows the new one (as TensorBoard
    does when a run is live); any other range stays as chosen. Clamped into `[lo, top]`."""
    if chosen is None:
        return lo, top
    a, b = chosen
    if previous_top is not None and b >= previous_top and top > previous_top:
        b = top
    return max(lo, min(a, top)), max(lo, min(b, top))


def follow_step(chosen: int | None, steps: Sequence[int], previous_last: int | None) -> int:
    """The step to show among `steps` (sorted): the latest one when the user was on the
    latest (or chose nothing), else the chosen step if it is still there, else the latest."""
    latest = steps[-1]
    if chosen is None or chosen == previous_last or chosen not in steps:
        return latest
    return chosen
