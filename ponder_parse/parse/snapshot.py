"""`stats.json`: the trainer's last-step snapshot.

The trainer overwrites it every step without an atomic rename, so a reader can catch it
half-written. That is an expected state, not an error: it is reported, never raised.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import polars as pl

from ponder_parse import schema


def read_snapshot(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The parsed snapshot, or `None` and the reason it could not be read."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"stats.json could not be read: {exc.strerror or exc}"
    if not raw.strip():
        return None, "stats.json is empty (being written?)"
    try:
        # Python's json writes NaN/Infinity for non-finite floats; json.loads accepts them.
        # The encoding as JSON defines it (a UTF-8 byte-order mark, UTF-16/32), so a file
        # saved by a Windows editor reads like the config files beside it.
        data = json.loads(raw.decode(json.detect_encoding(raw), errors="replace"))
    except json.JSONDecodeError as exc:
        return None, f"stats.json is half-written or not JSON ({exc.msg} at char {exc.pos})"
    if not isinstance(data, dict):
        return None, "stats.json does not hold an object"
    return data, None


def snapshot_layers(snapshot: dict[str, Any] | None) -> pl.DataFrame:
    """The snapshot's per-layer dicts as a frame (extra keys such as `wasted_compute` kept)."""
    layers = (snapshot or {}).get("layers")
    if not isinstance(layers, list) or not layers:
        return schema.empty(schema.SNAPSHOT_LAYERS)
    rows: list[dict[str, Any]] = []
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            continue
        row: dict[str, Any] = {"layer": i}
        for key, value in layer.items():
            if key == "s_trace":
                row[key] = (
                    [float(v) if isinstance(v, int | float) else math.nan for v in value]
                    if isinstance(value, list)
                    else None
                )
            elif isinstance(value, bool):
                row[key] = float(value)
            elif isinstance(value, int | float):
                row[key] = value
        rows.append(row)
    if not rows:
        return schema.empty(schema.SNAPSHOT_LAYERS)
    df = pl.from_dicts(rows, infer_schema_length=None, strict=False)
    extra = [c for c in df.columns if c not in schema.SNAPSHOT_LAYERS]
    known = schema.conform(df, schema.SNAPSHOT_LAYERS)
    if extra:
        known = known.with_columns(df.select(pl.col(extra).cast(pl.Float64, strict=False)))
    return known
