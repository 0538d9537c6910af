"""Reading a run store back: the `runs` table, lazy scans of run tables, whole runs.

Everything read goes through each run's row in `runs`, which names the part files of the
run's committed version, so a reader never mixes two versions of a run and never sees a
writer's files before they are complete. Scans are lazy `pl.LazyFrame`s over those files:
a page that needs two columns of twenty runs over a step range reads that, not the store.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ponder_parse import schema
from ponder_parse.analysis.phases import PHASES_SCHEMA
from ponder_parse.files.store import layout
from ponder_parse.files.store.ingest import (
    RUNS_SCHEMA,
    IngestReport,
    IngestResult,
    ProgressFn,
    committed_files,
    ingest_paths,
    ingest_run,
    read_row,
)
from ponder_parse.run import Run, TableCounts

HIVE = {"run_id": pl.String}
# A `TABLE_CACHE` key: store root, run id, version, table, and (for part of a table)
# the columns asked for.
CacheKey = tuple[Any, ...]
# Columns of `runs` that are machinery, not facts about a run.
PRIVATE_RUN_COLUMNS = ("state",)


def table_schema(table: str) -> schema.TableSchema:
    if table == "snapshot_layers":
        return schema.SNAPSHOT_LAYERS
    try:
        return schema.TABLES[table]
    except KeyError:
        raise ValueError(
            f"unknown table {table!r}; the store holds {', '.join(layout.RUN_TABLES)}"
        ) from None


def _public_run_columns() -> schema.TableSchema:
    return {c: d for c, d in RUNS_SCHEMA.items() if c not in PRIVATE_RUN_COLUMNS}


def _scan_rows(files: Sequence[Path]) -> pl.LazyFrame:
    """Rows of `runs`, `run_id` first, in `RUNS_SCHEMA`'s columns. A row written by an
    older version may lack a column added since (read as null, and the run is parsed
    again at its next ingest); one written by a newer version may have more (left out)."""
    cols = _public_run_columns()
    return pl.scan_parquet(
        list(files),
        schema=cols,
        hive_partitioning=True,
        hive_schema=HIVE,
        missing_columns="insert",
        extra_columns="ignore",
    ).select("run_id", *cols)


class RunStore:
    """A run store folder (see the README's "The run store")."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    # --- writing -----------------------------------------------------------------------
    def ingest(
        self,
        paths: Iterable[str | Path],
        *,
        workers: int = 1,
        progress: ProgressFn | None = None,
        use_processes: bool = True,
        sync: bool = False,
    ) -> IngestReport:
        """Add or update runs; only what changed is parsed (see `IngestResult.action`).
        `sync` flushes every part file to disk, not only each run's row (see `layout`)."""
        return ingest_paths(
            self.root,
            paths,
            workers=workers,
            progress=progress,
            use_processes=use_processes,
            sync=sync,
        )

    def ingest_run(self, path: str | Path, *, sync: bool = False) -> IngestResult:
        return ingest_run(self.root, path, sync=sync)

    def remove(self, run_id: str) -> bool:
        """Forget a run (its row first, so readers stop seeing it before its parts go)."""
        with layout.run_lock(self.root, run_id):
            row = read_row(self.root, run_id)
            if row is None:
                return False
            files = committed_files(self.root, run_id, json.loads(row["state"]))
            layout.remove_quietly(layout.runs_row_path(self.root, run_id))
            for paths in files.values():
                for p in paths:
                    layout.remove_quietly(p)
            for p in layout.leftover_files(self.root, run_id, set()):
                layout.remove_quietly(p)
        return True

    # --- reading -----------------------------------------------------------------------
    def _row_files(self) -> list[Path]:
        return sorted((self.root / layout.RUNS).glob("run_id=*/part-0.parquet"))

    def scan_runs(self) -> pl.LazyFrame:
        """The `runs` table, lazily (filter and project before collecting)."""
        files = self._row_files()
        if not files:
            return pl.LazyFrame(schema={"run_id": pl.String, **_public_run_columns()})
        return _scan_rows(files)

    def runs(self) -> pl.DataFrame:
        """One row per stored run: identity, files, meta facts, hyperparameters (JSON),
        summary outcomes and health. Enough for a runs or sweep page without opening any
        run's tables."""
        return self.scan_runs().collect()

    def run_ids(self) -> list[str]:
        return [p.parent.name.removeprefix("run_id=") for p in self._row_files()]

    def hparams(self, run_ids: Sequence[str] | None = None) -> pl.DataFrame:
        """Hyperparameters as columns (one per key, `run_id` first), for sweep tables."""
        runs = self.scan_runs().select("run_id", "hparams")
        if run_ids is not None:
            runs = runs.filter(pl.col("run_id").is_in(list(run_ids)))
        df = runs.collect()
        rows = [{"run_id": rid, **json.loads(hp)} for rid, hp in df.iter_rows()]
        if not rows:
            return pl.DataFrame(schema={"run_id": pl.String})
        return pl.from_dicts(rows, infer_schema_length=None, strict=False)

    def _state(self, run_id: str) -> dict[str, Any]:
        row = read_row(self.root, run_id)
        if row is None:
            raise KeyError(f"no run {run_id!r} in {self.root}")
        return row

    def files(self, table: str, run_ids: Sequence[str]) -> list[Path]:
        """The part files holding `table` for these runs, in run then part order."""
        table_schema(table)
        out: list[Path] = []
        for rid in run_ids:
            state = json.loads(self._state(rid)["state"])
            out.extend(committed_files(self.root, rid, state)[table])
        return out

    def scan(
        self,
        table: str,
        run_ids: str | Sequence[str] | None = None,
        columns: Sequence[str] | None = None,
        step_range: tuple[int | None, int | None] | None = None,
    ) -> pl.LazyFrame:
        """A run table for some runs (all when `run_ids` is None), lazily, with `run_id`
        as its first column.

        `columns` and `step_range` (inclusive; either end may be None) are pushed down to
        the Parquet reader: only those columns are read, and row groups outside the range
        are skipped from their statistics. Collect it promptly: an ingest of one of these
        runs deletes the files of the version it replaces.
        """
        s = table_schema(table)
        if isinstance(run_ids, str):
            run_ids = [run_ids]
        if run_ids is None:
            run_ids = self.run_ids()
        if columns is not None:
            unknown = [c for c in columns if c not in s and c != "run_id"]
            if unknown:
                raise ValueError(f"{table} has no column(s) {unknown}; it has {list(s)}")
        wanted = ["run_id", *(c for c in (columns if columns is not None else s) if c != "run_id")]
        files = self.files(table, run_ids)
        if not files:
            lf = pl.LazyFrame(schema={"run_id": pl.String, **s})
        elif table == "snapshot_layers":
            # Snapshot layers may carry extra keys (e.g. `wasted_compute`) that differ by run.
            lf = pl.concat(
                [pl.scan_parquet(f, hive_partitioning=True, hive_schema=HIVE) for f in files],
                how="diagonal_relaxed",
            )
        else:
            lf = pl.scan_parquet(files, hive_partitioning=True, hive_schema=HIVE)
        if step_range is not None:
            if "step" not in s:
                raise ValueError(f"{table} has no step column to take a range of")
            lo, hi = step_range
            if lo is not None:
                lf = lf.filter(pl.col("step") >= lo)
            if hi is not None:
                lf = lf.filter(pl.col("step") <= hi)
        if table == "snapshot_layers" and columns is None:
            return lf.select("run_id", pl.exclude("run_id"))
        return lf.select(wanted)

    def table(self, run_id: str, table: str, version: int) -> pl.DataFrame:
        """One run table of one stored version, whole, through the process's bounded
        table cache (`TABLE_CACHE`)."""
        return TABLE_CACHE.get((str(self.root), run_id, version, table), self._read_table)

    def table_columns(
        self, run_id: str, table: str, version: int, columns: Sequence[str]
    ) -> pl.DataFrame:
        """These columns of one run table (those it has, in this order), read with the
        others left on disk, through `TABLE_CACHE` keyed by the columns asked for. When
        the whole table, or a set of its columns holding these, is in memory already, it
        answers without a read."""
        prefix = (str(self.root), run_id, version, table)
        held = TABLE_CACHE.peek(prefix)
        if held is None:
            held = TABLE_CACHE.peek_covering(prefix, columns)
        if held is not None:
            return held.select([c for c in columns if c in held.columns])
        key = (*prefix, tuple(columns))
        return TABLE_CACHE.get(key, self._read_table)

    def _read_table(self, key: CacheKey) -> pl.DataFrame:
        """A cache key's table: whole (four-part key) or only the columns its fifth part
        names."""
        run_id, table = key[1], key[3]
        columns: tuple[str, ...] | None = key[4] if len(key) > 4 else None
        for attempt in range(4):
            # The version the row names now: a run stored again since it was opened is
            # read as it is now (the app opens it again once it sees the new row).
            state = json.loads(self._state(run_id)["state"])
            paths = committed_files(self.root, run_id, state)[table]
            if not paths:
                empty = schema.empty(table_schema(table))
                return (
                    empty
                    if columns is None
                    else empty.select([c for c in columns if c in empty.columns])
                )
            try:
                if columns is None or table == "snapshot_layers":
                    # Snapshot layers' keys may differ by part: read whole, then select.
                    df = pl.read_parquet(paths, hive_partitioning=False)
                    return (
                        df if columns is None else df.select(c for c in columns if c in df.columns)
                    )
                have = pl.read_parquet_schema(paths[0])
                wanted = [c for c in columns if c in have]
                return pl.read_parquet(paths, columns=wanted, hive_partitioning=False)
            except FileNotFoundError:
                if attempt == 3:
                    raise
        raise AssertionError("unreachable")

    def stored_run(self, row: Mapping[str, Any]) -> StoredRun:
        """A `Run` for a row of `runs()` whose tables are read when first used."""
        return StoredRun(self, row)

    def stored_runs(self, run_ids: Sequence[str] | None = None) -> list[StoredRun]:
        """Every stored run (or these; unknown ids are left out) as `StoredRun`s, in name
        order: their facts from the `runs` table, no run table read."""
        if run_ids is None:
            lf = self.scan_runs()
        else:
            files = [p for rid in run_ids if (p := layout.runs_row_path(self.root, rid)).is_file()]
            if not files:
                return []
            lf = _scan_rows(files)
        rows = lf.sort("name", "run_id").collect().iter_rows(named=True)
        return [self.stored_run(row) for row in rows]

    def load(self, run_id: str, *, retries: int = 3) -> Run:
        """The stored run as a `Run`, equal to what `load_run` gives for its path."""
        for attempt in range(retries + 1):
            try:
                return self._load(run_id)
            except FileNotFoundError:
                # Its version was replaced while we read it: read the new one.
                if attempt == retries:
                    raise
        raise AssertionError("unreachable")

    def _load(self, run_id: str) -> Run:
        row = self._state(run_id)
        state = json.loads(row["state"])
        files = committed_files(self.root, run_id, state)
        tables: dict[str, pl.DataFrame] = {}
        for table in layout.RUN_TABLES:
            s = table_schema(table)
            paths = files[table]
            tables[table] = (
                pl.read_parquet(paths, hive_partitioning=False) if paths else schema.empty(s)
            )
        return Run(
            name=row["name"],
            source=Path(row["log_file"]),
            variant=row["variant"],
            snapshot=None if row["snapshot"] is None else json.loads(row["snapshot"]),
            meta=json.loads(row["meta"]),
            hparams=json.loads(row["hparams"]),
            **tables,
        )


class TableCache:
    """Run tables read from stores, least recently used first out, within a byte budget.

    Shared by every `StoredRun` of the process: what stays in memory is the tables that
    were used last, up to `budget` bytes (`PONDER_STORE_CACHE_MB`, default 512), however
    many runs are stored or were ever opened. A table larger than the budget is still
    returned, just not kept. Some columns of a table (`StoredRun.table(name, columns)`)
    are kept under their own key, within the same budget.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._items: OrderedDict[CacheKey, tuple[pl.DataFrame, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.reads = 0  # tables (or column sets) read from disk: tests and benchmarks count
        self.read_bytes = 0  # in-memory size of what those reads returned

    def peek(self, key: CacheKey) -> pl.DataFrame | None:
        """The frame held under `key`, or None; never reads."""
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def peek_covering(self, table: CacheKey, columns: Sequence[str]) -> pl.DataFrame | None:
        """A set of columns of `table` (a four-part key) held that includes `columns`, or
        None; never reads. A column the table lacks is left out of a read's set, so it is
        looked for among the columns asked for, not those read."""
        want = set(columns)
        with self._lock:
            for key in reversed(self._items):
                if len(key) > 4 and key[:4] == table and want <= set(key[4]):
                    self._items.move_to_end(key)
                    return self._items[key][0]
        return None

    def get(self, key: CacheKey, read: Any) -> pl.DataFrame:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit[0]
        df: pl.DataFrame = read(key)
        size = int(df.estimated_size())
        with self._lock:
            self.reads += 1
            self.read_bytes += size
            if key not in self._items and size <= self.budget:
                self._items[key] = (df, size)
                self._bytes += size
                while self._bytes > self.budget and self._items:
                    _, (_, n) = self._items.popitem(last=False)
                    self._bytes -= n
        return df

    @property
    def nbytes(self) -> int:
        return self._bytes

    def run_ids(self) -> set[str]:
        """The runs with a table in memory."""
        with self._lock:
            return {k[1] for k in self._items}

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


def _cache_budget() -> int:
    try:
        mb = float(os.environ.get("PONDER_STORE_CACHE_MB", "512"))
    except ValueError:
        mb = 512.0
    return int(max(mb, 0.0) * 2**20)


TABLE_CACHE = TableCache(_cache_budget())

_TABLE_FIELDS = frozenset(layout.RUN_TABLES)


class StoredRun(Run):
    """A stored run as a `Run`: its facts (name, meta, hyperparameters, snapshot, the
    stored summary) come from its row in `runs`, its tables from the store when a page
    first reads them, one table at a time, through `TABLE_CACHE`.

    The tables are never attributes of the object, so a thousand `StoredRun`s cost a
    thousand rows, and a copy (`copy.copy`, `run.replaced`) shares the store handle, not
    the tables. `dataclasses.replace` would read every table: use `run.replaced`.
    """

    def __init__(self, store: RunStore, row: Mapping[str, Any]) -> None:
        # The plain fields only: table fields are answered by `__getattr__`.
        self.name = str(row["name"])
        self.source = Path(row["log_file"]) if row.get("log_file") else None
        self.variant = str(row["variant"])
        self.snapshot = None if row.get("snapshot") is None else json.loads(row["snapshot"])
        self.meta = json.loads(row["meta"])
        self.hparams = json.loads(row["hparams"])
        self.store = store
        self.run_id = str(row["run_id"])
        self.version = int(row["version"])
        self.content_hash = str(row["content_hash"])
        self.stored_n_steps = int(row["n_steps"] or 0)
        raw = row.get("summary")
        self.stored_summary: dict[str, Any] | None = None if raw is None else json.loads(raw)
        raw = row.get("facts")
        self.stored_facts: list[list[str]] | None = None if raw is None else json.loads(raw)
        raw = row.get("measures")
        self.stored_measures: dict[str, Any] | None = None if raw is None else json.loads(raw)
        # Read when first used: opening a thousand rows builds no frame it may not need.
        self._phases_json: str | None = row.get("phases")
        self._counts_json: str | None = row.get("columns")

    @functools.cached_property
    def stored_phases(self) -> pl.DataFrame | None:
        """The phases (no edits) computed at ingest; None in a row from before they were."""
        raw = self._phases_json
        return (
            None
            if raw is None
            else pl.DataFrame(json.loads(raw), schema=PHASES_SCHEMA, orient="row")
        )

    @functools.cached_property
    def stored_counts(self) -> dict[str, TableCounts] | None:
        """`Run.column_counts` computed at ingest; None in a row from before they were."""
        return None if self._counts_json is None else json.loads(self._counts_json)

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the object lacks: the tables (and, on an object
        # being copied, anything at all: its __dict__ is still empty then).
        if name in _TABLE_FIELDS and "store" in self.__dict__:
            return self.store.table(self.run_id, name, self.version)
        raise AttributeError(name)

    @property
    def n_steps(self) -> int:
        return self.stored_n_steps

    def table(self, name: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """`Run.table`, with only `columns` read from the store (see `RunStore.table_columns`)."""
        if columns is None:
            return Run.table(self, name)
        table_schema(name)
        return self.store.table_columns(self.run_id, name, self.version, columns)

    def column_counts(self) -> dict[str, TableCounts]:
        """From the row (a row written before it held them: from the tables)."""
        if self.stored_counts is not None:
            return self.stored_counts
        return Run.column_counts(self)

    def loaded_tables(self) -> list[str]:
        """The tables of this run with all or some of their columns in `TABLE_CACHE` now."""
        out: list[str] = []
        for k in list(TABLE_CACHE._items):
            if k[:3] == (str(self.store.root), self.run_id, self.version) and k[3] not in out:
                out.append(k[3])
        return out

    def __repr__(self) -> str:
        return f"StoredRun(name={self.name!r}, run_id={self.run_id!r}, steps={self.n_steps})"

    __eq__ = object.__eq__  # a dataclass compares every table: identity is enough here
    __hash__ = object.__hash__


def open_store(root: str | Path | None = None, *, create: bool = False) -> RunStore:
    """The store at `root` (default: the user's cache store). With `create`, a missing
    store is made; otherwise a folder that is not a store is an error, so a typo in
    `--store` is not mistaken for an empty store."""
    path = Path(root) if root is not None else layout.default_store_dir()
    if create:
        layout.ensure_store(path)
    else:
        layout.check_store(path)
    return RunStore(path)
