"""`stats.json`: the trainer's last-step snapshot.

The trainer overwrites it every step without an atomic rename, so a reader can catch it
half-written. That is an expected state, not an error: it is reported, never raised. So is
everything else a snapshot can hold (nesting deep enough to exhaust the JSON decoder,
numbers no column can store, a FIFO or a device in its place): the snapshot is set aside
with a reason, and the run's log still loads.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

from ponder_parse import schema
from ponder_parse.files.limits import (
    MAX_SNAPSHOT_BYTES,
    InputTooLarge,
    NotARegularFile,
    read_regular_file,
)

_I64 = (-(2**63), 2**63 - 1)


def read_snapshot(
    path: Path, max_bytes: int = MAX_SNAPSHOT_BYTES
) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed snapshot, or `None` and the reason it could not be read (never a path:
    the reason is shown to whoever loaded the run)."""
    try:
        raw = read_regular_file(path, max_bytes)
    except NotARegularFile:
        return None, "stats.json ignored: not a regular file (a FIFO, device or folder)"
    except InputTooLarge as exc:
        return None, f"stats.json ignored: {exc}"
    except OSError as exc:
        return None, f"stats.json could not be read: {exc.strerror or type(exc).__name__}"
    if not raw.strip():
        return None, "stats.json is empty (being written?)"
    try:
        # Python's json writes NaN/Infinity for non-finite floats; json.loads accepts them.
        # The encoding as JSON defines it (a UTF-8 byte-order mark, UTF-16/32), so a file
        # saved by a Windows editor reads like the config files beside it.
        data = json.loads(raw.decode(json.detect_encoding(raw), errors="replace"))
    except json.JSONDecodeError as exc:
        return None, f"stats.json is half-written or not JSON ({exc.msg} at char {exc.pos})"
    except RecursionError:
        return None, "stats.json ignored: nested too deeply"
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        return None, f"stats.json ignored: {str(exc).splitlines()[0] if str(exc) else 'bad value'}"
    if not isinstance(data, dict):
        return None, "stats.json does not hold an object"
    return data, None


def snapshot_layers(snapshot: dict[str, Any] | None) -> pl.DataFrame:
    """The snapshot's per-layer dicts as a frame (extra keys such as `wasted_compute` kept)."""
    return checked_snapshot_layers(snapshot)[0]


def _number(value: Any) -> float | int | None:
    """A JSON number as a column value: integers too large for Int64 become floats."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int):
        if _I64[0] <= value <= _I64[1]:
            return value
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, float):
        return value
    return None


def checked_snapshot_layers(snapshot: dict[str, Any] | None) -> tuple[pl.DataFrame, list[str]]:
    """`snapshot_layers`, and what had to be dropped: a value its column cannot hold
    (`k_exec` 1e30 in an Int32 column) becomes null and is named in a note."""
    layers = (snapshot or {}).get("layers")
    if not isinstance(layers, list) or not layers:
        return schema.empty(schema.SNAPSHOT_LAYERS), []
    rows: list[dict[str, Any]] = []
    unrepresentable: dict[str, int] = {}  # integers too large even for a float
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            continue
        row: dict[str, Any] = {"layer": i}
        for key, value in layer.items():
            if not isinstance(key, str):
                continue
            if key == "s_trace":
                row[key] = (
                    [
                        float(v)
                        if isinstance(v, int | float)
                        and not isinstance(v, bool)
                        # an int beyond float range is as unusable as a string
                        and abs(v) < 1e308
                        else math.nan
                        for v in value
                    ]
                    if isinstance(value, list)
                    else None
                )
            elif isinstance(value, int | float):
                v = _number(value)
                if v is None:
                    unrepresentable[key] = unrepresentable.get(key, 0) + 1
                else:
                    row[key] = v
        rows.append(row)
    if not rows:
        return schema.empty(schema.SNAPSHOT_LAYERS), []
    df = pl.from_dicts(rows, infer_schema_length=None, strict=False)
    notes: list[str] = []
    cast = []
    for name, dtype in schema.SNAPSHOT_LAYERS.items():
        if name not in df.columns:
            continue
        col = df[name].cast(dtype, strict=False)
        lost = col.null_count() - df[name].null_count() + unrepresentable.pop(name, 0)
        if lost:
            notes.append(
                f"stats.json: {lost} value(s) of `{name}` out of range for its column, left empty"
            )
        cast.append(col)
    notes += [
        f"stats.json: {n} value(s) of `{name}` too large to store, left empty"
        for name, n in unrepresentable.items()
    ]
    df = df.with_columns(cast)
    extra = [c for c in df.columns if c not in schema.SNAPSHOT_LAYERS]
    known = schema.conform(df, schema.SNAPSHOT_LAYERS)
    if extra:
        known = known.with_columns(df.select(pl.col(extra).cast(pl.Float64, strict=False)))
    return known, notes
