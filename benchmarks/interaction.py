"""Interaction in a real browser: how long every control on every page takes to answer,
and how long a page switch takes, against a bare Streamlit rerun measured in the same run.

Why this exists: a researcher comparing runs changes a control every few seconds; a
widget change should cost about what any Streamlit rerun costs, not a reload of the
frame. Targets: the median widget
change ≤ 2× the bare rerun, the median page switch ≤ 3×, and nothing over 1.5 s.

A change is timed from the input (a click, a key press) to the end of the rerun it
started, charts drawn: a MutationObserver notes when Streamlit's `stApp` element enters
`data-test-script-state="running"`; done is when it is back to `notRunning` and every
`stVegaLiteChart` on the page holds a canvas or SVG. A page switch is timed from the
click on its navigation link to the same state with the page's title shown.

    python benchmarks/interaction.py [--sets sample sweep20] [--app PATH/app.py] [--json out.json]

`--app` times another checkout's app.py on the same inputs (a before/after comparison).
The bare app is a slider and a 10-point Altair chart. Exits 0 when the measurements ran.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (  # also puts the project on the path
    ROOT,
    machine,
    script_file,
    verdict,
)
from first_chart import started, streamlit_server, sweep20, wait_healthy

from ponder_app import registry

WIDGET_RATIO = 2.0
SWITCH_RATIO = 3.0
MAX_S = 1.5
BARE_ROUNDS = 15
NO_RERUN_S = 3.0  # a control whose change starts no rerun within this is left out

BARE_APP = '''"""The bare rerun: a slider and a 10-point Altair chart."""

import altair as alt
import pandas as pd
import streamlit as st

n = st.slider("points", 2, 100, 10)
df = pd.DataFrame({"step": list(range(n)), "loss": [1 / (1 + i) for i in range(n)]})
st.altair_chart(alt.Chart(df).mark_line().encode(x="step", y="loss"))
'''

WATCH_JS = """() => {
  window.__sawRunning = false;
  if (!window.__watch) {
    const app = document.querySelector('[data-testid="stApp"]');
    window.__watch = new MutationObserver(() => {
      if (app.getAttribute('data-test-script-state') === 'running') window.__sawRunning = true;
    });
    window.__watch.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  }
}"""
SAW_RUN_JS = "() => window.__sawRunning === true"
DONE_JS = """(title) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!window.__sawRunning || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (title && ![...document.querySelectorAll('[data-testid="stMain"] h1')]
      .some(h => h.innerText.trim() === title)) return false;
  return [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')]
      .every(c => c.querySelector('canvas, svg'));
}"""
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu"]


@dataclass
class Timing:
    page: str
    what: str
    seconds: float


@dataclass
class Report:
    name: str
    bare_s: float = 0.0
    widgets: list[Timing] = field(default_factory=list)
    switches: list[Timing] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def bare_script() -> Path:
    return script_file("bare_rerun_app.py", BARE_APP)


def timed(page: Any, act: Any, title: str | None = None) -> float | None:
    """Seconds from `act()` to the end of the rerun it started, charts drawn; None when no
    rerun started."""
    page.evaluate(WATCH_JS)
    t0 = time.perf_counter()
    act()
    try:
        page.wait_for_function(SAW_RUN_JS, timeout=NO_RERUN_S * 1000, polling=10)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: no rerun
        return None
    page.wait_for_function(DONE_JS, arg=title, timeout=120_000, polling="raf")
    return time.perf_counter() - t0


def bare_rerun(browser: Any) -> float:
    server = streamlit_server("bare", bare_script(), "/")
    with started(server) as (port, _, proc):
        wait_healthy(port, server.health, proc)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector('[data-testid="stVegaLiteChart"] :is(canvas, svg)')
        page.wait_for_selector(IDLE)
        thumb = page.locator('[data-testid="stSlider"] input[type="range"]').first
        times = []
        for i in range(BARE_ROUNDS):
            thumb.focus()
            t = timed(page, lambda i=i: page.keyboard.press("ArrowRight" if i % 2 else "ArrowLeft"))
            if t is not None:
                times.append(t)
        page.close()
    return statistics.median(times)


# --- the controls of a page ------------------------------------------------------------------

CONTROLS = {
    "toggle": '[data-testid="stCheckbox"]',
    "radio": '[data-testid="stRadio"]',
    "slider": '[data-testid="stSlider"]',
    "select_slider": '[data-testid="stSelectSlider"]',
    "selectbox": '[data-testid="stSelectbox"]',
    "tabs": '[data-testid="stTabs"]',
}


def _label(el: Any) -> str:
    try:
        text = el.locator('[data-testid="stWidgetLabel"]').first.inner_text(timeout=500)
    except Exception:  # noqa: BLE001
        text = el.inner_text(timeout=500)
    return " ".join(text.split())[:50]


def change(page: Any, kind: str, el: Any) -> Any:
    """The action that changes this control's value once."""
    if kind == "toggle":
        return lambda: el.locator("label").first.click()
    if kind == "radio":

        def pick() -> None:
            options = el.locator('[role="radiogroup"] label')
            n = options.count()
            checked = next((i for i in range(n) if options.nth(i).locator("input").is_checked()), 0)
            options.nth((checked + 1) % max(n, 1)).click()

        return pick
    if kind == "tabs":
        # The next tab (lazy tabs rerun the page to draw it).
        return lambda: el.locator('[role="tab"][aria-selected="false"]').first.click()
    if kind in ("slider", "select_slider"):
        # Down one notch (a slider usually starts at its top, where up does nothing).
        def nudge() -> None:
            el.locator('input[type="range"], [role="slider"]').first.focus()
            page.keyboard.press("ArrowLeft")

        return nudge

    def choose() -> None:
        el.locator("input").first.focus()
        page.keyboard.press("ArrowDown")
        page.keyboard.press("ArrowDown")
        page.keyboard.press("Enter")

    return choose


def measure_page(page: Any, name: str, report: Report, max_per_kind: int) -> None:
    main = page.locator('[data-testid="stMain"]')
    for kind, sel in CONTROLS.items():
        n = main.locator(sel).count()
        for i in range(min(n, max_per_kind)):
            el = main.locator(sel).nth(i)
            if not el.is_visible():
                continue
            label = _label(el)
            try:
                el.scroll_into_view_if_needed(timeout=2000)
                t = timed(page, change(page, kind, el))
            except Exception as exc:  # noqa: BLE001 - a control that cannot be driven is noted
                report.skipped.append(f"{name}: {kind} {label!r} ({type(exc).__name__})")
                page.keyboard.press("Escape")
                page.wait_for_selector(IDLE)
                continue
            if t is None:
                report.skipped.append(f"{name}: {kind} {label!r} (no rerun)")
            else:
                report.widgets.append(Timing(name, f"{kind} {label}", t))


def measure_app(browser: Any, name: str, app: Path, runs: list[Path], max_per_kind: int) -> Report:
    report = Report(name)
    server = streamlit_server(name, app, "/", runs)
    with started(server) as (port, _, proc):
        wait_healthy(port, server.health, proc)
        url = f"http://127.0.0.1:{port}"
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(url + "/")
        page.wait_for_selector(IDLE)
        page.wait_for_selector('[data-testid="stMain"] h1')
        # Every page once first: what is measured is a page switch, not a first visit
        # whose analysis nobody has computed yet in this process.
        for spec in registry.PAGES:
            link = page.locator(
                f'[data-testid="stSidebarNav"] a[href="{url}/{"" if spec.default else spec.id}"]'
            )
            timed(page, link.click, spec.title)
        for spec in registry.PAGES:
            link = page.locator(
                f'[data-testid="stSidebarNav"] a[href="{url}/{"" if spec.default else spec.id}"]'
            )
            t = timed(page, link.click, spec.title)
            if t is not None:
                report.switches.append(Timing(spec.id, "page switch", t))
            measure_page(page, spec.id, report, max_per_kind)
        page.close()
    return report


def summary(report: Report, bare: float) -> list[str]:
    w = [t.seconds for t in report.widgets]
    s = [t.seconds for t in report.switches]
    lines = [f"## {report.name}", f"bare rerun (median of {BARE_ROUNDS}): {bare:.3f} s"]
    for what, xs, ratio in (("widget change", w, WIDGET_RATIO), ("page switch", s, SWITCH_RATIO)):
        if not xs:
            lines.append(f"{what}: nothing measured")
            continue
        med, mx = statistics.median(xs), max(xs)
        lines.append(
            f"{what}: n={len(xs)} median {med:.3f} s = {med / bare:.2f}× bare "
            f"(target ≤ {ratio:.0f}×: {verdict(med <= ratio * bare)}), "
            f"max {mx:.3f} s = {mx / bare:.2f}× (≤ {MAX_S} s: {verdict(mx <= MAX_S)})"
        )
    worst = sorted(report.widgets + report.switches, key=lambda t: -t.seconds)[:8]
    lines.append("slowest: " + "; ".join(f"{t.page} {t.what} {t.seconds:.2f} s" for t in worst))
    per_page: dict[str, list[float]] = {}
    for t in report.widgets:
        per_page.setdefault(t.page, []).append(t.seconds)
    lines.append(
        "widget median per page: "
        + ", ".join(f"{p} {statistics.median(v):.2f} s (n={len(v)})" for p, v in per_page.items())
    )
    if report.skipped:
        lines.append("not measured: " + "; ".join(report.skipped))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sets", nargs="+", default=["sample", "sweep20"], choices=["sample", "sweep20"]
    )
    ap.add_argument("--app", type=Path, default=ROOT / "app.py")
    ap.add_argument("--max-per-kind", type=int, default=4, help="controls of one kind per page")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    print(json.dumps(machine()))
    inputs = {"sample": [ROOT / "sample_runs"]}
    if "sweep20" in args.sets:
        inputs["sweep20"] = [sweep20()]
    out: dict[str, Any] = {"machine": machine(), "app": str(args.app)}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        for name in args.sets:
            bare = bare_rerun(browser)
            report = measure_app(browser, name, args.app, inputs[name], args.max_per_kind)
            lines = summary(report, bare)
            print("\n".join(lines), flush=True)
            out[name] = {
                "bare_s": bare,
                "widgets": [t.__dict__ for t in report.widgets],
                "switches": [t.__dict__ for t in report.switches],
                "skipped": report.skipped,
            }
        browser.close()
    print(json.dumps(machine()))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
