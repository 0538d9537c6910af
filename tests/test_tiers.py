"""The quick tier (`pytest -m "not browser"`) is every test that needs no browser."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_exactly_the_tests_that_drive_a_browser_carry_the_browser_marker() -> None:
    """A test module that starts Chromium must be marked `browser` (or the quick tier
    would need one), and a module that does not must not be (or the quick tier would
    skip it)."""
    drives, marked = set(), set()
    for path in sorted(TESTS.rglob("test_*.py")):
        if path == Path(__file__).resolve():
            continue
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(TESTS).as_posix()
        if "playwright" in text or "chromium" in text.lower():
            drives.add(name)
        if "pytest.mark.browser" in text:
            marked.add(name)
    assert drives == marked == {"app/test_browser.py", "app/test_browser_session.py"}
