"""A run's facts (`run.meta`): only the typed keys of `RunMeta`, each of its type."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest

from ponder_parse import load_run
from ponder_parse.parse.live import LiveLog
from ponder_parse.run import RunMeta

HINTS = typing.get_type_hints(RunMeta)


def _is(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_is(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_is(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _is(k, key) and _is(v, item) for k, v in value.items()
        )
    if hint is float:
        return isinstance(value, float | int) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _check(meta: RunMeta) -> None:
    unknown = set(meta) - set(HINTS)
    assert not unknown, f"facts outside RunMeta: {unknown}"
    wrong = {k: v for k, v in meta.items() if not _is(v, HINTS[k])}
    assert not wrong, f"facts of the wrong type: {wrong}"


@pytest.mark.parametrize(
    "name", ["baseline,seed=0", "crash_at=2377,seed=2", "variant=smollm,kmax=6,seed=0"]
)
def test_loaded_run_facts_are_typed(sample_runs: Path, name: str) -> None:
    meta = load_run(sample_runs / name).meta
    _check(meta)
    for key in ("n_lines", "line_kinds", "n_layers", "kmax", "target_k", "restarts", "init"):
        assert key in meta, key


def test_live_run_facts_are_typed(sample_runs: Path) -> None:
    reader = LiveLog(sample_runs / "crash_at=2377,seed=2")
    reader.poll()
    meta = reader.run().meta
    _check(meta)
    assert meta["live"] is True
    assert meta["restarts"] == 1


def test_the_checker_sees_a_wrong_type() -> None:
    with pytest.raises(AssertionError, match="wrong type"):
        _check(typing.cast(RunMeta, {"kmax": "4"}))
    with pytest.raises(AssertionError, match="outside"):
        _check(typing.cast(RunMeta, {"cache_key": "x"}))
