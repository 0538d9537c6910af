"""The running app in headless Chromium (Debian's `chromium`, driven by Playwright).

One Streamlit server for the module; every page is opened through the sidebar navigation
and checked for exceptions and for charts that really draw (a usable size, coloured
marks on the canvas). Screenshots go to `shots/browser/` (git-ignored). An upload goes
through the real file input.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from app_helpers import (
    CHART_PAGES,
    PAGES,
    ROOT,
    SAMPLE_NAMES,
    SAMPLE_RUNS,
    head_lines,
    log_of,
)

from ponder_app import registry

CHROMIUM = shutil.which("chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]

sync_api = pytest.importorskip("playwright.sync_api")
from PIL import Image  # noqa: E402 - after the skip checks

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TITLES = {p.id: p.title for p in registry.PAGES}
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
SHOTS = ROOT / "shots" / "browser"


# --- the server --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def start_server(tmp_path_factory: pytest.TempPathFactory):
    """Starts `streamlit run app.py` servers; each is stopped at the end of the module."""
    started: list[subprocess.Popen[bytes]] = []

    def start(extra_env: dict[str, str] | None = None) -> str:
        port = _free_port()
        log = tmp_path_factory.mktemp("server") / "streamlit.log"
        env = {k: v for k, v in os.environ.items() if k != "PONDER_RUNS"} | (extra_env or {})
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "streamlit", "run", "app.py",
                    "--server.headless=true", f"--server.port={port}", "--server.address=127.0.0.1",
                    "--browser.gatherUsageStats=false", "--server.fileWatcherType=none",
                ],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"streamlit did not come up:\n{log.read_text(errors='replace')[-3000:]}"
                )
            time.sleep(0.25)
        return url

    yield start
    for proc in started:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(start_server) -> str:
    return start_server()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_app(browser, url: str, path: str = "/"):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.set_default_timeout(60_000)
    page.goto(url + path)
    page.wait_for_selector(IDLE)
    page.wait_for_selector('[data-testid="stMain"] h1')
    return page


@pytest.fixture(scope="module")
def app_page(browser, server):
    """One session that walks through every page, as a user would."""
    page = open_app(browser, server)  # the root first: the frame registers the pages
    yield page
    page.close()


# --- reading the page --------------------------------------------------------------------------


def wait_for_run(page) -> None:
    """Wait for the rerun a click started (it may already be over) to finish."""
    with contextlib.suppress(sync_api.TimeoutError):
        page.wait_for_selector(
            '[data-testid="stApp"][data-test-script-state="running"]', timeout=1500
        )
    page.wait_for_selector(IDLE)


def go_to(page, url: str, name: str) -> None:
    href = url + "/" + ("" if name == "home" else name)
    links = page.locator('[data-testid="stSidebarNav"] a')
    link = next(a for a in links.all() if a.get_attribute("href") == href)
    link.click()
    page.wait_for_function(
        "t => [...document.querySelectorAll('[data-testid=\"stMain\"] h1')].some(h => h.innerText.trim() === t)",
        arg=TITLES[name],
    )
    wait_for_run(page)


def first_column(page, table: int = 0) -> list[str]:
    """The first column of a dataframe (glide renders cells into an accessible table)."""
    grid = page.locator('[data-testid="stDataFrame"]').nth(table)
    grid.locator('[role="gridcell"]').first.wait_for(state="attached")
    return grid.locator('[data-testid^="glide-cell-0-"]').all_text_contents()


def coloured_pixels(png: bytes) -> int:
    """Pixels with a clear hue (lines, bars, heat cells): not white, grey or pale."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 60).sum())


def chart_marks_drawn(chart) -> int:
    deadline = time.monotonic() + 10
    while True:
        n = coloured_pixels(chart.screenshot())
        if n > 400 or time.monotonic() > deadline:
            return n
        time.sleep(0.3)


# --- every page ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PAGES)
def test_page_in_the_browser(app_page, server: str, name: str) -> None:
    go_to(app_page, server, name)
    SHOTS.mkdir(parents=True, exist_ok=True)
    app_page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert app_page.locator('[data-testid="stException"]').count() == 0
    alerts = app_page.locator('[data-testid="stMain"] [data-testid="stAlert"]').all_inner_texts()
    assert not [a for a in alerts if "could not be" in a], alerts
    # The frame is there: sidebar with the run picker, every sample run loaded.
    assert app_page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').count() == 1
    if name not in CHART_PAGES:
        return
    charts = app_page.locator('[data-testid="stVegaLiteChart"]')
    charts.first.locator("canvas, svg").first.wait_for()
    assert charts.count() >= 1
    for i in range(charts.count()):
        drawn = charts.nth(i).locator("canvas, svg.marks").first
        drawn.wait_for()
        box = drawn.bounding_box()
        assert box is not None and box["height"] > 100 and box["width"] > 150, (name, i, box)
    first = charts.first
    first.scroll_into_view_if_needed()
    drawn_pixels = chart_marks_drawn(first)
    print(name, "coloured pixels in the first chart:", drawn_pixels)
    assert drawn_pixels > 400, f"{name}: the first chart looks blank"


CHART_WIDTHS_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].map(el => {
    const drawn = el.querySelector('canvas, svg.marks');
    const block = el.parentElement.closest('[data-testid="stVerticalBlock"]');
    return [Math.round(drawn.getBoundingClientRect().width), Math.round(block.getBoundingClientRect().width)];
  });
  return {scroll: main.scrollWidth, client: main.clientWidth, charts};
}"""


@pytest.mark.parametrize("name", CHART_PAGES)
def test_charts_fit_their_column(app_page, server: str, name: str) -> None:
    go_to(app_page, server, name)
    app_page.locator('[data-testid="stVegaLiteChart"]').first.locator(
        "canvas, svg"
    ).first.wait_for()
    app_page.wait_for_timeout(500)  # let every chart lay itself out
    widths = app_page.evaluate(CHART_WIDTHS_JS)
    too_wide = [(i, w, col) for i, (w, col) in enumerate(widths["charts"]) if w > col + 2]
    assert not too_wide, f"charts wider than their column (index, chart px, column px): {too_wide}"
    assert widths["scroll"] <= widths["client"] + 2, "the page scrolls sideways"


def test_home_table_in_the_browser(app_page, server: str) -> None:
    go_to(app_page, server, "home")
    assert sorted(first_column(app_page)) == SAMPLE_NAMES


# --- an upload through the real file input ----------------------------------------------------------


@pytest.fixture
def loose_log(tmp_path: Path) -> Path:
    path = tmp_path / "log_browser_upload.txt"
    path.write_text("\n".join(head_lines(log_of(SAMPLE_RUNS / "baseline,seed=0"), 3000)) + "\n")
    return path


def upload(page, path: Path) -> None:
    page.locator('[data-testid="stSidebar"] [data-testid="stExpander"] summary').first.click()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(path))
    # The sample sweep gives way to the upload.
    page.wait_for_function("() => !document.body.innerText.includes('variant=smollm')")
    wait_for_run(page)


def test_upload_a_loose_log(browser, server: str, loose_log: Path) -> None:
    page = open_app(browser, server)
    try:
        upload(page, loose_log)
        assert page.locator('[data-testid="stException"]').count() == 0
        picker = page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]')
        picker.locator("input").click()
        page.keyboard.type("log_browser_upload")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        page.locator('[data-testid="stDataFrame"] [role="gridcell"]').first.wait_for(
            state="attached"
        )
        wait_for_run(page)
        assert first_column(page) == ["log_browser_upload"]
    finally:
        page.close()


def test_uploaded_log_appears_in_the_runs_table_at_once(
    browser, server: str, loose_log: Path
) -> None:
    page = open_app(browser, server)
    try:
        upload(page, loose_log)
        page.locator('[data-testid="stDataFrame"] [role="gridcell"]').first.wait_for(
            state="attached", timeout=5_000
        )
        assert first_column(page) == ["log_browser_upload"]
    finally:
        page.close()


# --- a bookmarked page as the server's first request ------------------------------------------------


def test_deep_link_as_first_request(browser, start_server) -> None:
    url = start_server()  # a fresh server: nothing has run app.py yet
    page = open_app(browser, url, "/step_line")
    try:
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
        nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
        assert not any(t.strip().endswith("app") for t in nav), nav
        assert page.locator('[data-testid="stSidebar"] [data-testid="stMultiSelect"]').count() == 1
    finally:
        page.close()


# --- names are text, not Markdown -------------------------------------------------------------------

HOSTILE = {
    "![x](x.png)": "baseline,seed=0",
    "$\\alpha$": "gate=stuck,seed=0",
    "**b**": "baseline,seed=1",
    "<img src=x>": "lambda_min=0.05,seed=0",
}


def test_hostile_names_fetch_nothing_and_render_as_typed(browser, start_server, tmp_path) -> None:
    sweep = tmp_path / "sweep"
    for name, source in HOSTILE.items():
        shutil.copytree(SAMPLE_RUNS / source, sweep / name)
    url = start_server({"PONDER_RUNS": str(sweep)})
    fetched: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.on("request", lambda r: fetched.append(r.url))
    page.set_default_timeout(60_000)
    try:
        page.goto(url)
        page.wait_for_selector(IDLE)
        page.wait_for_selector('[data-testid="stMain"] h1')
        for name in ("home", "generations", "red_flags", "layer_heatmaps"):
            go_to(page, url, name)
            assert page.locator('[data-testid="stException"]').count() == 0
            md = '[data-testid="stMarkdownContainer"]'
            assert page.locator(f"{md} img").count() == 0, name
            assert page.locator(f"{md} .katex, {md} strong:text-is('b')").count() == 0, name
            text = page.locator('[data-testid="stMain"]').inner_text()
            if name in ("home", "generations"):
                for run in HOSTILE:
                    assert run in text, (name, run)
        assert not [u for u in fetched if u.endswith(("/x.png", "/x"))], fetched
    finally:
        page.close()


# --- zoom, crosshair, colours, layouts ------------------------------------------------------------


TOOLTIP_JS = """() => {
  const tip = document.querySelector('#vg-tooltip-element');
  if (!tip || !tip.classList.contains('visible')) return null;
  return Object.fromEntries([...tip.querySelectorAll('tr')].map(
    tr => [tr.querySelector('.key')?.innerText.trim(), tr.querySelector('.value')?.innerText.trim()]));
}"""


def tooltip_steps(page, chart, y_offset: float = 120) -> list[tuple[int, str]]:
    """Sweep the pointer across a chart; the step and the text of each tooltip shown."""
    drawn = chart.locator("canvas, svg.marks").first
    drawn.scroll_into_view_if_needed()
    box = drawn.bounding_box()
    assert box is not None
    seen: list[tuple[int, str]] = []
    # across the plot, finely at both edges, where the axis ends
    edges = [i / 4 for i in range(0, 41)] + [100 - i / 4 for i in range(0, 81)]
    for i in [*range(10, 90, 4), *edges]:
        page.mouse.move(box["x"] + box["width"] * i / 100, box["y"] + y_offset)
        page.wait_for_timeout(120)
        cells = page.evaluate(TOOLTIP_JS)
        if cells and cells.get("step", "").isdigit():
            seen.append((int(cells["step"]), "\n".join(f"{k}: {v}" for k, v in cells.items())))
    return seen


def test_zoom_sets_the_x_axis_and_the_tooltip_lists_every_run(browser, server: str) -> None:
    """ "Open in step line" from a red flag: the x axis is the finding's range (hovering
    from the left edge to the right edge of the plot reads steps from its start to its
    end), the step reads as a whole number, and one tooltip names every shown run."""
    page = open_app(browser, server)
    try:
        go_to(page, server, "red_flags")
        page.get_by_role("button", name="Open in step line").first.click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"stMain\"] h1')]"
            ".some(h => h.innerText.trim() === 'Step line')"
        )
        wait_for_run(page)
        # On a slow machine the page may still be drawing when the script reports idle:
        # wait for the range slider's second thumb itself.
        thumbs = (
            page.locator('[data-testid="stSlider"]')
            .filter(has_text="Step range")
            .locator('[data-testid="stSliderThumbValue"]')
        )
        thumbs.nth(1).wait_for()
        values = thumbs.all_inner_texts()
        lo, hi = (int(v.replace(",", "")) for v in values[-2:])
        assert 0 < lo < hi
        chart = page.locator('[data-testid="stVegaLiteChart"]').first
        chart.locator("canvas, svg").first.wait_for()
        page.wait_for_timeout(500)
        seen = tooltip_steps(page, chart)
        assert seen, "no tooltip on hover"
        steps = [s for s, _ in seen]
        spacing = max(1, -(-(hi - lo) // 299))
        assert lo <= min(steps) <= lo + 3 * spacing, (lo, min(steps))
        assert hi - 3 * spacing <= max(steps) <= hi, (hi, max(steps))
        text = seen[len(seen) // 2][1]
        listed = [line.split(": ")[0] for line in text.splitlines()[1:]]
        assert len(listed) >= 8 and set(listed) <= set(SAMPLE_NAMES), text
        assert re.fullmatch(r"step: \d+", text.splitlines()[0]), text  # `1474`, not `1,474.00`
    finally:
        page.close()


def run_colours_shown(page) -> dict[str, str]:
    """The Runs page's colour pickers: run name → the colour of its swatch."""
    page.get_by_text("Choose run colours").click()
    wait_for_run(page)
    pickers = page.locator('[data-testid="stColorPicker"]')
    pickers.first.wait_for()
    return page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-testid="stColorPicker"]')].map(el => {
            const label = el.querySelector('label').innerText.trim();
            const swatch = [...el.querySelectorAll('div')].find(d => getComputedStyle(d).backgroundColor.startsWith('rgb(') && d.offsetWidth > 0 && d.offsetWidth <= 60 && getComputedStyle(d).backgroundColor !== 'rgba(0, 0, 0, 0)');
            return [label, swatch ? getComputedStyle(swatch).backgroundColor : null];
        }))"""
    )


def test_a_runs_colour_is_the_same_in_another_set_of_runs(
    browser, server: str, start_server, tmp_path: Path
) -> None:
    subset = ["lambda_min=0.05,seed=0", "gate=stuck,seed=0", "baseline,seed=1"]
    for name in subset:
        shutil.copytree(SAMPLE_RUNS / name, tmp_path / "three" / name)
    small = start_server({"PONDER_RUNS": str(tmp_path / "three")})
    full_page, small_page = open_app(browser, server), open_app(browser, small)
    try:
        full = run_colours_shown(full_page)
        few = run_colours_shown(small_page)
        assert set(few) == set(subset)
        for name in subset:
            assert few[name] and few[name] == full[name], (name, few[name], full[name])
        assert len(set(full.values())) == len(full)  # eleven runs, eleven colours
    finally:
        full_page.close()
        small_page.close()


DRAWN_JS = """() => {
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  return charts.length > 0 && charts.every(el => {
    const drawn = el.querySelector('canvas, svg.marks');
    return drawn && drawn.getBoundingClientRect().width > 0;
  });
}"""


LAYOUT_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const right = main.getBoundingClientRect().right;
  const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].map(el => {
    const drawn = el.querySelector('canvas, svg.marks');
    const block = el.parentElement.closest('[data-testid="stVerticalBlock"]');
    return [Math.round(drawn.getBoundingClientRect().width), Math.round(block.getBoundingClientRect().width)];
  });
  const tables = [...document.querySelectorAll('[data-testid="stDataFrame"]')].map(el => {
    const r = el.getBoundingClientRect();
    return [Math.round(r.right), Math.round(right)];
  });
  return {scroll: main.scrollWidth, client: main.clientWidth, charts, tables};
}"""


@pytest.mark.parametrize("width", [900, 1280])
def test_layouts_fit_at_narrow_widths(browser, server: str, width: int) -> None:
    """At 900 and 1280 px no chart is wider than its column (legends and facets
    included), no table reaches past the page (its own scrollbar reaches every
    column), and nothing scrolls the page sideways."""
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.set_default_timeout(60_000)
    try:
        page.goto(server)
        page.wait_for_selector(IDLE)
        page.wait_for_selector('[data-testid="stMain"] h1')
        for name in PAGES:
            go_to(page, server, name)
            if name in CHART_PAGES:
                try:  # every chart drawn (a busy machine can take a while on 20 charts)
                    page.wait_for_function(DRAWN_JS, timeout=120_000)
                except sync_api.TimeoutError:
                    got = page.evaluate(
                        LAYOUT_JS.replace(
                            "drawn.getBoundingClientRect", "(drawn || el).getBoundingClientRect"
                        )
                    )
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(SHOTS / f"undrawn-{name}-{width}.png"), full_page=True)
                    pytest.fail(f"{name} at {width}px: a chart was never drawn {got}")
            page.wait_for_timeout(500)
            got = page.evaluate(LAYOUT_JS)
            wide = [(i, w, col) for i, (w, col) in enumerate(got["charts"]) if w > col + 2]
            assert not wide, f"{name} at {width}px: charts wider than their column {wide}"
            cut = [(i, r, edge) for i, (r, edge) in enumerate(got["tables"]) if r > edge + 2]
            assert not cut, f"{name} at {width}px: tables past the page {cut}"
            assert got["scroll"] <= got["client"] + 2, f"{name} at {width}px scrolls sideways"
    finally:
        page.close()


def test_a_closed_expander_is_filled_when_opened(browser, server: str) -> None:
    """The Red flags page's threshold editor and the Runs page's log details are made
    only while their expander is open: opening one in the browser reruns the page and
    shows its content."""
    page = open_app(browser, server)
    try:
        go_to(page, server, "red_flags")
        inputs = page.locator('[data-testid="stNumberInput"]')
        assert inputs.count() == 0
        page.locator('[data-testid="stExpander"] summary', has_text="Thresholds").click()
        page.get_by_text("Every number a rule uses").wait_for(timeout=30_000)
        wait_for_run(page)
        # Each rule's inputs sit in its own expander, inside this one.
        page.locator('[data-testid="stExpander"] summary', has_text="gap_high").click()
        page.locator('[data-testid="stNumberInput"]:visible').first.wait_for(timeout=30_000)
        go_to(page, server, "home")
        details = page.locator('[data-testid="stExpander"] summary', has_text="problem(s)")
        details.first.click()
        page.get_by_text("Source:").first.wait_for(timeout=30_000)
    finally:
        page.close()


def test_economics_tabs_draw_their_charts_when_chosen(browser, server: str) -> None:
    """Only the chosen Economics tab is drawn: clicking another reruns the page and draws
    its charts in place of the controller view's."""
    page = open_app(browser, server)
    try:
        go_to(page, server, "economics")
        chart = '[data-testid="stVegaLiteChart"] :is(canvas, svg)'
        page.locator(chart).first.wait_for(timeout=60_000)
        page.get_by_text("Smoothing (EMA weight)").wait_for(timeout=30_000)
        assert page.get_by_text("Window for rates (policy steps)").count() == 0
        page.locator('[role="tab"]', has_text="Win and confidence rates").click()
        page.get_by_text("Window for rates (policy steps)").wait_for(timeout=30_000)
        wait_for_run(page)
        page.locator(chart).first.wait_for(timeout=60_000)
        assert page.get_by_text("Smoothing (EMA weight)").count() == 0
        assert page.locator('[data-testid="stVegaLiteChart"]').count() == 2
    finally:
        page.close()


def test_heatmap_differences_draw_in_their_tab(browser, server: str) -> None:
    """The runs' heatmaps first; the differences from the baseline replace them when their
    tab is clicked (the layer profile above stays)."""
    page = open_app(browser, server)
    try:
        go_to(page, server, "layer_heatmaps")
        chart = '[data-testid="stVegaLiteChart"] :is(canvas, svg)'
        page.locator(chart).first.wait_for(timeout=60_000)
        header = page.get_by_text("Difference from the baseline run (")
        assert header.count() == 0
        assert page.locator('[data-testid="stVegaLiteChart"]').count() == 2
        page.locator('[role="tab"]', has_text="Difference from the baseline").click()
        header.wait_for(timeout=30_000)
        wait_for_run(page)
        page.locator(chart).nth(1).wait_for(timeout=60_000)
        assert page.locator('[data-testid="stVegaLiteChart"]').count() == 2
        page.locator('[role="tab"]', has_text="Heatmaps per run").click()
        header.wait_for(state="detached", timeout=30_000)
    finally:
        page.close()


def test_the_overlay_tooltip_lists_every_run_of_every_metric(browser, server: str) -> None:
    """ "One chart for all metrics": hovering reads one tooltip with each shown run's
    value of each chosen metric, as logged."""
    page = open_app(browser, server)
    try:
        go_to(page, server, "step_line")
        page.get_by_text("One chart for all metrics").click()
        page.get_by_text("one panel, each metric scaled to its own range").wait_for(timeout=60_000)
        wait_for_run(page)
        chart = page.locator('[data-testid="stVegaLiteChart"]').first
        chart.locator("canvas, svg").first.wait_for()
        page.wait_for_timeout(500)
        seen = tooltip_steps(page, chart)
        assert seen, "no tooltip on hover"
        text = max((t for _, t in seen), key=len)
        rows = text.splitlines()[1:]
        metrics = {row.split(" · ", 1)[0] for row in rows}
        assert metrics == {"LM", "AVGS k", "λ_p"}, text
        assert len(rows) >= 3 * 8, text
    finally:
        page.close()


def test_a_chosen_x_axis_is_kept_across_a_page_switch(browser, server: str) -> None:
    page = open_app(browser, server)
    try:
        axis = page.get_by_role("radiogroup", name="X axis")
        go_to(page, server, "step_line")
        axis.get_by_text("tokens seen (sum of tok/sec × dt)").click()
        wait_for_run(page)
        go_to(page, server, "sweep")
        go_to(page, server, "step_line")
        axis.get_by_text("tokens seen (sum of tok/sec × dt)").wait_for()
        checked = axis.locator("label:has(input:checked)").all_inner_texts()
        assert checked and "tokens seen" in checked[0], checked
    finally:
        page.close()
