"""SQL over a run store, through DuckDB.

Each store table is a DuckDB view over its Hive-partitioned Parquet files (the files of
each run's committed version, listed when the connection is made), with `run_id` as its
first column; `runs` is the runs table. DuckDB reads the Parquet itself, with projection
and filter pushdown, so a query touches only what it needs.
"""

from __future__ import annotations

import json
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
