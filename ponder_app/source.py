"""Runs from run stores: `--store DIR` opened as it is, and the cache store that runs given
as paths go through, so a sweep opened again is read from Parquet instead of parsed.

A run from a store is a `StoredRun`: its facts and its default-rules summary and sweep
measures come from the store's `runs` table; its tables are read from the store the first
time a page uses them (only the selected runs' are), through a cache of bounded size
(`reader.TABLE_CACHE`). So the Runs and Sweep pages of a thousand stored runs read one
small row per run, and memory follows what is on screen.

Runs given as paths (`--runs`, `PONDER_RUNS`, the sample sweep, the path box) are ingested
into the cache store (`PONDER_STORE`, else the user's cache folder; `PONDER_STORE=off`
turns it off): a run is parsed only when its files changed. Where the cache store cannot
be written, or a run cannot be ingested, the run is read in memory as before. Uploads and
followed (live) logs are read in memory: an upload lives only as long as its session, and
a live log changes every few seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import streamlit as st

from ponder_parse.analysis import red_flags as flags
from ponder_parse.analysis import summaries
from ponder_parse.analysis.red_flags.engine import Measure, RunMeasures
from ponder_parse.files.loader import LoadFailure
from ponder_parse.run import Run

if TYPE_CHECKING:  # the store is imported when first used, not with the frame
    from ponder_parse.files.store.reader import RunStore, StoredRun

_READER = "ponder_parse.files.store.reader"


def as_stored(run: Run) -> StoredRun | None:
    """The run as a `StoredRun`, or None (without importing the store: until it is
    imported, no run can come from one)."""
    reader = sys.modules.get(_READER)
    if reader is not None and isinstance(run, reader.StoredRun):
        return run
    return None


logger = logging.getLogger(__name__)
OFF = ("0", "off", "no", "none", "false")
DEFAULT_SHOWN = 20
"""More runs than this open with this many shown (the first loaded): every shown run's
tables are read, so showing a thousand at once is never the default."""


# --- which stores -------------------------------------------------------------------------


def cli_stores(argv: Sequence[str] | None = None) -> list[str]:
    """`streamlit run app.py -- --store A --store B` → [A, B]."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--store", action="append", default=[])
    args, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return [p for p in args.store if p]


def cache_store_dir() -> Path | None:
    """Where runs given as paths are cached (`PONDER_STORE`, else the user's cache
    folder); None when `PONDER_STORE` turns the cache off."""
    from ponder_parse.files.store import layout

    if os.environ.get(layout.STORE_ENV, "").strip().lower() in OFF:
        return None
    return layout.default_store_dir()


@st.cache_resource(show_spinner=False, max_entries=8)
def _cache_store(root: str) -> RunStore | None:
    from ponder_parse.files.store import StoreError, open_store

    try:
        return open_store(root, create=True)
    except (StoreError, OSError) as exc:
        logger.warning("run cache %s cannot be used (%s): runs are read in memory", root, exc)
        return None


def cache_store() -> RunStore | None:
    root = cache_store_dir()
    return None if root is None else _cache_store(str(root))


# --- runs given as paths, through the cache store -------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=5000)
def _through_store(root: str, path: str, stamp: tuple[Any, ...]) -> StoredRun | None:
    """Ingest one run (parsing only what changed since it was stored) and open it; cached
    by the files' stamp, so an unchanged run costs nothing on a rerun."""
    from ponder_parse.files.store.reader import RunStore

    store = RunStore(root)
    result = store.ingest_run(path)
    if not result.ok or result.run_id is None:
        return None
    rows = store.stored_runs([result.run_id])
    return rows[0] if rows else None


def through_store(path: Path, stamp: tuple[Any, ...]) -> tuple[Run, str] | None:
    """The run at `path` from the cache store, and its analyses' cache key; None when
    there is no usable cache store or the run could not be stored (the caller then reads
    it in memory, which says why when it cannot be read at all)."""
    store = cache_store()
    if store is None:
        return None
    run = _through_store(str(store.root), str(path), stamp)
    if run is None:
        return None
    return run, run_key(run)


def run_key(run: StoredRun) -> str:
    """What a stored run's analyses are cached under: its store, id and version."""
    return f"store:{run.store.root}|{run.run_id}|v{run.version}"


# --- stores opened with --store ---------------------------------------------------------------


def _signature(store: RunStore) -> tuple[tuple[str, int, int], ...]:
    """The row files and their stamps: a run stored again (or added) changes it."""
    out = []
    for p in store._row_files():
        try:
            s = p.stat()
        except OSError:
            continue
        out.append((p.parent.name, s.st_size, s.st_mtime_ns))
    return tuple(out)


@st.cache_resource(show_spinner=False, max_entries=8)
def _opened(root: str, signature: tuple[tuple[str, int, int], ...]) -> list[StoredRun]:
    from ponder_parse.files.store.reader import RunStore

    return RunStore(root).stored_runs()


@dataclass
class Opened:
    runs: list[Run]
    keys: list[str]
    failures: list[LoadFailure]


def opened_stores(dirs: Sequence[str] | None = None) -> Opened:
    """Every run of the `--store` folders, none of their tables read; a folder that is
    not a store is a listed failure."""
    out = Opened([], [], [])
    given = cli_stores() if dirs is None else dirs
    if not given:
        return out
    from ponder_parse.files.store import StoreError, open_store

    for raw in given:
        try:
            store = open_store(Path(raw).expanduser())
            runs = _opened(str(store.root), _signature(store))
        except (StoreError, OSError) as exc:
            out.failures.append(LoadFailure(Path(raw), str(exc).removeprefix(f"{raw}: ")))
            continue
        out.runs.extend(runs)
        out.keys.extend(run_key(r) for r in runs)
    return out


# --- what the store already knows -------------------------------------------------------------


def _as_stored(run: Run, rules: flags.FlagRules, overrides: Mapping[str, int]) -> StoredRun | None:
    """The stored run, when the store's figures hold for it: they were computed with the
    default red-flag rules, no phase edits and audit steps left out."""
    return as_stored(run) if not rules.names and not overrides else None


def stored_summary(
    run: Run, rules: flags.FlagRules, include_audit: bool, overrides: Mapping[str, int]
) -> dict[str, Any] | None:
    """The run's stored `run_summary`, when it is the one asked for; else None."""
    stored = None if include_audit else _as_stored(run, rules, overrides)
    if stored is None or stored.stored_summary is None:
        return None
    return {**stored.stored_summary, "run": run.name}


def stored_phases(run: Run, overrides: Mapping[str, int]) -> pl.DataFrame | None:
    """The run's stored phases, when no phase edit applies to it; else None."""
    stored = as_stored(run) if not overrides else None
    return None if stored is None else stored.stored_phases


def stored_measures(
    run: Run, rules: flags.FlagRules, overrides: Mapping[str, int]
) -> RunMeasures | None:
    """The run's stored sweep-rule measures, when they are the ones asked for; else None."""
    stored = _as_stored(run, rules, overrides)
    m = None if stored is None else stored.stored_measures
    if m is None:
        return None
    return RunMeasures(
        run=run.name,
        facts=dict(m["facts"]),
        values={k: Measure(**v) for k, v in m["values"].items()},
        errors=dict(m.get("errors", {})),
    )


def run_facts(run: Run) -> pl.DataFrame:
    """`summaries.run_facts`, from the store's row for a stored run (no table read)."""
    stored = as_stored(run)
    if stored is not None and stored.stored_facts is not None:
        return pl.DataFrame(
            stored.stored_facts, schema={"fact": pl.String, "value": pl.String}, orient="row"
        )
    return summaries.run_facts(run)


def n_problems(run: Run) -> int:
    """Lines the log did not understand (a stored run's count from its row)."""
    stored = as_stored(run)
    if stored is not None and stored.stored_summary is not None:
        return int(stored.stored_summary.get("problems") or 0)
    return run.problems.height


def default_selection(names: Sequence[str]) -> list[str]:
    """The runs shown before the user chooses: all of a small set, else the first
    `DEFAULT_SHOWN`."""
    return list(names[:DEFAULT_SHOWN])
