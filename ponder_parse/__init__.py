"""Read adaptive-depth ("ponder") trainer logs and stats.json into typed Polars tables.

import ponder_parse
run = ponder_parse.load_run("sample_runs/baseline,seed=0")
runs = ponder_parse.load_runs(["sample_runs"])
"""

from ponder_parse.files.loader import (
    LoadFailure,
    RunList,
    RunLoadError,
    load_run,
    load_runs,
    parse_run,
)
from ponder_parse.run import Run

__all__ = [
    "LoadFailure",
    "Run",
    "RunList",
    "RunLoadError",
    "load_run",
    "load_runs",
    "parse_run",
]
