"""The user's edits to a run (hyperparameter tags, phase boundaries), kept in a small file
beside the run so they outlive the session that made them.

One JSON file per folder, `.ponder-edits.json`, holding the edits of every run whose log
lies in it (keyed by the log's file name). A dot-name: the run finder and the config
reader pass it by, and it does not count as part of the run's content. When the folder
cannot be written (a read-only sweep, someone else's runs) the file goes to the user's
cache folder instead, named after the folder's resolved path, and is read from there
(`PONDER_EDITS_DIR` sends every run's edits to one folder).

The file is user-editable text: whatever does not have the expected shape is dropped
when read, never raised.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder_parse.analysis.phases import BOUNDARY_KEYS

EDITS_NAME = ".ponder-edits.json"
VERSION = 1
EDITS_DIR_ENV = "PONDER_EDITS_DIR"
"""When set, every run's edits go to this folder (named by the run folder's path), never
beside the runs: for a shared, read-only deployment, or tests."""
_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RunEdits:
    """One run's edits: tag key → value (None deletes the run's own value), and phase
    boundary → first step of that phase."""

    tags: dict[str, Any] = field(default_factory=dict)
    phases: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.tags or self.phases)


def cache_dir() -> Path:
    """Where edits go when a run's folder cannot be written: `$XDG_CACHE_HOME/ponder/edits`
    (`~/.cache/ponder/edits` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ponder" / "edits"


def _fallback(folder: Path, cache: Path) -> Path:
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:20]
    return cache / f"{digest}.json"


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def edits_file(log: Path, cache: Path | None = None) -> Path:
    """The file holding the edits of the run whose log is `log`: beside it when its
    folder can be written or the file is already there, else in the cache folder."""
    folder = log.parent
    forced = os.environ.get(EDITS_DIR_ENV)
    if forced:
        return _fallback(folder, Path(forced))
    beside = folder / EDITS_NAME
    if beside.is_file() or _writable(folder):
        return beside
    return _fallback(folder, cache or cache_dir())


def _scalar(v: Any) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    return v is None or isinstance(v, str | int | bool)


def _clean(raw: Any) -> RunEdits:
    if not isinstance(raw, Mapping):
        return RunEdits()
    tags_raw = raw.get("tags")
    tags = (
        {str(k): v for k, v in tags_raw.items() if isinstance(k, str) and k and _scalar(v)}
        if isinstance(tags_raw, Mapping)
        else {}
    )
    phases_raw = raw.get("phases")
    phases = (
        {
            k: int(v)
            for k, v in phases_raw.items()
            if k in BOUNDARY_KEYS and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        }
        if isinstance(phases_raw, Mapping)
        else {}
    )
    return RunEdits(tags, phases)


def _read_all(path: Path) -> dict[str, Any]:
    """The file's runs table; empty when it is missing, too large, or not the expected JSON."""
    try:
        if not path.is_file() or path.stat().st_size > _MAX_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    runs = data.get("runs") if isinstance(data, dict) else None
    return dict(runs) if isinstance(runs, dict) else {}


def read_edits(log: Path, cache: Path | None = None) -> RunEdits:
    """The saved edits of the run whose log is `log` (none when nothing usable is saved)."""
    for path in dict.fromkeys(
        [edits_file(log, cache), _fallback(log.parent, cache or cache_dir())]
    ):
        got = _clean(_read_all(path).get(log.name))
        if got:
            return got
    return RunEdits()


def write_edits(log: Path, edits: RunEdits, cache: Path | None = None) -> Path:
    """Save one run's edits (an empty `RunEdits` removes its entry), keeping the other
    runs' entries in the same file. Written to a temporary file and renamed, so a reader
    never sees half a file. Returns where it went; raises OSError when neither the
    folder nor the cache folder can be written."""
    path = edits_file(log, cache)
    try:
        return _write(path, log.name, edits)
    except OSError:
        fallback = _fallback(log.parent, cache or cache_dir())
        if fallback == path:
            raise
        return _write(fallback, log.name, edits)


def _write(path: Path, key: str, edits: RunEdits) -> Path:
    runs = _read_all(path)
    if edits:
        runs[key] = {"tags": dict(edits.tags), "phases": dict(edits.phases)}
    else:
        runs.pop(key, None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ponder-edits-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"version": VERSION, "runs": runs}, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
