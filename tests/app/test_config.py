"""The shipped Streamlit settings: safe by default."""

from __future__ import annotations

import tomllib
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml"


def test_app_listens_on_loopback_only() -> None:
    """Without `server.address` Streamlit binds every interface: the whole network
    would see the runs and the path box."""
    config = tomllib.loads(CONFIG.read_text())
    assert config["server"]["address"] == "127.0.0.1"


def test_file_watcher_off() -> None:
    """Runs are re-read by their own size/mtime check; a watcher on large run folders
    would only cost inotify handles."""
    config = tomllib.loads(CONFIG.read_text())
    assert config["server"]["fileWatcherType"] == "none"


def test_no_traceback_reaches_the_page() -> None:
    """Exception text can carry server paths; the log keeps it, the page does not."""
    config = tomllib.loads(CONFIG.read_text())
    assert config["client"]["showErrorDetails"] == "none"
