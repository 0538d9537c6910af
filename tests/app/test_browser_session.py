"""Session state in a real browser: the run selection survives fresh sessions' first
interactions, the view lives in the URL (a reload restores it), and a followed log that
grows is drawn as it grows.

Shares the server and browser fixtures of `test_browser.py` (one Streamlit server per
module; headless Debian chromium).
"""

from __future__ import annotations

import pytest
from app_helpers import SAMPLE_NAMES
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

SESSIONS = 30
BATCH = 5  # sessions opened side by side: a busy server is where the race showed
SWITCH_TO = ("generations", "red_flags", "sweep", "step_line", "phase_comparison")


def _selection_lost(page) -> bool:
    return chips(page) != len(SAMPLE_NAMES) or NOT_SELECTED in main_text(page)


def test_fresh_sessions_never_lose_the_selection(browser, server: str) -> None:  # noqa: F811
    """Fresh sessions, several at once, whose first interaction is a page switch made as
    soon as the navigation shows (the first run may still be going) or a widget change:
    every one keeps every run selected, on that page and on the next."""
    lost: list[tuple[int, str, int]] = []
    for first in range(0, SESSIONS, BATCH):
        ctxs = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(BATCH)]
        try:
            pages = [c.new_page() for c in ctxs]
            for page in pages:
                page.set_default_timeout(60_000)
                page.goto(server + "/", wait_until="commit")
            for j, page in enumerate(pages):
                i = first + j
                page.wait_for_selector('[data-testid="stSidebarNav"] a')
                if i % 2 == 0:
                    target = SWITCH_TO[(i // 2) % len(SWITCH_TO)]
                    page.locator(f'[data-testid="stSidebarNav"] a[href$="/{target}"]').click()
                else:
                    page.locator(f"{PICKER}").wait_for()
                    page.locator('[data-testid="stSidebar"] [data-testid="stCheckbox"]').first.click()
            for j, page in enumerate(pages):
                i = first + j
                wait_for_run(page)
                page.wait_for_selector('[data-testid="stMain"] h1')
                if _selection_lost(page):
                    lost.append((i, "first interaction", chips(page)))
                go_to(page, server, "step_line" if i % 2 else "home")
                if _selection_lost(page):
                    lost.append((i, "second page", chips(page)))
        finally:
            for c in ctxs:
                c.close()
    assert not lost, f"sessions whose selection changed (session, after, chips shown): {lost}"
