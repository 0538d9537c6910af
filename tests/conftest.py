"""Shared fixtures: paths to the bundled sample sweep, and small logs written on the fly.

Hypothesis profiles: "dev" (the default) runs few examples so the inner loop stays quick;
"ci" (chosen when the `CI` environment variable is set, as CI services do) runs many more,
never fails an example for being slow (a shared CI machine's timing says nothing about
the code), derandomizes so a red build reproduces, and prints the blob of a failing example.
`HYPOTHESIS_PROFILE` picks a profile explicitly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("dev", max_examples=25)
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True, print_blob=True)
_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _ci else "dev"))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session", autouse=True)
def _cache_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs the app opens by path go through a cache store: the tests' own, never the
    user's (a server a browser test starts inherits it)."""
    store = tmp_path_factory.mktemp("cache") / "store"
    os.environ["PONDER_STORE"] = str(store)
    return store


@pytest.fixture(autouse=True, scope="session")
def _edits_elsewhere(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tag and phase edits made by tests go to a folder of the test session's, never
    beside the bundled sample runs (servers started by browser tests inherit it)."""
    os.environ["PONDER_EDITS_DIR"] = str(tmp_path_factory.mktemp("edits"))


@pytest.fixture(autouse=True)
def _edits_per_test(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """...and each test starts with none saved: one test's edits are not the next one's."""
    monkeypatch.setenv("PONDER_EDITS_DIR", str(tmp_path_factory.mktemp("edits")))


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def sample_runs() -> Path:
    return ROOT / "sample_runs"


@pytest.fixture
def write_log(tmp_path: Path):
    """Write lines as a run folder's log; returns the run folder."""

    def _write(
        lines: list[str] | str | bytes,
        name: str = "run",
        filename: str = "log_kronecker_adaptive.txt",
    ) -> Path:
        d = tmp_path / name
        d.mkdir(parents=True, exist_ok=True)
        if isinstance(lines, list):
            data = ("\n".join(lines) + "\n").encode()
        elif isinstance(lines, str):
            data = lines.encode()
        else:
            data = lines
        (d / filename).write_bytes(data)
        return d

    return _write
