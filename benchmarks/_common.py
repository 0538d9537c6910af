"""What the benchmark scripts share: where the project and the cached inputs are, the
machine facts every report starts with, and the verdict words.

Imported as `_common` by the scripts (run as `python benchmarks/<script>.py`, their own
folder is first on the import path); importing it also makes the project importable
without installing it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere, without installing
    sys.path.insert(0, str(ROOT))

DATA_DIR = Path(__file__).resolve().parent / "_data"


def machine() -> dict[str, Any]:
    """Cores and load: timings from a busy machine are not comparable, so every report
    says how busy it was."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"cpus": os.cpu_count(), "load_avg_1_5_15": [round(x, 2) for x in load]}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def free_port() -> int:
    """A port nothing listens on now, for a server the benchmark starts."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def script_file(name: str, text: str) -> Path:
    """A small app the benchmark runs (its floor or reference), written under `_data/`
    only when its text changed, so its mtime (and Streamlit's cache of it) stays put."""
    path = DATA_DIR / name
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def process_pool(workers: int) -> ProcessPoolExecutor:
    """Workers started fresh (spawn), not forked: a fork taken after Polars has started its
    thread pool can inherit a held lock and hang for ever, as writing the inputs did once
    the parent had already simulated a run."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def _write_one(args: tuple[Any, str, str]) -> str:
    from ponder_parse.sim.simulate import write_run

    cfg, out_dir, name = args
    return str(write_run(cfg, out_dir, name))


def write_sweep(
    sweep_dir: Path, configs: Mapping[str, Any], manifest: str, workers: int, chunksize: int = 1
) -> float:
    """Simulate `configs` (run name → `SimConfig`) into `sweep_dir`, unless the manifest
    there says an identical sweep is already written; seconds spent writing (0 when
    reused). A folder holding anything else is replaced whole, so no stale run lingers."""
    wanted = {name: cfg.to_json() for name, cfg in configs.items()}
    path = sweep_dir / manifest
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()) == wanted:
            return 0.0
    if sweep_dir.exists():
        shutil.rmtree(sweep_dir)
    sweep_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    jobs = [(cfg, str(sweep_dir), name) for name, cfg in configs.items()]
    with process_pool(workers) as pool:
        list(pool.map(_write_one, jobs, chunksize=chunksize))
    path.write_text(json.dumps(wanted, indent=1) + "\n")
    return time.perf_counter() - t0
