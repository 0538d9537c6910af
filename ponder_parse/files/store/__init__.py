"""The run store: every run's tables as Hive-partitioned Parquet, parsed once.

store = open_store("/data/ponder-store", create=True)
store.ingest(["/data/sweeps/target_k"], workers=4)
store.runs()                                   # one row per run, no run table opened
store.scan("steps", ids, columns=["step", "lm_loss"], step_range=(1000, None)).collect()
store.load(run_id)                             # a `Run`, as `load_run` gives it

Layout, columns and the CLI are described in the README ("The run store").
"""

from ponder_parse.files.store.ingest import (
    HEALTHS,
    RUNS_SCHEMA,
    IngestReport,
    IngestResult,
    ingest_paths,
    ingest_run,
)
from ponder_parse.files.store.layout import (
    RUN_TABLES,
    StoreError,
    StoreLockedError,
    default_store_dir,
    run_id_for,
)
from ponder_parse.files.store.reader import RunStore, open_store

__all__ = [
    "HEALTHS",
    "RUNS_SCHEMA",
    "RUN_TABLES",
    "IngestReport",
    "IngestResult",
    "RunStore",
    "StoreError",
    "StoreLockedError",
    "default_store_dir",
    "ingest_paths",
    "ingest_run",
    "open_store",
    "run_id_for",
]
