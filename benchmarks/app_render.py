"""App responsiveness on a realistic sweep: cold load, first render and warm re-render
of every page, and how many chart bytes each page sends to the browser.

Why this exists: the app is used on sweeps of long runs, and a page that takes seconds to
answer a slider is not usable. The targets (checked here, not in unit tests, because
timings on shared machines are too noisy to fail a build on), on a 2-core machine:

- loading the 20-run sweep in a fresh process (`ponder_parse.load_runs`) < 5 s;
- re-rendering any page after a widget change, with everything cached, < 1 s.

Pages are driven headlessly with `streamlit.testing.v1.AppTest`, which runs the real
script (frame + page) in this process. Times include AppTest's own overhead (building the
element tree from protobuf messages), which is small next to the pages' work but is not
the browser's rendering time. Pages are visited in the app's menu order; the analysis
caches they share (phases, red flags, summaries, per-step frames) are filled by whichever
page needs them first, as they would be for a user clicking through.

    python benchmarks/app_render.py [--runs 20] [--steps 10000] [--json out.json]

Always exits 0 when the measurements ran: a MISS or a page exception is a finding to
report, not a crash of the benchmark.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _common import (  # also puts the project on the path
    DATA_DIR,
    ROOT,
    machine,
    verdict,
    write_sweep,
)

if TYPE_CHECKING:
    from ponder_parse.sim.simulate import SimConfig

MANIFEST = ".bench-sweep.json"  # a dotfile: never mistaken for a run by the loader

TARGET_COLD_LOAD_S = 5.0
TARGET_WARM_S = 1.0

# What varies across the sweep: (hyperparameter changes, label). Seeds cycle on top.
VARIATIONS: tuple[dict[str, Any], ...] = (
    {},
    {"target_k": 1.5},
    {"lambda_lr": 1e-4},
    {"reward_eta": 0.2},
    {"halt_thr": 0.3},
)


# --- the sweep ------------------------------------------------------------------------------


def sweep_configs(n_runs: int, steps: int, layers: int) -> dict[str, SimConfig]:
    """`n_runs` configs that look like a real sweep: five settings x seeds, 8 layers, the
    LR schedule over the whole run, and one run that crashed and resumed (so the resume
    handling is part of the cost)."""
    from ponder_parse.sim.simulate import SimConfig, run_name

    base = SimConfig(steps=steps, n_layers=layers, lr_total_steps=steps)
    out: dict[str, SimConfig] = {}
    for i in range(n_runs):
        cfg = replace(base, seed=i // len(VARIATIONS), **VARIATIONS[i % len(VARIATIONS)])
        if i == len(VARIATIONS) + 1 and steps > 1000:
            cfg = replace(cfg, crash_at=int(steps * 0.6) + 7)
        out[run_name(cfg, base)] = cfg
    return out


def ensure_sweep(n_runs: int, steps: int, layers: int) -> tuple[Path, float]:
    """Write the sweep under `benchmarks/_data/` (git-ignored) unless an identical one is
    already there; returns the folder and the seconds spent writing (0 when reused)."""
    suffix = "" if (steps, layers) == (10_000, 8) else f"-{steps}x{layers}"
    sweep_dir = DATA_DIR / f"sweep{n_runs}{suffix}"
    configs = sweep_configs(n_runs, steps, layers)
    workers = max(1, min(2, os.cpu_count() or 1))
    return sweep_dir, write_sweep(sweep_dir, configs, MANIFEST, workers)


# --- cold load, in a fresh process ------------------------------------------------------------


def _cold_child(sweep_dir: str) -> None:
    """Runs in a fresh interpreter: import time, then `load_runs` wall time, as JSON."""
    t0 = time.perf_counter()
    import ponder_parse

    t1 = time.perf_counter()
    runs = ponder_parse.load_runs([sweep_dir])
    t2 = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "load_s": t2 - t1,
                "runs": len(runs),
                "failures": [f"{f.path}: {f.reason}" for f in runs.failures],
                "bytes": sum(r.source.stat().st_size for r in runs if r.source is not None),
            }
        )
    )


def cold_load(sweep_dir: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--cold-child", str(sweep_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- pages ----------------------------------------------------------------------------------


# A page's widget change: called with the AppTest and the round number, sets a widget
# and says what it did. Rounds alternate between two values, so every round really
# changes something.
Change = Callable[[Any, int], str]


def _change(kind: str, key: str, *values: Any) -> Change:
    """Set widget `key` to `values[round % len(values)]`."""

    def act(at: Any, round_: int) -> str:
        value = values[round_ % len(values)]
        getattr(at, kind)(key=key).set_value(value)
        return f"{kind} {key} = {value!r}"

    return act


def _rerun(at: Any, round_: int) -> str:
    return "plain rerun (no page widget worth changing)"


def _pick(kind: str, key: str, *picks: Callable[[list[Any]], Any]) -> Change:
    """Like `_change`, with the values chosen from the widget's current options."""

    def act(at: Any, round_: int) -> str:
        widget = getattr(at, kind)(key=key)
        value = picks[round_ % len(picks)](list(widget.options))  # options come back as text
        if isinstance(widget.value, int):
            value = int(value)
        widget.set_value(value)
        return f"{kind} {key} = {value!r}"

    return act


def _middle(options: list[Any]) -> Any:
    return options[len(options) // 2]


def _first(options: list[Any]) -> Any:
    return options[0]


# Page file → the widget change that triggers the warm re-render.
PAGES: dict[str, Change] = {
    "home": _rerun,
    "step_line": _change("slider", "sl_smooth", 0.8, 0.3),
    "layer_heatmaps": _change("slider", "lh_cols", 100, 300),
    "survival_traces": _pick("select_slider", "st_step", _middle, _first),
    "phase_comparison": _change("toggle", "pc_diff", False, True),
    "red_flags": _change("multiselect", "rf_sev", ["critical", "warning", "info"], ["critical"]),
    "economics": _change("slider", "ec_smooth", 0.5, 0.2),
    "generations": _pick("select_slider", "gen_step", _middle, _first),
    "sweep": _change("toggle", "sw_diff", False, True),
}


@dataclass
class PageResult:
    page: str
    first_s: float = float("nan")
    warm_s: float = float("nan")  # median over the rounds
    warm_all_s: list[float] = field(default_factory=list)
    rerun_s: float = float("nan")
    change: str = ""
    charts: int = 0
    chart_data_bytes: int = 0
    chart_spec_bytes: int = 0
    exceptions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    profile: str = field(default="", repr=False)


class _Warnings(logging.Handler):
    """Collects what Streamlit logs at WARNING and above while a page runs (misused
    widgets, deprecations): not exceptions, but worth a look."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().splitlines()[0] if record.getMessage() else ""
        if "missing ScriptRunContext" not in text and text not in self.seen:
            self.seen.append(text)

    def take(self) -> list[str]:
        out, self.seen = self.seen, []
        return out


def _exceptions(at: Any, when: str) -> list[str]:
    return [f"{when}: {e.message or e.value}".strip() for e in at.exception]


def chart_payload(at: Any) -> tuple[int, int, int]:
    """(charts, data bytes, spec bytes) of the Vega-Lite charts on the current page: the
    Arrow datasets and JSON specs the browser has to receive and decode."""
    charts = at.get("vega_lite_chart")
    data = spec = 0
    for node in charts:
        proto = node.proto
        spec += len(proto.spec)
        data += len(proto.data.data)
        data += sum(len(ds.data.data) for ds in proto.datasets)
    return len(charts), data, spec


def timed_run(at: Any) -> float:
    t0 = time.perf_counter()
    at.run()
    return time.perf_counter() - t0


class ScriptProfiler:
    """cProfile for the thread AppTest runs the script in (a profiler enabled in this
    thread would see only the wait), switched on around the runs to be looked at."""

    def __init__(self) -> None:
        self.profile: cProfile.Profile | None = None
        from streamlit.testing.v1.local_script_runner import LocalScriptRunner

        original = LocalScriptRunner._run_script_thread
        owner = self

        def run_profiled(runner: Any) -> None:
            prof = owner.profile
            if prof is None:
                return original(runner)
            prof.enable()
            try:
                return original(runner)
            finally:
                prof.disable()

        LocalScriptRunner._run_script_thread = run_profiled  # type: ignore[method-assign]

    def report(self, limit: int = 30) -> str:
        if self.profile is None:
            return ""
        out = io.StringIO()
        stats = pstats.Stats(self.profile, stream=out)
        stats.sort_stats("cumulative").print_stats(limit)
        stats.sort_stats("tottime").print_stats(limit // 2)
        return out.getvalue()


def drive_app(
    sweep_dir: Path, rounds: int = 3, profile: frozenset[str] = frozenset()
) -> tuple[float, list[str], list[PageResult]]:
    """The app's first run (parsing included: nothing is cached yet in this process), then
    every page: first render, a plain rerun, and `rounds` reruns each after a widget
    change (the warm time is their median: one sample is too noisy to judge). Pages in
    `profile` get one more, profiled re-render after the timed ones (printed; profiling
    slows it down, so it is not timed)."""
    from streamlit.testing.v1 import AppTest

    profiler = ScriptProfiler() if profile else None

    os.environ["PONDER_RUNS"] = str(sweep_dir)
    # The app reads `--runs` from sys.argv: this script's own flags must not leak into it.
    sys.argv = sys.argv[:1]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    warnings = _Warnings()
    # Streamlit's loggers do not propagate: listen on each of them.
    loggers = [
        logging.getLogger(name)
        for name in list(logging.Logger.manager.loggerDict)
        if name == "streamlit" or name.startswith("streamlit.")
    ]
    for logger in loggers:
        logger.addHandler(warnings)
    cold_s = timed_run(at)
    cold_exc = _exceptions(at, "first run") + [f"warning: {w}" for w in warnings.take()]
    results = []
    for page, change in PAGES.items():
        r = PageResult(page)
        at.switch_page(f"pages/{page}.py")
        r.first_s = timed_run(at)
        r.exceptions += _exceptions(at, "first render")
        r.charts, r.chart_data_bytes, r.chart_spec_bytes = chart_payload(at)
        r.rerun_s = timed_run(at)
        r.exceptions += _exceptions(at, "rerun")
        whats: list[str] = []
        for round_ in range(max(1, rounds)):
            try:
                what = change(at, round_)
            except Exception as exc:  # noqa: BLE001 - a missing widget is a finding, not a crash
                what = f"widget change failed ({exc!r}); plain rerun instead"
            if what not in whats:
                whats.append(what)
            r.warm_all_s.append(timed_run(at))
            r.exceptions += _exceptions(at, f"after {what}")
        r.change = " | ".join(whats)
        r.warm_s = statistics.median(r.warm_all_s)
        if profiler is not None and page in profile:
            what = change(at, rounds)  # differs from the last round's value
            profiler.profile = cProfile.Profile()
            timed_run(at)
            r.profile = f"--- profile of {page}, re-render after {what} ---\n{profiler.report()}"
            profiler.profile = None
        r.warnings = warnings.take()
        results.append(r)
    for logger in loggers:
        logger.removeHandler(warnings)
    return cold_s, cold_exc, results


# --- report -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs in the sweep (default 20)")
    parser.add_argument("--steps", type=int, default=10_000, help="steps per run (default 10000)")
    parser.add_argument("--layers", type=int, default=8, help="layers per run (default 8)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="widget changes per page, median reported (3)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--profile",
        nargs="*",
        default=[],
        metavar="PAGE",
        help=f"cProfile the warm re-render of these pages ({', '.join(PAGES)})",
    )
    parser.add_argument("--cold-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cold_child:
        _cold_child(args.cold_child)
        return 0
    unknown = set(args.profile) - set(PAGES)
    if unknown:
        parser.error(f"unknown page(s) to profile: {', '.join(sorted(unknown))}")

    before = machine()
    print(f"machine: {before['cpus']} cores, load average {before['load_avg_1_5_15']} (1/5/15 min)")
    sweep_dir, gen_s = ensure_sweep(args.runs, args.steps, args.layers)
    print(
        f"sweep: {args.runs} runs x {args.steps} steps x {args.layers} layers "
        + (f"(written in {gen_s:.1f} s)" if gen_s else "(reused)")
    )
    cold = cold_load(sweep_dir)
    if cold["failures"]:
        print("load failures: " + "; ".join(cold["failures"]))
    cold_s, cold_exc, pages = drive_app(sweep_dir, args.rounds, frozenset(args.profile))

    mb = cold["bytes"] / 1e6
    print(f"logs: {mb:.1f} MB in {cold['runs']} runs")
    print()
    print(f"{'measure':52s} {'time':>8s}  verdict")
    print(
        f"{'cold load_runs, fresh process (imports excluded)':52s} {cold['load_s']:7.2f}s  "
        f"{verdict(cold['load_s'] < TARGET_COLD_LOAD_S)}   "
        f"({mb / cold['load_s']:.0f} MB/s; imports {cold['import_s']:.2f} s)"
    )
    print(f"{'app first run (home page, parsing included)':52s} {cold_s:7.2f}s")
    for e in cold_exc:
        print(f"  EXCEPTION {e}")
    print()
    print(
        f"{'page':18s} {'first':>8s} {'rerun':>8s} {'warm':>8s} {'<1s':>5s}"
        f" {'charts':>6s} {'data KB':>8s} {'spec KB':>8s}  warm = median after"
    )
    for r in pages:
        print(
            f"{r.page:18s} {r.first_s:7.2f}s {r.rerun_s:7.2f}s {r.warm_s:7.2f}s"
            f" {verdict(r.warm_s < TARGET_WARM_S):>5s} {r.charts:6d}"
            f" {r.chart_data_bytes / 1e3:8.0f} {r.chart_spec_bytes / 1e3:8.0f}  {r.change}"
        )
        for e in r.exceptions:
            print(f"  EXCEPTION {e}")
        for w in r.warnings:
            print(f"  streamlit warning: {w}")
    n_exc = len(cold_exc) + sum(len(r.exceptions) for r in pages)
    print()
    print(f"page exceptions: {n_exc}")
    for r in pages:
        if r.profile:
            print()
            print(r.profile)

    result = {
        "machine_before": before,
        "machine_after": machine(),
        "runs": args.runs,
        "steps": args.steps,
        "layers": args.layers,
        "log_bytes": cold["bytes"],
        "cold_load": cold,
        "app_first_run_s": cold_s,
        "app_first_run_exceptions": cold_exc,
        "pages": [{k: v for k, v in r.__dict__.items() if k != "profile"} for r in pages],
        "targets": {
            "cold_load_below_5s": cold["load_s"] < TARGET_COLD_LOAD_S,
            "warm_below_1s": {r.page: r.warm_s < TARGET_WARM_S for r in pages},
        },
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
