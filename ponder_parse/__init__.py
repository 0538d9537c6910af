"""Read adaptive-depth ("ponder") trainer logs and stats.json into typed Polars tables.

    import ponder_parse
    run = ponder_parse.load_run("sample_runs/baseline,seed=0")
    runs = ponder_parse.load_runs(["sample_runs"])
    ponder_parse.patterns.pattern_shares(run, by=["phase"])
    ponder_parse.flags.red_flags(run)

The analysis modules live in `ponder_parse.analysis`; the ones a notebook reaches for are
also attributes of the package itself (`flags` is `analysis.red_flags`), so scripts
written against the flat names keep working.
"""

from ponder_parse.analysis import (
    catalog,
    downsample,
    patterns,
    phases,
    red_flags,
    smoothing,
    summaries,
    sweep,
)
from ponder_parse.analysis import red_flags as flags
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
    "catalog",
    "downsample",
    "flags",
    "load_run",
    "load_runs",
    "parse_run",
    "patterns",
    "phases",
    "red_flags",
    "smoothing",
    "summaries",
    "sweep",
]
