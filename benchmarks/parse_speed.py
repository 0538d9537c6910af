"""Parser speed and memory: `ponder_parse.load_run` against a plain line-by-line parser.

Why this exists: the vectorized Polars parser is only worth its complexity if it is much
faster than the obvious Python loop, and a sweep of long runs must fit in memory. The
targets are checked here rather than in unit tests, because timings on
shared CI machines are too noisy to fail a build on:

- `load_run` at least 10x the line-by-line parser on the same file, in the same process;
- `load_run` at least 150 MB/s (MB = 10^6 bytes of log) on a 2-core machine;
- peak RSS of loading one run, beyond a fresh interpreter with the imports done, below 5x
  the log's size.

The baseline below is deliberately the straightforward implementation: one loop over the
lines, `re.match` with the parser's own patterns per line kind, `float()` per field, lists
of dicts, then `pl.DataFrame(rows)` per table. It must find the same rows as `load_run`
(checked), so the comparison is like for like.

    python benchmarks/parse_speed.py [--steps N] [--layers N] [--repeat N] [--json out.json]

Always exits 0 when the measurements ran: a MISS is a finding to report, not a crash.
"""

from __future__ import annotations

import argparse
import gc
import json
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
from _common import DATA_DIR, machine, verdict  # also puts the project on the path

import ponder_parse
from ponder_parse.format import grammar as fmt
from ponder_parse.sim.simulate import SimConfig, write_run

TABLES = ("steps", "layers", "traces", "quality", "lr_checks")

TARGET_SPEEDUP = 10.0
TARGET_MBPS = 150.0
TARGET_RSS_MULTIPLE = 5.0
HELD_RUNS = 4  # further loads kept to measure the heap each loaded run holds


# --- input --------------------------------------------------------------------------------


def bench_config(steps: int, layers: int) -> SimConfig:
    """The run every measurement uses: trainer defaults, LR schedule over the whole run."""
    return SimConfig(steps=steps, n_layers=layers, lr_total_steps=steps)


def ensure_run(config: SimConfig) -> Path:
    """Write the simulated run once under `benchmarks/_data/` (git-ignored); reuse it while
    its `config.json` still matches, since simulating costs more than parsing."""
    run_dir = DATA_DIR / f"parse_{config.steps}x{config.n_layers}"
    cfg_file = run_dir / "config.json"
    if cfg_file.exists():
        try:
            if SimConfig.from_json(json.loads(cfg_file.read_text())) == config:
                return run_dir
        except (ValueError, TypeError):
            pass
    return write_run(config, DATA_DIR, run_dir.name)


def log_path(run_dir: Path) -> Path:
    logs = sorted(run_dir.glob("log_*.txt"))
    if not logs:
        raise FileNotFoundError(f"no log_*.txt in {run_dir}")
    return logs[0]


# --- the baseline: a plain line-by-line parser -------------------------------------------

STEP_RE = re.compile(fmt.STEP)
LAYER_RE = re.compile(fmt.LAYER)
TRACE_RE = re.compile(fmt.TRACE)
QUALITY_RE = re.compile(fmt.QUALITY)
LR_CHECK_RE = re.compile(fmt.LR_CHECK)
GEN_HEADER_RE = re.compile(fmt.GEN_HEADER)
GEN_CLOSE_RE = re.compile(fmt.GEN_CLOSE)


def _value(f: fmt.Field, text: str | None) -> Any:
    """A captured value as the tables hold it (percent fields as fractions)."""
    if text is None:
        return None
    if f.integer:
        return int(text)
    if f.text:
        return text
    return float(text) * 0.01 if f.percent else float(text)


def _row(line: fmt.LineFormat, m: re.Match[str]) -> dict[str, Any]:
    """A matched line's fields and flags by the grammar, as plain Python values."""
    row = {f.name: _value(f, m[f.name]) for f in line.fields}
    row |= {flag.name: m[flag.name] is not None for flag in line.flags}
    return row


def line_by_line(path: Path) -> dict[str, pl.DataFrame]:
    """Parse the five data tables the obvious way. Lines that follow a step line belong to
    that step; generation blocks (model output, which can contain text shaped like log
    lines) are skipped; resumed runs are not deduplicated (the benchmark run has none)."""
    steps: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []
    traces: list[dict[str, Any]] = []
    quality: list[dict[str, Any]] = []
    lr_checks: list[dict[str, Any]] = []
    step: int | None = None
    in_generation = False
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        for raw in f:
            line = raw.rstrip("\r\n")
            if line.startswith("="):
                if GEN_HEADER_RE.match(line):
                    in_generation = True
                elif GEN_CLOSE_RE.match(line):
                    in_generation = False
            elif in_generation:
                continue
            elif m := STEP_RE.match(line):
                row = _row(fmt.STEP_LINE, m)
                row["audit"] = row["audit"] or m["audit_pre"] is not None
                step = row["step"]
                steps.append(row)
            elif m := LAYER_RE.match(line):
                layers.append({"step": step} | _row(fmt.LAYER_LINE, m))
            elif m := TRACE_RE.match(line):
                values = m["s_trace"].strip()
                traces.append(
                    {
                        "step": step,
                        "layer": int(m["layer"]),
                        "s_trace": [float(v) for v in values.split(",")] if values else [],
                    }
                )
            elif m := QUALITY_RE.match(line):
                quality.append({"step": step} | _row(fmt.QUALITY_LINE, m))
            elif m := LR_CHECK_RE.match(line):
                lr_checks.append(_row(fmt.LR_CHECK_LINE, m))
    rows = {
        "steps": steps,
        "layers": layers,
        "traces": traces,
        "quality": quality,
        "lr_checks": lr_checks,
    }
    return {name: pl.DataFrame(r) for name, r in rows.items()}


# --- timing -------------------------------------------------------------------------------


def time_calls(fn: Callable[[], Any], repeat: int) -> dict[str, float]:
    """One untimed warm-up call (imports, regex compilation, thread pools), then `repeat`
    timed calls; best and median in seconds."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"best_s": min(times), "median_s": statistics.median(times)}


def stage_times(run_dir: Path, repeat: int) -> dict[str, float] | str:
    """Best time of each stage of `load_run`. Uses the parser's internal functions, so it
    reports why instead of failing when those change."""
    try:
        from ponder_parse.files import loader
        from ponder_parse.parse import scan as logparse

        log = loader.find_log(run_dir)
        assert log is not None
        data = log.read_bytes()
        lines, _, _ = logparse.read_lines(data)
        framed = logparse._lines_frame(lines, 1)
        chunk = logparse.scan_lines(lines)[0]
        tables, facts = logparse.parse_bytes(data)
        stages: dict[str, Callable[[], Any]] = {
            "read file": log.read_bytes,
            "split lines (read_lines)": lambda: logparse.read_lines(data),
            "line frame (_lines_frame)": lambda: logparse._lines_frame(lines, 1),
            "classify (_classify)": lambda: logparse._classify(framed),
            "scan_lines (classify + fields)": lambda: logparse.scan_lines(lines),
            "finalize": lambda: logparse.finalize([chunk]),
            "build_run (stats, meta)": lambda: loader.build_run(
                tables, facts, name=run_dir.name, source=log, stats_path=run_dir / "stats.json"
            ),
            "load_run (all)": lambda: ponder_parse.load_run(run_dir),
        }
        return {name: time_calls(fn, repeat)["best_s"] for name, fn in stages.items()}
    except Exception as exc:  # noqa: BLE001 - optional report, internals may move
        return f"stage timing unavailable: {exc!r}"


# --- memory, in a fresh process --------------------------------------------------------------


def _memory_kib() -> dict[str, int]:
    """Current and peak resident set size of this process, in KiB.

    Linux's `VmHWM` is used rather than `getrusage(...).ru_maxrss`: the latter survives
    fork and exec, so a child started by a parent that already holds 200 MiB reports at
    least 200 MiB before doing anything. Elsewhere, fall back to `ru_maxrss` (then only
    a child started from a small parent gives a meaningful number).
    """
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    if "VmHWM" not in out:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = {"VmHWM": peak, "VmRSS": out.get("VmRSS", peak)}
    return out


def _reset_peak() -> bool:
    """Reset the peak-RSS mark to the current RSS (Linux >= 4.0), so the peak that follows
    belongs to the measured call and not to the imports before it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_child(run_dir: str, warm_dir: str | None) -> None:
    """Runs in a fresh interpreter (polars and ponder_parse already imported by this
    module): RSS just before one `load_run` and its peak during it, as JSON on stdout.

    With `warm_dir`, a small run is loaded first, so the one-time costs (Polars' thread
    pool, regex caches, allocator arenas) are paid before the measurement; the difference
    between the two modes tells fixed cost from cost that grows with the file.
    """
    if warm_dir:
        ponder_parse.load_run(warm_dir)
    gc.collect()
    reset = _reset_peak()
    before = _memory_kib()
    # The kernel keeps no peak of the anonymous (heap) part alone: sample it while Polars
    # works (it releases the GIL), to tell heap from file-backed pages such as the parts
    # of Polars' own machine code a first load pages in.
    anon_peak = [before.get("RssAnon", 0)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            anon_peak[0] = max(anon_peak[0], _memory_kib().get("RssAnon", 0))
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    run = ponder_parse.load_run(run_dir)
    elapsed = time.perf_counter() - t0
    done.set()
    sampler.join()
    after = _memory_kib()
    anon_peak[0] = max(anon_peak[0], after.get("RssAnon", 0))
    tables = sum(
        getattr(run, name).estimated_size()
        for name in (*TABLES, "events", "generations", "problems")
    )
    # What a sweep pays per run: the heap that stays with each further loaded run.
    gc.collect()
    held_before = _memory_kib().get("RssAnon", 0)
    kept = [ponder_parse.load_run(run_dir) for _ in range(HELD_RUNS)]
    gc.collect()
    held_per_run = (_memory_kib().get("RssAnon", 0) - held_before) / len(kept)
    # Without a reset the old peak (imports) may exceed the load's: an upper bound only.
    base = before["VmRSS"] if reset else max(before["VmRSS"], before["VmHWM"])
    print(
        json.dumps(
            {
                "rss_before_kib": before["VmRSS"],
                "added_peak_kib": max(0, after["VmHWM"] - base),
                "added_retained_kib": after["VmRSS"] - before["VmRSS"],
                "added_anon_peak_kib": anon_peak[0] - before.get("RssAnon", 0),
                "added_file_kib": after.get("RssFile", 0) - before.get("RssFile", 0),
                "held_per_run_kib": held_per_run,
                "peak_reset": reset,
                "tables_bytes": tables,
                "load_s": elapsed,
            }
        )
    )


def measure_rss(run_dir: Path, warm_dir: Path | None = None, trials: int = 3) -> dict[str, Any]:
    """Peak RSS added by one `load_run` in a fresh process; the median of `trials`."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--rss-child", str(run_dir)]
    if warm_dir is not None:
        cmd += ["--rss-warm", str(warm_dir)]
    results = []
    for _ in range(trials):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    results.sort(key=lambda r: r["added_peak_kib"])
    mid = results[len(results) // 2]
    return {
        "rss_before_mib": mid["rss_before_kib"] / 1024,
        "added_peak_mib": mid["added_peak_kib"] / 1024,
        "added_peak_all_mib": [r["added_peak_kib"] / 1024 for r in results],
        "added_retained_mib": mid["added_retained_kib"] / 1024,
        "added_anon_peak_mib": mid["added_anon_peak_kib"] / 1024,
        "added_file_mib": mid["added_file_kib"] / 1024,
        "held_per_run_mib": mid["held_per_run_kib"] / 1024,
        "peak_reset": mid["peak_reset"],
        "tables_mib": mid["tables_bytes"] / 2**20,
    }


# --- report -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000, help="simulated steps (default 10000)")
    parser.add_argument("--layers", type=int, default=8, help="layers per step (default 8)")
    parser.add_argument(
        "--repeat", type=int, default=5, help="timed calls after the warm-up (default 5)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    parser.add_argument("--rss-warm", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        _rss_child(args.rss_child, args.rss_warm)
        return 0

    before = machine()
    print(f"machine: {before['cpus']} cores, load average {before['load_avg_1_5_15']} (1/5/15 min)")
    config = bench_config(args.steps, args.layers)
    t0 = time.perf_counter()
    run_dir = ensure_run(config)
    prep_s = time.perf_counter() - t0
    log = log_path(run_dir)
    size = log.stat().st_size
    mb = size / 1e6
    print(
        f"log: {args.steps} steps x {args.layers} layers, {mb:.2f} MB ({prep_s:.1f} s to prepare)"
    )

    # Same rows from both parsers, or the comparison means nothing.
    run = ponder_parse.load_run(run_dir)
    base = line_by_line(log)
    counts = {name: (getattr(run, name).height, base[name].height) for name in TABLES}
    for name, (ours, theirs) in counts.items():
        assert ours == theirs, f"{name}: load_run has {ours} rows, the line-by-line parser {theirs}"
    if run.problems.height:
        print(f"note: load_run reported {run.problems.height} problem line(s)")

    fast = time_calls(lambda: ponder_parse.load_run(run_dir), args.repeat)
    slow = time_calls(lambda: line_by_line(log), args.repeat)
    speedup_best = slow["best_s"] / fast["best_s"]
    speedup_median = slow["median_s"] / fast["median_s"]
    mbps = {k: mb / v for k, v in fast.items()}
    base_mbps = {k: mb / v for k, v in slow.items()}
    rss = measure_rss(run_dir)
    rss_multiple = rss["added_peak_mib"] * 2**20 / size
    # Diagnostic: the same after a small run was loaded first (one-time costs paid).
    warm_dir = ensure_run(bench_config(max(1, args.steps // 10), args.layers))
    rss_warm = measure_rss(run_dir, warm_dir)
    rss_warm_multiple = rss_warm["added_peak_mib"] * 2**20 / size
    stages = stage_times(run_dir, args.repeat)

    print()
    print(
        "rows: " + ", ".join(f"{n}={c[0]}" for n, c in counts.items()) + "  (equal in both parsers)"
    )
    print()
    print(f"{'parser':28s} {'best':>9s} {'median':>9s} {'MB/s best':>10s} {'MB/s med':>9s}")
    print(
        f"{'ponder_parse.load_run':28s} {fast['best_s'] * 1e3:7.1f}ms {fast['median_s'] * 1e3:7.1f}ms"
        f" {mbps['best_s']:10.1f} {mbps['median_s']:9.1f}"
    )
    print(
        f"{'line-by-line re + dicts':28s} {slow['best_s'] * 1e3:7.1f}ms {slow['median_s'] * 1e3:7.1f}ms"
        f" {base_mbps['best_s']:10.1f} {base_mbps['median_s']:9.1f}"
    )
    print()
    print(f"{'target':44s} {'measured':>12s}  verdict")
    print(
        f"{'speed-up over line-by-line >= 10x (median)':44s} {speedup_median:11.1f}x  "
        f"{verdict(speedup_median >= TARGET_SPEEDUP)}   (best/best {speedup_best:.1f}x)"
    )
    print(
        f"{'throughput >= 150 MB/s (median)':44s} {mbps['median_s']:11.1f}   "
        f"{verdict(mbps['median_s'] >= TARGET_MBPS)}   (best {mbps['best_s']:.1f} MB/s)"
    )
    print(
        f"{'peak RSS added by one load < 5x file size':44s} {rss_multiple:11.2f}x  "
        f"{verdict(rss_multiple < TARGET_RSS_MULTIPLE)}   "
        f"(+{rss['added_peak_mib']:.1f} MiB over {rss['rss_before_mib']:.1f} MiB after imports)"
    )
    print(
        f"{'  of which heap (anonymous memory), sampled':44s} "
        f"{rss['added_anon_peak_mib'] * 2**20 / size:11.2f}x  "
        f"(+{rss['added_anon_peak_mib']:.1f} MiB; the rest is file-backed pages, "
        f"+{rss['added_file_mib']:.1f} MiB: Polars' machine code run for the first time, the log)"
    )
    print(
        f"{'  same, after a small warm-up load':44s} {rss_warm_multiple:11.2f}x  "
        f"(diagnostic: +{rss_warm['added_peak_mib']:.1f} MiB; one-time costs already paid)"
    )
    print(
        f"{'  heap after a small warm-up load, sampled':44s} "
        f"{rss_warm['added_anon_peak_mib'] * 2**20 / size:11.2f}x  "
        f"(+{rss_warm['added_anon_peak_mib']:.1f} MiB)"
    )
    print(
        f"{'  the loaded tables themselves':44s} {rss['tables_mib'] * 2**20 / size:11.2f}x  "
        f"({rss['tables_mib']:.1f} MiB; RSS still added after the load: "
        f"+{rss['added_retained_mib']:.1f} MiB)"
    )
    print(
        f"{'  heap kept per loaded run (' + str(HELD_RUNS) + ' more loads)':44s} "
        f"{rss['held_per_run_mib'] * 2**20 / size:11.2f}x  "
        f"(+{rss['held_per_run_mib']:.1f} MiB per run: what a sweep holds per run)"
    )
    if not rss["peak_reset"]:
        print("  note: could not reset the peak-RSS mark; the RSS figures are upper bounds")
    if isinstance(stages, dict):
        print()
        print(f"{'load_run stage (best of ' + str(args.repeat) + ')':34s} {'time':>9s}")
        for name, secs in stages.items():
            print(f"{name:34s} {secs * 1e3:7.1f}ms")
    else:
        print(stages)

    result = {
        "machine_before": before,
        "machine_after": machine(),
        "steps": args.steps,
        "layers": args.layers,
        "repeat": args.repeat,
        "log_bytes": size,
        "rows": {n: c[0] for n, c in counts.items()},
        "load_run": {**fast, "mb_per_s_best": mbps["best_s"], "mb_per_s_median": mbps["median_s"]},
        "line_by_line": {
            **slow,
            "mb_per_s_best": base_mbps["best_s"],
            "mb_per_s_median": base_mbps["median_s"],
        },
        "speedup_median": speedup_median,
        "speedup_best": speedup_best,
        "rss": {**rss, "multiple_of_file": rss_multiple},
        "rss_after_warmup": {**rss_warm, "multiple_of_file": rss_warm_multiple},
        "stages_best_s": stages,
        "targets": {
            "speedup_10x": speedup_median >= TARGET_SPEEDUP,
            "mb_per_s_150": mbps["median_s"] >= TARGET_MBPS,
            "rss_below_5x": rss_multiple < TARGET_RSS_MULTIPLE,
        },
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
