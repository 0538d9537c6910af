"""Read adaptive-depth ("ponder") trainer logs and stats.json into typed Polars tables.

    import ponder_parse
    run = ponder_parse.load_run("sample_runs/baseline,seed=0")
    runs = ponder_parse.load_runs(["sample_runs"])
    ponder_parse.patterns.pattern_shares(run, by=["phase"])
    ponder_parse.flags.red_flags(run)

The analysis modules live in `ponder_parse.analysis`; the ones a notebook reaches for are
also attributes of the package itself (`flags` is `analysis.red_flags`), so scripts
written against the flat names keep working.

Every name here is imported on first use (PEP 562): importing any part of the package
(`ponder_parse.schema`, the parser) runs this file, and an app that shows one chart
should not pay at start for the red-flag engine, the sweep analysis or the loader's
config readers it has not asked for. `from ponder_parse import patterns` and
`ponder_parse.flags` work as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# public name → (module, attribute in it, or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "catalog": ("ponder_parse.analysis.catalog", None),
    "downsample": ("ponder_parse.analysis.downsample", None),
    "patterns": ("ponder_parse.analysis.patterns", None),
    "phases": ("ponder_parse.analysis.phases", None),
    "red_flags": ("ponder_parse.analysis.red_flags", None),
    "flags": ("ponder_parse.analysis.red_flags", None),
    "smoothing": ("ponder_parse.analysis.smoothing", None),
    "summaries": ("ponder_parse.analysis.summaries", None),
    "sweep": ("ponder_parse.analysis.sweep", None),
    "LoadFailure": ("ponder_parse.files.loader", "LoadFailure"),
    "RunList": ("ponder_parse.files.loader", "RunList"),
    "RunLoadError": ("ponder_parse.files.loader", "RunLoadError"),
    "load_run": ("ponder_parse.files.loader", "load_run"),
    "load_runs": ("ponder_parse.files.loader", "load_runs"),
    "parse_run": ("ponder_parse.files.loader", "parse_run"),
    "Run": ("ponder_parse.run", "Run"),
}

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


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
