"""The run store at a lab's scale: ingest, re-ingest, and the app browsing a large store.

Input: `--runs` simulated runs (1 000 by default) × `--steps` steps (3 000) × 8 layers,
written in parallel to a folder under the system's temporary folder (`--data` moves it),
reused while its configuration is unchanged. Five settings × seeds, as `app_render.py`'s
sweep. Each measure is described in `benchmarks/README.md` ("store_scale.py").

python benchmarks/store_scale.py [--runs 1000] [--steps 3000] [--workers 2] [--json out.json]
python benchmarks/store_scale.py --only generate ingest inprocess pushdown app
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (  # also puts the project on the path
    ROOT,
    free_port,
    machine,
    verdict,
    write_sweep,
)

TARGET_STORE_OVERHEAD = 0.20  # ingest per core may cost at most 20% more than load_run
TARGET_REINGEST = 0.02  # re-ingest with nothing changed: < 2% of the first ingest
TARGET_COLD_START_S = 3.0
TARGET_COLD_RSS_MB = 600.0
TARGET_DRAW_S = 2.0
TARGET_DRAWN_RSS_MB = 1000.0
N_DRAWN = 20
MANIFEST = ".bench-store.json"
PAGE_TIMEOUT_MS = 300_000
CHART = '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
SCRIPT_DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


# --- the runs ---------------------------------------------------------------------------------


def ensure_runs(
    data: Path, n_runs: int, steps: int, layers: int, workers: int
) -> tuple[Path, float]:
    """The simulated sweep (written unless an identical one is there); folder and seconds."""
    from app_render import sweep_configs

    sweep_dir = data / f"runs{n_runs}-{steps}x{layers}"
    configs = sweep_configs(n_runs, steps, layers)
    return sweep_dir, write_sweep(sweep_dir, configs, MANIFEST, workers, chunksize=8)


def log_bytes(sweep_dir: Path) -> int:
    return sum(p.stat().st_size for p in sweep_dir.glob("*/log_*.txt"))


def _mb(n: float) -> float:
    return n / 1e6


# --- ingest ------------------------------------------------------------------------------------


def _load_loop_child(dirs: list[str]) -> None:
    """In a fresh interpreter: `load_run` over these runs, one after the other."""
    import ponder_parse

    t0 = time.perf_counter()
    for d in dirs:
        ponder_parse.load_run(d)
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def _ingest_child(store: str, paths: list[str], workers: int, sync: bool = False) -> None:
    """In a fresh interpreter: ingest these runs into `store` with `workers` processes
    (`sync`: every part flushed to disk, as `ponder-parse ingest --fsync`)."""
    from ponder_parse.files.store import open_store

    t0 = time.perf_counter()
    report = open_store(store, create=True).ingest(paths, workers=workers, sync=sync)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "counts": report.counts()}))


def _child(fn: str, *args: Any) -> dict[str, Any]:
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"import store_scale; store_scale.{fn}(*json.loads({json.dumps(list(args))!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ingest_measures(sweep_dir: Path, store: Path, workers: int, sample: int) -> dict[str, Any]:
    """Per-core throughput: `load_run` in a loop and a one-worker ingest over the same
    `sample` runs (fresh processes, one after the other); then the whole sweep ingested
    with `workers` processes, and ingested again with nothing changed."""
    dirs = sorted(str(p) for p in sweep_dir.iterdir() if p.is_dir())
    part = dirs[:sample]
    part_bytes = sum(p.stat().st_size for d in part for p in Path(d).glob("log_*.txt"))
    total_bytes = log_bytes(sweep_dir)
    loop = _child("_load_loop_child", part)
    one_store = store.with_name(store.name + "-one")
    shutil.rmtree(one_store, ignore_errors=True)
    one = _child("_ingest_child", str(one_store), part, 1)
    shutil.rmtree(one_store, ignore_errors=True)
    one_sync = _child("_ingest_child", str(one_store), part, 1, True)
    shutil.rmtree(one_store, ignore_errors=True)
    shutil.rmtree(store, ignore_errors=True)
    first = _child("_ingest_child", str(store), [str(sweep_dir)], workers)
    again = _child("_ingest_child", str(store), [str(sweep_dir)], workers)
    loop_rate = _mb(part_bytes) / loop["seconds"]
    one_rate = _mb(part_bytes) / one["seconds"]
    return {
        "sample_runs": len(part),
        "load_run_loop_mb_s": loop_rate,
        "ingest_1_worker_mb_s": one_rate,
        "store_overhead": loop_rate / one_rate - 1,
        "ingest_1_worker_fsync_mb_s": _mb(part_bytes) / one_sync["seconds"],
        "store_overhead_fsync": loop_rate * one_sync["seconds"] / _mb(part_bytes) - 1,
        "ingest_all_s": first["seconds"],
        "ingest_all_mb_s": _mb(total_bytes) / first["seconds"],
        "ingest_all_mb_s_per_core": _mb(total_bytes) / first["seconds"] / workers,
        "ingest_all_counts": first["counts"],
        "reingest_s": again["seconds"],
        "reingest_counts": again["counts"],
        "reingest_share": again["seconds"] / first["seconds"],
        "store_mb": _mb(sum(p.stat().st_size for p in store.rglob("*.parquet"))),
    }


# --- the app, in a browser ----------------------------------------------------------------------


def _status(pid: int, field: str) -> float:
    """`VmHWM` / `VmRSS` of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


@contextlib.contextmanager
def _server(
    app_args: list[str], env: dict[str, str], script: Path = ROOT / "app.py"
) -> Iterator[tuple[int, float, int]]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.headless=true",
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        "--browser.gatherUsageStats=false",
        "--",
        *app_args,
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, "PONDER_RUNS": "", **env}, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.perf_counter() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                    break
            except OSError:
                if time.perf_counter() > deadline:
                    raise TimeoutError("server did not start") from None
                time.sleep(0.02)
        yield port, t0, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _done(page: Any) -> None:
    page.wait_for_selector(SCRIPT_DONE, state="attached", timeout=PAGE_TIMEOUT_MS)
    if page.locator('[data-testid="stException"]').count():
        raise RuntimeError("the page shows an exception")


def app_store(browser: Any, store: Path) -> dict[str, Any]:
    """`--store`: cold start to the Runs page (its table of every run drawn), the server's
    peak RSS then; the step line of the 20 runs shown by default, and the RSS after."""
    env = {"PONDER_STORE": "off"}
    with _server(["--store", str(store)], env) as (port, t0, pid):
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        page = ctx.new_page()
        page.goto(f"http://127.0.0.1:{port}/", wait_until="commit", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=PAGE_TIMEOUT_MS)
        _done(page)
        cold = time.perf_counter() - t0
        cold_hwm = _status(pid, "VmHWM")
        t1 = time.perf_counter()
        page.get_by_role("link", name="Step line").click()
        page.wait_for_selector(CHART, state="attached", timeout=PAGE_TIMEOUT_MS)
        _done(page)
        draw = time.perf_counter() - t1
        t2 = time.perf_counter()
        page.reload(wait_until="commit")  # a second session on the warm server
        page.wait_for_selector(CHART, state="attached", timeout=PAGE_TIMEOUT_MS)
        _done(page)
        again = time.perf_counter() - t2
        out = {
            "cold_to_runs_page_s": cold,
            "cold_peak_rss_mb": cold_hwm,
            "step_line_20_s": draw,
            "step_line_20_again_s": again,
            "rss_20_drawn_mb": _status(pid, "VmRSS"),
            "peak_rss_20_drawn_mb": _status(pid, "VmHWM"),
        }
        ctx.close()
    return out


FLOOR_APP = '''"""The framework's floor: a bare Streamlit page with one small table."""
import polars as pl
import streamlit as st

st.dataframe(pl.DataFrame({"run": ["a", "b"], "final_lm": [2.5, 2.6]}))
'''


def floor(browser: Any, data: Path) -> dict[str, Any]:
    """A bare Streamlit app drawing one table: server start, imports, frontend load."""
    script = data / "floor_app.py"
    script.write_text(FLOOR_APP)
    with _server([], {}, script) as (port, t0, pid):
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        page = ctx.new_page()
        page.goto(f"http://127.0.0.1:{port}/", wait_until="commit", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=PAGE_TIMEOUT_MS)
        _done(page)
        out = {"seconds": time.perf_counter() - t0, "peak_rss_mb": _status(pid, "VmHWM")}
        ctx.close()
    return out


def step_line_cold(browser: Any, app_args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """A fresh server, `/step_line` opened at once: seconds to the chart drawn and the
    script done, and the server's peak RSS."""
    with _server(app_args, env) as (port, t0, pid):
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        page = ctx.new_page()
        page.goto(f"http://127.0.0.1:{port}/step_line", wait_until="commit")
        page.wait_for_selector(CHART, state="attached", timeout=PAGE_TIMEOUT_MS)
        _done(page)
        out = {"seconds": time.perf_counter() - t0, "peak_rss_mb": _status(pid, "VmHWM")}
        ctx.close()
    return out


def twenty(sweep_dir: Path, data: Path) -> Path:
    """A folder of links to the 20 runs the store shows first (the first 20 by name)."""
    dest = data / "first20"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir())[:N_DRAWN]:
        (dest / d.name).symlink_to(d)
    return dest


def _median(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Per key, the median over rounds (nested dicts key by key)."""
    out: dict[str, Any] = {}
    for key, first in samples[0].items():
        values = [s[key] for s in samples]
        out[key] = _median(values) if isinstance(first, dict) else statistics.median(values)
    return out


def app_measures(store: Path, sweep_dir: Path, data: Path, rounds: int) -> dict[str, Any]:
    """Each measure once per round, alternating, so a change in the machine's load hits
    all of them; the medians over rounds."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return {"error": "Debian's chromium is needed: apt-get install chromium"}
    from playwright.sync_api import sync_playwright

    links = twenty(sweep_dir, data)
    cache = data / "cache-store"
    off = {"PONDER_STORE": "off"}
    samples: list[dict[str, Any]] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            for _ in range(rounds):
                shutil.rmtree(cache, ignore_errors=True)
                one: dict[str, Any] = {"floor": floor(browser, data)}
                one["store"] = app_store(browser, store)
                one["step_line_from_store"] = step_line_cold(browser, ["--store", str(store)], off)
                one["step_line_from_logs"] = step_line_cold(browser, ["--runs", str(links)], off)
                cached = {"PONDER_STORE": str(cache)}
                one["step_line_logs_first_open"] = step_line_cold(
                    browser, ["--runs", str(links)], cached
                )
                one["step_line_logs_reopened"] = step_line_cold(
                    browser, ["--runs", str(links)], cached
                )
                samples.append(one)
        finally:
            browser.close()
    return {**_median(samples), "rounds": rounds}


def _inprocess_child(store: str) -> None:
    """In a fresh interpreter: the app's script through AppTest (no server, no browser):
    the Runs page's first run and a rerun, then the Step line of the 20 shown; peak RSS."""
    import sys as _sys

    _sys.argv = ["app.py", "--store", store]
    os.environ["PONDER_STORE"] = "off"
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    t0 = time.perf_counter()
    at.run()
    home = time.perf_counter() - t0
    hwm_home = _status(os.getpid(), "VmHWM")
    t0 = time.perf_counter()
    at.run()
    rerun = time.perf_counter() - t0
    t0 = time.perf_counter()
    at.switch_page("pages/step_line.py").run()
    step = time.perf_counter() - t0
    errors = [str(e.value) for e in at.exception]
    print(
        json.dumps(
            {
                "home_first_s": home,
                "home_rerun_s": rerun,
                "step_line_s": step,
                "peak_rss_home_mb": hwm_home,
                "peak_rss_mb": _status(os.getpid(), "VmHWM"),
                "errors": errors,
            }
        )
    )


def _frames_child(store: str, columns: list[str] | None) -> None:
    """In a fresh interpreter: `per_step` of the first 20 stored runs (the 20 a large
    store shows first), whole or of these columns only; seconds, what was read (tables or
    column sets, and their in-memory size) and peak RSS."""
    from ponder_app import prepare
    from ponder_parse.files.store import open_store, reader

    runs = open_store(store).stored_runs()[:N_DRAWN]
    rss0 = _status(os.getpid(), "VmRSS")
    t0 = time.perf_counter()
    frames = [prepare.per_step(r, columns) for r in runs]
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "runs": len(runs),
                "seconds": seconds,
                "reads": reader.TABLE_CACHE.reads,
                "read_mb": _mb(reader.TABLE_CACHE.read_bytes),
                "frames_mb": _mb(sum(f.estimated_size() for f in frames)),
                "rss_before_mb": rss0,
                "peak_rss_mb": _status(os.getpid(), "VmHWM"),
            }
        )
    )


# The column sets `pushdown` compares: what each consumer of `per_step` asks for.
PUSHDOWN_SETS: dict[str, list[str] | None] = {
    "whole tables": None,
    "step line defaults (lm_loss, avg_k, lambda_p)": ["lm_loss", "avg_k", "lambda_p"],
    "economics (lambda_p, avg_k, ctrl_err)": ["lambda_p", "avg_k", "ctrl_err"],
    "sweep compute spent (axes only)": ["avg_k"],
}


def pushdown_measures(store: Path, rounds: int) -> dict[str, Any]:
    """`_frames_child` for each of `PUSHDOWN_SETS`, medians of `rounds` fresh processes."""
    return {
        name: _median([_child("_frames_child", str(store), cols) for _ in range(rounds)])
        for name, cols in PUSHDOWN_SETS.items()
    }


# --- report ------------------------------------------------------------------------------------


def report(res: dict[str, Any]) -> None:
    ing = res.get("ingest")
    if ing:
        print(
            f"load_run loop, 1 core: {ing['load_run_loop_mb_s']:.1f} MB/s; ingest, 1 worker: "
            f"{ing['ingest_1_worker_mb_s']:.1f} MB/s over {ing['sample_runs']} runs -> the store "
            f"adds {ing['store_overhead']:.0%} "
            f"[{verdict(ing['store_overhead'] < TARGET_STORE_OVERHEAD)} < 20%]"
        )
        if "ingest_1_worker_fsync_mb_s" in ing:
            print(
                f"  with --fsync (every part flushed): {ing['ingest_1_worker_fsync_mb_s']:.1f} "
                f"MB/s -> adds {ing['store_overhead_fsync']:.0%}"
            )
        print(
            f"ingest of all runs: {ing['ingest_all_s']:.1f} s, {ing['ingest_all_mb_s']:.1f} MB/s "
            f"({ing['ingest_all_mb_s_per_core']:.1f} MB/s per core) {ing['ingest_all_counts']}; "
            f"store {ing['store_mb']:.0f} MB"
        )
        print(
            f"re-ingest, nothing changed: {ing['reingest_s']:.2f} s = {ing['reingest_share']:.1%} "
            f"of the first {ing['reingest_counts']} "
            f"[{verdict(ing['reingest_share'] < TARGET_REINGEST)} < 2%]"
        )
    inp = res.get("inprocess")
    if inp:
        print(
            f"in process (AppTest): Runs page first run {inp['home_first_s']:.2f} s (peak RSS "
            f"{inp['peak_rss_home_mb']:.0f} MB), rerun {inp['home_rerun_s']:.2f} s; Step line of "
            f"the 20 shown {inp['step_line_s']:.2f} s (peak RSS {inp['peak_rss_mb']:.0f} MB) "
            f"{inp['errors'] or ''}"
        )
    for name, m in (res.get("pushdown") or {}).items():
        print(
            f"per_step of {m['runs']} stored runs, {name}: {m['seconds']:.2f} s, {m['reads']} "
            f"reads = {m['read_mb']:.1f} MB, frames {m['frames_mb']:.1f} MB, RSS "
            f"{m['rss_before_mb']:.0f} MB before, peak {m['peak_rss_mb']:.0f} MB"
        )
    app = res.get("app")
    if app and "error" in app:
        print(f"app: {app['error']}")
    elif app:
        s = app["store"]
        print(
            f"medians of {app['rounds']} round(s); a bare Streamlit page with one table, "
            f"cold: {app['floor']['seconds']:.2f} s (peak {app['floor']['peak_rss_mb']:.0f} MB)"
        )
        print(
            f"app cold start to the Runs page: {s['cold_to_runs_page_s']:.2f} s "
            f"[{verdict(s['cold_to_runs_page_s'] < TARGET_COLD_START_S)} < 3 s], peak RSS "
            f"{s['cold_peak_rss_mb']:.0f} MB [{verdict(s['cold_peak_rss_mb'] < TARGET_COLD_RSS_MB)} < 600 MB]"
        )
        print(
            f"Step line of the 20 shown: {s['step_line_20_s']:.2f} s "
            f"[{verdict(s['step_line_20_s'] < TARGET_DRAW_S)} < 2 s] (a second session: "
            f"{s['step_line_20_again_s']:.2f} s); server RSS {s['rss_20_drawn_mb']:.0f} MB, peak "
            f"{s['peak_rss_20_drawn_mb']:.0f} MB [{verdict(s['peak_rss_20_drawn_mb'] < TARGET_DRAWN_RSS_MB)} < 1 GB]"
        )
        st_, lg = app["step_line_from_store"], app["step_line_from_logs"]
        print(
            f"/step_line, 20 runs, fresh server: from the store {st_['seconds']:.2f} s "
            f"(peak {st_['peak_rss_mb']:.0f} MB), from the raw logs {lg['seconds']:.2f} s (peak "
            f"{lg['peak_rss_mb']:.0f} MB) [{verdict(st_['seconds'] < lg['seconds'])} store faster]; "
            f"logs through the cache store: first open {app['step_line_logs_first_open']['seconds']:.2f} s, "
            f"reopened {app['step_line_logs_reopened']['seconds']:.2f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--sample", type=int, default=50, help="runs timed per core (50)")
    parser.add_argument("--rounds", type=int, default=3, help="app rounds, medians (3)")
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "ponder-bench-store"
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=[],
        help="generate, ingest, inprocess, pushdown, app (default: all)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    want = set(args.only) or {"generate", "ingest", "inprocess", "pushdown", "app"}
    res: dict[str, Any] = {"machine": machine(), "args": {"runs": args.runs, "steps": args.steps}}
    print(json.dumps(res["machine"]))
    sweep_dir, gen_s = ensure_runs(args.data, args.runs, args.steps, args.layers, args.workers)
    print(
        f"runs: {args.runs} × {args.steps} steps × {args.layers} layers, "
        f"{log_bytes(sweep_dir) / 1e6:.0f} MB of logs (written in {gen_s:.1f} s)"
    )
    store = args.data / f"store{args.runs}-{args.steps}x{args.layers}"
    if "ingest" in want:
        res["ingest"] = ingest_measures(sweep_dir, store, args.workers, args.sample)
    if "inprocess" in want:
        res["inprocess"] = _child("_inprocess_child", str(store))
    if "pushdown" in want:
        res["pushdown"] = pushdown_measures(store, args.rounds)
    if "app" in want:
        res["app"] = app_measures(store, sweep_dir, args.data, args.rounds)
    res["machine_after"] = machine()
    report(res)
    print(json.dumps(res["machine_after"]))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
