"""Session state in a real browser: the run selection survives fresh sessions' first
interactions, the view lives in the URL (a reload restores it), and a followed log that
grows is drawn as it grows.

Shares the server and browser fixtures of `test_browser.py` (one Streamlit server per
module; headless Debian chromium).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from app_helpers import SAMPLE_NAMES, SAMPLE_RUNS, head_lines, log_of
from test_browser import (  # noqa: F401 - fixtures are found by name
    CHROMIUM,
    CHROMIUM_ARGS,
    IDLE,
    TITLES,
    browser,
    go_to,
    server,
    start_server,
    sync_api,
    wait_for_run,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed"),
]

PICKER = '[data-testid="stSidebar"] [data-testid="stMultiSelect"]'
CHIPS = f"{PICKER} [data-tag]"
NOT_SELECTED = "No runs selected"


def chips(page) -> int:
    return page.locator(CHIPS).count()


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def wait_for_title(page, name: str) -> None:
    page.wait_for_function(
        "t => [...document.querySelectorAll('[data-testid=\"stMain\"] h1')]"
        ".some(h => h.innerText.trim() === t)",
        arg=TITLES[name],
    )


# --- the empty-selection race ---------------------------------------------------------------

SESSIONS = 20  # before the fix, about 1 in 12-30 fresh sessions lost its selection
BATCH = 5  # sessions opened side by side: a busy server is where the race showed
SWITCH_TO = ("generations", "red_flags", "sweep", "step_line", "phase_comparison")


def _selection_lost(page) -> bool:
    return chips(page) != len(SAMPLE_NAMES) or NOT_SELECTED in main_text(page)


def test_fresh_sessions_never_lose_the_selection(browser, server: str) -> None:  # noqa: F811
    """Fresh sessions, several at once, whose first interaction is a page switch made as
    soon as the navigation shows (the first run may still be going) or a widget change,
    and whose second is the other: every one keeps every run selected throughout."""
    lost: list[tuple[int, str, int]] = []

    def check(i: int, page, after: str) -> None:
        # The rerun a click starts shows as "running" within a few milliseconds; then idle.
        page.wait_for_timeout(150)
        page.wait_for_selector(IDLE)
        if _selection_lost(page):
            lost.append((i, after, chips(page)))

    def switch(page, target: str) -> None:
        page.locator(f'[data-testid="stSidebarNav"] a[href$="/{target}"]').click()
        wait_for_title(page, target)

    def toggle(page) -> None:
        page.locator(PICKER).wait_for()
        page.locator('[data-testid="stSidebar"] [data-testid="stCheckbox"]').first.click()

    for first in range(0, SESSIONS, BATCH):
        ctxs = [browser.new_context(viewport={"width": 1200, "height": 900}) for _ in range(BATCH)]
        try:
            pages = [c.new_page() for c in ctxs]
            for page in pages:
                page.set_default_timeout(60_000)
                page.goto(server + "/", wait_until="commit")
            for j, page in enumerate(pages):
                i = first + j
                page.wait_for_selector('[data-testid="stSidebarNav"] a')
                if i % 2 == 0:
                    switch(page, SWITCH_TO[(i // 2) % len(SWITCH_TO)])
                else:
                    toggle(page)
            for j, page in enumerate(pages):
                check(first + j, page, "first interaction")
            for j, page in enumerate(pages):
                i = first + j
                if i % 2 == 0:
                    toggle(page)
                else:
                    switch(page, SWITCH_TO[(i // 2) % len(SWITCH_TO)])
            for j, page in enumerate(pages):
                check(first + j, page, "second interaction")
        finally:
            for c in ctxs:
                c.close()
    assert not lost, f"sessions whose selection changed (session, after, chips shown): {lost}"


# --- the view in the URL -----------------------------------------------------------------------

THUMB = '[data-testid="stSliderThumbValue"]'


def slider(page, label: str):
    return page.locator('[data-testid="stSlider"]').filter(has_text=label)


def test_a_reload_restores_the_view(browser, server: str) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.set_default_timeout(60_000)
    try:
        page.goto(server + "/step_line")
        page.wait_for_selector(IDLE)
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
        # Smoothing 0.60 → 0.57 with the keyboard, one run taken out of the selection.
        smooth = slider(page, "Smoothing")
        smooth.locator('input[type="range"]').focus()
        for _ in range(3):
            page.keyboard.press("ArrowLeft")
        wait_for_run(page)
        dropped = "gate=stuck,seed=0"
        page.locator(f'{PICKER} [aria-label="Remove {dropped}"]').click()
        wait_for_run(page)
        page.wait_for_function("() => location.search.includes('smooth=0.57')")
        url = page.url
        assert "run=" in url, url
        page.reload()
        page.wait_for_selector(IDLE)
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
        wait_for_run(page)
        assert slider(page, "Smoothing").locator(THUMB).inner_text().strip() == "0.57"
        names = page.locator(f"{CHIPS}").evaluate_all(
            "els => els.map(e => e.getAttribute('aria-label'))"
        )
        assert sorted(names) == sorted(n for n in SAMPLE_NAMES if n != dropped)
        assert page.url == url
        # A link with values this server cannot use opens the plain view, without a traceback.
        page.goto(server + "/step_line?run=nope&smooth=abc&steps=9-1&metric=%3Cb%3E")
        page.wait_for_selector(IDLE)
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
        assert page.locator('[data-testid="stException"]').count() == 0
        assert chips(page) == len(SAMPLE_NAMES)
    finally:
        page.close()


# --- a followed log that grows ------------------------------------------------------------------

POLL_S = 5


def test_live_run_draws_new_steps_within_two_polls(browser, start_server, tmp_path: Path) -> None:  # noqa: F811
    lines = head_lines(log_of(SAMPLE_RUNS / "baseline,seed=0"), 4000)
    cut = len(lines) // 2
    run = tmp_path / "sweep" / "live,seed=0"
    run.mkdir(parents=True)
    log = run / "log_kronecker_adaptive.txt"
    log.write_text("\n".join(lines[:cut]) + "\n")
    url = start_server({"PONDER_RUNS": str(tmp_path / "sweep")})
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.set_default_timeout(60_000)
    try:
        page.goto(url + "/step_line")
        page.wait_for_selector(IDLE)
        page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
        page.locator('[data-testid="stSidebar"] [data-testid="stCheckbox"]').first.click()
        wait_for_run(page)
        steps = slider(page, "Step range")
        before = [int(t.replace(",", "")) for t in steps.locator(THUMB).all_inner_texts()]
        with log.open("a") as f:
            f.write("\n".join(lines[cut:]) + "\n")
        appended = time.monotonic()
        page.wait_for_function(
            """([sel, old]) => {
                const el = [...document.querySelectorAll('[data-testid="stSlider"]')]
                    .find(s => s.innerText.includes('Step range'));
                if (!el) return false;
                const v = [...el.querySelectorAll(sel)].map(t => parseInt(t.innerText.replace(/,/g, '')));
                return v.length === 2 && v[1] > old;
            }""",
            arg=[THUMB, before[-1]],
            timeout=(2 * POLL_S + 8) * 1000,
        )
        took = time.monotonic() - appended
        after = [int(t.replace(",", "")) for t in steps.locator(THUMB).all_inner_texts()]
        assert after[0] == before[0] and after[1] > before[1], (before, after)
        print(f"new steps drawn {took:.1f} s after the append")
        assert took <= 2 * POLL_S + 8
    finally:
        page.close()
