"""Launch to first chart, in a real browser: our app against the bare-Streamlit floor and
against TensorBoard on the same run.

Why this exists: a researcher's first impression is how long `streamlit run app.py --
--runs DIR` takes to show a chart. The targets, measured side by side in
one run on a 2-core machine:

- our app's `/step_line` on one 10 000-step, 8-layer run at least as fast as TensorBoard
  showing the same values from event files;
- within 1.2x of a bare Streamlit app drawing one tiny Altair chart (the framework's floor:
  its own import, server start and frontend load);
- a second browser session's first chart (a new browser context opened on the running
  server, so nothing is cached in the browser) within 1.2x of that floor.

Each measurement starts a fresh server process on a free port (`--server.headless=true
--server.address=127.0.0.1`), opens the page in a new context of one headless Chromium
(Debian's, launched once) as soon as the server answers its health check, and times from
the server's start to the first drawn chart (a Vega-Lite chart's canvas or SVG; for
TensorBoard, the first scalar card's line chart) and, for Streamlit, to the script
finishing (`data-test-script-state="notRunning"` after the chart). Targets are measured
alternately, round after round, so a change in the machine's load hits all of them; the
report gives each one's median and the ratios of those medians.

    python benchmarks/first_chart.py [--rounds 3] [--only floor app_1 ...] [--json out.json]

TensorBoard is an optional extra (`pip install -e '.[bench]'`); without it the other
targets are measured and the report says TensorBoard was skipped. Always exits 0 when the
measurements ran: a MISS is a finding to report, not a crash of the benchmark.
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
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (  # also puts the project on the path
    DATA_DIR,
    ROOT,
    free_port,
    machine,
    script_file,
    verdict,
)

TARGET_VS_FLOOR = 1.2
SERVER_TIMEOUT_S = 120.0
PAGE_TIMEOUT_MS = 180_000

STREAMLIT_CHART = '[data-testid="stVegaLiteChart"] :is(canvas, svg)'
SCRIPT_DONE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
# TensorBoard's time-series dashboard puts a scalar card's axes (SVG) on the page first and
# adds the canvas its lines are drawn into once the card's data has arrived.
TENSORBOARD_CHART = "scalar-card line-chart canvas"

FLOOR_APP = '''"""The framework's floor: one tiny Altair chart, nothing else."""

import altair as alt
import pandas as pd
import streamlit as st

df = pd.DataFrame({"step": list(range(10)), "loss": [1 / (1 + i) for i in range(10)]})
st.altair_chart(alt.Chart(df).mark_line().encode(x="step", y="loss"))
'''


# --- inputs -----------------------------------------------------------------------------------


def one_run() -> Path:
    """The single 10 000-step, 8-layer run (the parser benchmark's, shared with it)."""
    from parse_speed import bench_config, ensure_run

    return ensure_run(bench_config(10_000, 8))


def sweep20() -> Path:
    from app_render import ensure_sweep

    return ensure_sweep(20, 10_000, 8)[0]


def floor_script() -> Path:
    return script_file("floor_app.py", FLOOR_APP)


def tensorboard_available() -> str | None:
    """None when TensorBoard can be used here, else why not."""
    try:
        import tensorboard  # noqa: F401
        from tensorboard.summary import Writer  # noqa: F401
    except ImportError as exc:
        return f"tensorboard is not installed ({exc}); pip install -e '.[bench]'"
    return None


def event_files(run_dir: Path) -> Path:
    """The run's per-step values (what the step line draws: the step line and recurrence
    quality, with the elapsed time as wall time) as TensorBoard event files, written once
    with TensorBoard's own summary writer."""
    import polars as pl
    from tensorboard.summary import DirectoryOutput, Writer

    import ponder_parse
    from ponder_app import prepare

    out = DATA_DIR / f"tb_{run_dir.name}"
    stamp = out / ".source.json"
    source = {"run": str(run_dir), "log_mtime_ns": _newest_mtime(run_dir), "version": 1}
    if stamp.exists() and json.loads(stamp.read_text()) == source:
        return out
    if out.exists():
        shutil.rmtree(out)
    frame = prepare.per_step(ponder_parse.load_run(run_dir))
    numeric = [
        c
        for c, d in frame.schema.items()
        if d.is_numeric() and c not in ("step", "segment", "elapsed_min", "tokens")
    ]
    start = 1.7e9
    logdir = out / run_dir.name
    logdir.mkdir(parents=True)
    writer = Writer(DirectoryOutput(str(logdir)))
    rows = frame.select("step", "elapsed_min", *numeric).with_columns(
        pl.col(numeric).cast(pl.Float64)
    )
    for row in rows.iter_rows(named=True):
        wall = start + (row["elapsed_min"] or 0.0) * 60.0
        for c in numeric:
            v = row[c]
            if v is not None:
                writer.add_scalar(c, v, row["step"], wall_time=wall)
    writer.close()
    stamp.write_text(json.dumps(source))
    return out


def _newest_mtime(run_dir: Path) -> int:
    return max(p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file())


# --- servers ----------------------------------------------------------------------------------


@dataclass
class Server:
    """How to start one kind of server and what its page is."""

    name: str
    argv: Callable[[int], list[str]]  # port → command line
    health: str  # path answered once the server is up
    page: str  # path the browser opens
    chart: str = STREAMLIT_CHART
    streamlit: bool = True
    second_session: bool = False  # also time a second browser session on the same server


def streamlit_server(
    name: str,
    script: Path | None,
    page: str,
    runs: list[Path] | None = None,
    *,
    second: bool = False,
) -> Server:
    """`streamlit run SCRIPT`, or with no script the app's launcher `python -m ponder_app`
    (the same server, with the first page's imports and parsing started at once)."""

    def argv(port: int) -> list[str]:
        start = ["-m", "ponder_app"] if script is None else ["-m", "streamlit", "run", str(script)]
        cmd = [
            sys.executable,
            *start,
            "--server.headless=true",
            "--server.address=127.0.0.1",
            f"--server.port={port}",
            "--browser.gatherUsageStats=false",
        ]
        if runs is not None:
            cmd += ["--", "--runs", *map(str, runs)]
        return cmd

    return Server(name, argv, "/_stcore/health", page, second_session=second)


def tensorboard_server(logdir: Path) -> Server:
    def argv(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]

    return Server(
        "tensorboard",
        argv,
        "/data/environment",
        "/?darkMode=false#timeseries",
        chart=TENSORBOARD_CHART,
        streamlit=False,
    )


@contextlib.contextmanager
def started(server: Server) -> Iterator[tuple[int, float, subprocess.Popen[bytes]]]:
    """The server running on a free port: (port, start time, process); stopped after."""
    port = free_port()
    env = {**os.environ, "PONDER_RUNS": ""}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        server.argv(port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield port, t0, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(port: int, path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.perf_counter() + SERVER_TIMEOUT_S
    url = f"http://127.0.0.1:{port}{path}"
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer within {SERVER_TIMEOUT_S:.0f} s")


@dataclass
class Sample:
    health_s: float
    chart_s: float
    done_s: float | None  # script finished (Streamlit only)
    second_chart_s: float | None = None  # from opening the second page
    second_done_s: float | None = None


def page_times(browser: Any, url: str, server: Server, t0: float) -> tuple[float, float | None]:
    """Open the page in a fresh browser context; seconds from t0 to the first chart and to
    the script finishing."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_selector(server.chart, state="attached", timeout=PAGE_TIMEOUT_MS)
        chart = time.perf_counter() - t0
        done = None
        if server.streamlit:
            page.wait_for_selector(SCRIPT_DONE, state="attached", timeout=PAGE_TIMEOUT_MS)
            done = time.perf_counter() - t0
            errors = page.locator('[data-testid="stException"]').count()
            if errors:
                raise RuntimeError(f"{server.name}: the page shows {errors} exception(s)")
        return chart, done
    finally:
        context.close()


def measure(browser: Any, server: Server) -> Sample:
    with started(server) as (port, t0, proc):
        wait_healthy(port, server.health, proc)
        health = time.perf_counter() - t0
        url = f"http://127.0.0.1:{port}{server.page}"
        chart, done = page_times(browser, url, server, t0)
        sample = Sample(health, chart, done)
        if server.second_session:
            t1 = time.perf_counter()
            sample.second_chart_s, sample.second_done_s = page_times(browser, url, server, t1)
        return sample


# --- report -----------------------------------------------------------------------------------


@dataclass
class Result:
    server: Server
    samples: list[Sample] = field(default_factory=list)
    error: str = ""

    def median(self, attr: str) -> float:
        values = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return statistics.median(values) if values else float("nan")

    def spread(self, attr: str) -> str:
        values = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return f"{min(values):.2f}–{max(values):.2f}" if values else ""


def uptime() -> str:
    try:
        return subprocess.run(
            ["uptime"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, median reported (3)")
    parser.add_argument("--only", nargs="*", default=[], help="measure only these targets")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    chromium = shutil.which("chromium")
    if chromium is None:
        print("Debian's chromium is needed: apt-get install chromium")
        return 1
    before = machine()
    print(f"machine: {before['cpus']} cores, load average {before['load_avg_1_5_15']} (1/5/15 min)")
    print(f"uptime: {uptime()}")

    app = ROOT / "app.py"
    run = one_run()
    servers = [
        streamlit_server("floor", floor_script(), "/", second=True),
        streamlit_server("app_1", app, "/step_line", [run], second=True),
        streamlit_server("launch_1", None, "/step_line", [run]),
        streamlit_server("app_8", app, "/step_line", [ROOT / "sample_runs"]),
        streamlit_server("app_20", app, "/step_line", [sweep20()]),
        streamlit_server("launch_20", None, "/step_line", [sweep20()]),
        streamlit_server("home_8", app, "/", [ROOT / "sample_runs"]),
    ]
    servers[-1].chart = '[data-testid="stDataFrame"]'  # the Runs page draws a table
    tb_missing = tensorboard_available()
    if tb_missing is None:
        servers.insert(0, tensorboard_server(event_files(run)))
    else:
        print(f"TensorBoard skipped: {tb_missing}")
    if args.only:
        servers = [s for s in servers if s.name in set(args.only)]
    results = {s.name: Result(s) for s in servers}

    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            for round_ in range(max(1, args.rounds)):
                for s in servers:
                    r = results[s.name]
                    try:
                        sample = measure(browser, s)
                    except Exception as exc:  # noqa: BLE001 - one target failing is a finding
                        r.error = f"{type(exc).__name__}: {exc}"
                        print(f"  round {round_ + 1} {s.name}: FAILED {r.error}")
                        continue
                    r.samples.append(sample)
                    extra = (
                        f", second session {sample.second_chart_s:.2f} s"
                        if sample.second_chart_s is not None
                        else ""
                    )
                    done = f", done {sample.done_s:.2f} s" if sample.done_s is not None else ""
                    print(
                        f"  round {round_ + 1} {s.name:12s} health {sample.health_s:.2f} s, "
                        f"chart {sample.chart_s:.2f} s{done}{extra}",
                        flush=True,
                    )
        finally:
            browser.close()

    after = machine()
    print()
    print(f"load average after: {after['load_avg_1_5_15']}; uptime: {uptime()}")
    print(
        f"{'target':12s} {'health':>7s} {'chart':>7s} {'range':>11s} {'done':>7s}"
        f" {'2nd chart':>9s} {'2nd done':>8s}   (seconds, median of {args.rounds})"
    )
    for r in results.values():
        print(
            f"{r.server.name:12s} {r.median('health_s'):7.2f} {r.median('chart_s'):7.2f}"
            f" {r.spread('chart_s'):>11s} {r.median('done_s'):7.2f}"
            f" {r.median('second_chart_s'):9.2f} {r.median('second_done_s'):8.2f}"
            + (f"   last error: {r.error}" if r.error else "")
        )
    floor = results["floor"].median("chart_s") if "floor" in results else float("nan")
    tb = results["tensorboard"].median("chart_s") if "tensorboard" in results else float("nan")
    print()
    targets: dict[str, Any] = {}
    if "app_1" in results:
        ours = results["app_1"].median("chart_s")
        second = results["app_1"].median("second_chart_s")
        rows = [
            ("app_1 / TensorBoard", ours / tb, 1.0),
            ("app_1 / floor", ours / floor, TARGET_VS_FLOOR),
            ("app_1 second session / floor", second / floor, TARGET_VS_FLOOR),
        ]
        for label, ratio, limit in rows:
            ok = ratio <= limit
            targets[label] = {"ratio": ratio, "limit": limit, "ok": ok}
            shown = verdict(ok) if ratio == ratio else "n/a"
            print(f"{label:32s} {ratio:5.2f}x  (≤ {limit:.1f}x) {shown}")
    if "launch_1" in results:
        ours = results["launch_1"].median("chart_s")
        for label, ratio, limit in (
            ("launch_1 / TensorBoard", ours / tb, 1.0),
            ("launch_1 / floor", ours / floor, TARGET_VS_FLOOR),
        ):
            ok = ratio <= limit
            targets[label] = {"ratio": ratio, "limit": limit, "ok": ok}
            shown = verdict(ok) if ratio == ratio else "n/a"
            print(f"{label:32s} {ratio:5.2f}x  (≤ {limit:.1f}x) {shown}")
    for name in ("app_8", "app_20", "launch_20", "home_8"):
        if name in results:
            print(f"{name + ' / floor':32s} {results[name].median('chart_s') / floor:5.2f}x")

    if args.json:
        payload = {
            "machine_before": before,
            "machine_after": after,
            "rounds": args.rounds,
            "targets": targets,
            "results": {
                name: {"samples": [s.__dict__ for s in r.samples], "error": r.error}
                for name, r in results.items()
            },
            "tensorboard": tb_missing or "measured",
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
