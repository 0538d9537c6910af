"""Saved edits: beside the run, in the cache folder when the run's folder is read-only,
and whatever the file holds that is not an edit is dropped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ponder_parse.files import edits as E


@pytest.fixture
def log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(E.EDITS_DIR_ENV, raising=False)
    run = tmp_path / "runs" / "target_k=2.4,seed=0"
    run.mkdir(parents=True)
    path = run / "log_kronecker_adaptive.txt"
    path.write_text("STEP 1\n")
    return path


def test_round_trip_beside_the_run(log: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    got = E.RunEdits({"seed": 3, "note": "rerun", "eta": None}, {"force_end": 120})
    where = E.write_edits(log, got, cache)
    assert where == log.parent / E.EDITS_NAME
    assert E.read_edits(log, cache) == got
    # A second run in the same folder keeps the first one's entry.
    other = log.with_name("log_fourier_adaptive.txt")
    E.write_edits(other, E.RunEdits({"seed": 4}), cache)
    assert E.read_edits(log, cache) == got
    assert E.read_edits(other, cache).tags == {"seed": 4}
    # Removing every edit removes the entry.
    E.write_edits(log, E.RunEdits(), cache)
    assert not E.read_edits(log, cache)
    assert not cache.exists()


def test_read_only_run_folder_uses_the_cache(
    log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    # A folder this user cannot write (checked through os.access: root could write anyway).
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == log.parent else real_access(p, mode)
    )
    where = E.write_edits(log, E.RunEdits({"seed": 1}), cache)
    assert where.parent == cache
    assert not (log.parent / E.EDITS_NAME).exists()
    assert E.read_edits(log, cache).tags == {"seed": 1}


def test_forced_folder(log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(E.EDITS_DIR_ENV, str(tmp_path / "forced"))
    where = E.write_edits(log, E.RunEdits({"seed": 1}))
    assert where.parent == tmp_path / "forced"
    assert E.read_edits(log).tags == {"seed": 1}


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"runs": []}',
        '{"runs": {"log_kronecker_adaptive.txt": "x"}}',
        '{"runs": {"log_kronecker_adaptive.txt": {"tags": [], "phases": {"force_end": "a"}}}}',
    ],
)
def test_unusable_files_are_ignored(log: Path, content: str) -> None:
    (log.parent / E.EDITS_NAME).write_text(content)
    assert not E.read_edits(log)
    E.write_edits(log, E.RunEdits({"seed": 2}))  # and can be written over
    assert E.read_edits(log).tags == {"seed": 2}


def test_only_edits_are_kept(log: Path) -> None:
    raw = {
        "tags": {"seed": 1, "": 2, "bad": {"nested": 1}, "x": float("nan")},
        "phases": {"force_end": 10, "ponder_start": -1, "other": 5, "b": True},
    }
    (log.parent / E.EDITS_NAME).write_text(
        json.dumps({"runs": {log.name: raw}}).replace("NaN", "NaN")
    )
    got = E.read_edits(log)
    assert got.tags == {"seed": 1}
    assert got.phases == {"force_end": 10}
