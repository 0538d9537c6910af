"""Shared fixtures: paths to the bundled sample sweep, and small logs written on the fly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))


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
