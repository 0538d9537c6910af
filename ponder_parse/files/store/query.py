"""SQL over a run store, through DuckDB.

Each store table is a DuckDB view over its Hive-partitioned Parquet files (the files of
each run's committed version, listed when the connection is made), with `run_id` as its
first column; `runs` is the runs table. DuckDB reads the Parquet itself, with projection
and filter pushdown, so a query touches only what it needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from ponder_parse.files.store import layout
from ponder_parse.files.store.ingest import committed_files
from ponder_parse.files.store.reader import PRIVATE_RUN_COLUMNS, RunStore, table_schema

if TYPE_CHECKING:
    import duckdb


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


_READ = "hive_partitioning = true, hive_types = {'run_id': VARCHAR}, union_by_name = true"


def connect(store: RunStore) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per store table."""
    import duckdb

    con = duckdb.connect()
    row_files = store._row_files()
    states: dict[str, dict] = {}
    if row_files:
        ids_states = (
            pl.scan_parquet(row_files, hive_partitioning=True, hive_schema={"run_id": pl.String})
            .select("run_id", "state")
            .collect()
        )
        states = {rid: json.loads(s) for rid, s in ids_states.iter_rows()}
        private = ", ".join(PRIVATE_RUN_COLUMNS)
        con.execute(
            f"CREATE VIEW {layout.RUNS} AS SELECT run_id, * EXCLUDE (run_id, {private}) "
            f"FROM read_parquet({_sql_list(row_files)}, {_READ})"
        )
    else:
        _empty_view(con, layout.RUNS, store.scan_runs().collect())
    for table in layout.RUN_TABLES:
        files = [
            p
            for rid, state in states.items()
            for p in committed_files(store.root, rid, state)[table]
        ]
        if files:
            con.execute(
                f"CREATE VIEW {table} AS SELECT run_id, * EXCLUDE (run_id) "
                f"FROM read_parquet({_sql_list(files)}, {_READ})"
            )
        else:
            _empty_view(
                con, table, pl.DataFrame(schema={"run_id": pl.String, **table_schema(table)})
            )
    return con


def _empty_view(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    """A table with no files yet still has its columns, so queries over it just return
    no rows."""
    con.register(f"_empty_{name}", frame.to_arrow())
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM _empty_{name}")


def query(store: RunStore, sql: str) -> pl.DataFrame:
    """Run one SQL statement over the store; its result as a Polars frame."""
    con = connect(store)
    try:
        rel = con.sql(sql)
        return pl.DataFrame() if rel is None else rel.pl()
    finally:
        con.close()


def runs_where(store: RunStore, where: str | None = None) -> pl.DataFrame:
    """The runs table filtered by a DuckDB `WHERE` clause, ordered by name.

    DuckDB SQL, so hyperparameters are reachable in the JSON column, e.g.
    `json_extract(hparams, '$.lambda_max')::DOUBLE < 0.01`.
    """
    clause = f" WHERE {where}" if where and where.strip() else ""
    return query(store, f"SELECT * FROM {layout.RUNS}{clause} ORDER BY name, run_id")


# --- choosing runs from a runs table ------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    """What narrows a table of runs (one row per run, its name in `name_col`) down to the
    runs to show; every part left at its default keeps every run.

    `search` matches the name: a case-insensitive substring, or with `regex` a regular
    expression (Rust syntax, as Polars reads it). `health` keeps runs whose `health` is
    one of these. `values` keeps, per column (a hyperparameter or tag), runs whose value
    read as text is one of those given. `ranges` keeps, per numeric column (an outcome),
    runs within the inclusive bounds (None: open); a run without a value is out of any
    range. `sort` orders by a column (nulls last), ties by name.
    """

    search: str = ""
    regex: bool = False
    health: tuple[str, ...] = ()
    values: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    sort: str | None = None
    descending: bool = False


def select_runs(table: pl.DataFrame, f: RunFilter, name_col: str = "run") -> pl.DataFrame:
    """The rows of `table` that `f` keeps, in `f`'s order. A search that is not a valid
    regular expression, or a column the table lacks, is a `ValueError` saying so."""
    missing = [
        c
        for c in [*f.values, *f.ranges, *([f.sort] if f.sort else []), name_col]
        if c not in table.columns
    ]
    if f.health and "health" not in table.columns:
        missing.append("health")
    if missing:
        raise ValueError(f"no column(s) {', '.join(missing)} to choose runs by")
    conds: list[pl.Expr] = []
    text = f.search.strip()
    if text:
        if f.regex:
            try:
                re.compile(text)  # Python's view first: the common mistakes, said plainly
                conds.append(pl.col(name_col).str.contains(f"(?i){text}"))
                table.head(1).select(conds[-1])  # and Polars' (a few constructs differ)
            except (re.error, pl.exceptions.PolarsError) as exc:
                raise ValueError(f"not a valid regular expression: {text!r} ({exc})") from None
        else:
            conds.append(
                pl.col(name_col).str.to_lowercase().str.contains(text.lower(), literal=True)
            )
    if f.health:
        conds.append(pl.col("health").is_in(list(f.health)))
    for col, accepted in f.values.items():
        if accepted:
            conds.append(pl.col(col).cast(pl.String).is_in(list(accepted)))
    for col, (lo, hi) in f.ranges.items():
        if not table.schema[col].is_numeric():
            raise ValueError(f"{col} is not a number column")
        if lo is not None:
            conds.append(pl.col(col) >= lo)
        if hi is not None:
            conds.append(pl.col(col) <= hi)
    out = table.filter(pl.all_horizontal(conds).fill_null(False)) if conds else table
    if f.sort:
        out = out.sort([f.sort, name_col], descending=[f.descending, False], nulls_last=True)
    return out


def choice_values(table: pl.DataFrame, col: str) -> list[str]:
    """A column's distinct values as text for a value filter: by value when every one
    reads as a number (`0.0005` before `0.05`), else alphabetically."""
    s = table[col].drop_nulls().cast(pl.String).unique()
    as_num = s.cast(pl.Float64, strict=False)
    if as_num.null_count() == 0:
        return pl.DataFrame({"v": s, "n": as_num}).sort("n", "v")["v"].to_list()
    return s.sort().to_list()
