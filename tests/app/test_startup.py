"""What the app pays for at start, and what a second browser session does not pay again.

Imports are checked in a fresh interpreter (this test process has imported everything
already): the frame's modules, and a whole first page driven by AppTest, must not load
the exporter, YAML, archive handling, the simulator or the run store, which only some
users need and only later. Sharing is checked in this process: analyses are cached per
process, so a second session's first page must not recompute any of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.app_helpers import APP, ROOT, SAMPLE_RUNS, TIMEOUT, assert_ok, charts

NOT_AT_START = (
    "vl_convert",  # PNG/SVG export: on a download
    "yaml",  # config.yaml / hparams.yaml: only when a run has one
    # archives: with the first upload (tarfile and zipfile themselves are not checked:
    # pandas and Streamlit import them for their own use)
    "ponder_parse.files.uploads",
    "ponder_parse.sim",
    "ponder_parse.files.store",
    "duckdb",
)
# Runs given as paths go through the cache run store: a first page of them needs it.
NOT_ON_A_FIRST_PAGE = tuple(m for m in NOT_AT_START if m != "ponder_parse.files.store")
FRAME_IMPORTS = "import streamlit; import ponder_app.registry, ponder_app.state, ponder_app.ui"


def _loaded_after(code: str, *, env: dict[str, str] | None = None) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=env,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_frame_modules_import_nothing_a_first_page_does_not_need() -> None:
    loaded = _loaded_after(FRAME_IMPORTS)
    assert "ponder_app.state" in loaded  # the probe did import the frame
    assert not {m for m in loaded if m.split(".")[0] in NOT_AT_START or m in NOT_AT_START}
    assert "ponder_parse.analysis.economics" not in loaded  # only its page needs it


def test_the_package_loads_its_public_names_on_first_use() -> None:
    code = (
        "import sys, ponder_parse\n"
        "before = {m for m in sys.modules if m.startswith('ponder_parse.')}\n"
        "assert not before, before\n"
        "from ponder_parse import patterns, load_run\n"
        "assert ponder_parse.flags is ponder_parse.red_flags\n"
        "assert patterns is ponder_parse.analysis.patterns\n"
        "assert callable(load_run) and ponder_parse.Run.__name__ == 'Run'\n"
        "assert 'summaries' in dir(ponder_parse)\n"
        "try:\n"
        "    ponder_parse.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('unknown names must raise AttributeError')\n"
    )
    loaded = _loaded_after(code)
    assert "ponder_parse.analysis.patterns" in loaded
    assert "ponder_parse.analysis.sweep" not in loaded  # asked for patterns only


@pytest.mark.parametrize("page", ["home", "step_line"])
def test_a_whole_first_page_leaves_the_rest_unloaded(page: str) -> None:
    code = (
        "import sys\n"
        "sys.argv = sys.argv[:1]\n"
        "from streamlit.testing.v1 import AppTest\n"
        f"at = AppTest.from_file({str(APP)!r}, default_timeout={TIMEOUT})\n"
        f"at.switch_page('pages/{page}.py').run()\n"
        "assert not at.exception, [e.value for e in at.exception]\n"
        "assert at.get('vega_lite_chart') or at.dataframe, 'the page drew nothing'\n"
    )
    one_run = str(SAMPLE_RUNS / "baseline,seed=0")
    loaded = _loaded_after(code, env={**_env(), "PONDER_RUNS": one_run})
    assert "ponder_app.charts" in loaded
    assert "ponder_parse.files.store.ingest" in loaded  # the run went through the cache store
    assert not {
        m for m in loaded if m.split(".")[0] in NOT_ON_A_FIRST_PAGE or m in NOT_ON_A_FIRST_PAGE
    }


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, calls: list[str]) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


def test_a_second_session_recomputes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    from ponder_app import prepare, state
    from ponder_parse.analysis import phases, summaries
    from ponder_parse.analysis import red_flags as flags

    monkeypatch.setenv("PONDER_RUNS", str(SAMPLE_RUNS / "baseline,seed=1"))
    monkeypatch.setattr(sys, "argv", sys.argv[:1])

    def first_pages() -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.run()
        assert_ok(at)
        at.switch_page("pages/step_line.py").run()
        assert_ok(at)
        assert charts(at)
        return at

    first_pages()  # the first session (or an earlier test) fills the process's caches
    calls: list[str] = []
    _counting(monkeypatch, state, "load_run", calls)
    _counting(monkeypatch, phases, "phases", calls)
    _counting(monkeypatch, flags, "red_flags", calls)
    _counting(monkeypatch, flags, "measure_run", calls)
    _counting(monkeypatch, summaries, "run_summary", calls)
    _counting(monkeypatch, prepare, "per_step", calls)
    first_pages()
    assert calls == []


def test_sample_runs_need_no_yaml() -> None:
    """The import check above runs on the sample runs; it proves something only while
    they carry no YAML config (a run that has one loads the parser, as it should)."""
    assert not [p for p in SAMPLE_RUNS.rglob("*.y*ml")]


def test_the_step_line_computes_only_what_it_shows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A first visit to the step line parses the run and builds its per-step frame and
    phases; the red flags and summaries other pages show wait for those pages."""
    from streamlit.testing.v1 import AppTest

    from ponder_app import prepare
    from ponder_parse.analysis import phases, summaries
    from ponder_parse.analysis import red_flags as flags

    run = tmp_path / "fresh,seed=0"  # a path no other test has cached
    shutil.copytree(SAMPLE_RUNS / "baseline,seed=0", run)
    monkeypatch.setenv("PONDER_RUNS", str(run))
    # Parsed in memory: through the cache store, the first ingest stores the run's summary
    # and sweep measures once for every later page and server.
    monkeypatch.setenv("PONDER_STORE", "off")
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    calls: list[str] = []
    for owner, name in (
        (phases, "phases"),
        (prepare, "per_step"),
        (flags, "red_flags"),
        (flags, "measure_run"),
        (summaries, "run_summary"),
        (summaries, "phase_summary"),
    ):
        _counting(monkeypatch, owner, name, calls)
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.switch_page("pages/step_line.py").run()
    assert_ok(at)
    assert charts(at)
    assert set(calls) == {"phases", "per_step"}


def test_warming_leaves_the_first_session_nothing_to_parse(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What `python -m ponder_app` does before any browser connects is exactly what the
    first step-line visit would compute: the session finds it in the shared caches."""
    from streamlit.testing.v1 import AppTest

    from ponder_app import prepare, state, warm
    from ponder_parse.analysis import phases

    run = tmp_path / "warmed,seed=0"
    shutil.copytree(SAMPLE_RUNS / "baseline,seed=0", run)
    monkeypatch.setenv("PONDER_RUNS", "")
    monkeypatch.setattr(sys, "argv", sys.argv[:1])
    assert warm.warm(["--runs", str(run)]) > 0
    calls: list[str] = []
    _counting(monkeypatch, state, "load_run", calls)
    _counting(monkeypatch, phases, "phases", calls)
    _counting(monkeypatch, prepare, "per_step", calls)
    monkeypatch.setenv("PONDER_RUNS", str(run))
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.switch_page("pages/step_line.py").run()
    assert_ok(at)
    assert charts(at)
    assert calls == []


def test_the_launcher_starts_the_server_before_the_heavy_imports() -> None:
    """`python -m ponder_app` imports the package, the registry and the warming module
    before the server starts: none of them may pull in the data stack, or the server's
    first answer waits for it."""
    loaded = _loaded_after(
        "import streamlit.web.cli; from ponder_app import registry, warm; import ponder_app.__main__"
    )
    assert "ponder_app.warm" in loaded
    heavy = {"polars", "pandas", "pyarrow", "altair", "narwhals", "ponder_parse"}
    assert not {m for m in loaded if m.split(".")[0] in heavy}


def test_warming_waits_for_the_server_to_listen(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from ponder_app import warm

    up = threading.Event()
    warmed = threading.Event()
    monkeypatch.setattr(warm, "server_started", up.is_set)
    monkeypatch.setattr(warm, "warm", lambda argv: warmed.set() or 0.0)
    thread = warm.start([])
    assert not warmed.wait(0.3)  # the server is not up: nothing imported yet
    up.set()
    thread.join(5)
    assert warmed.is_set()


def test_the_server_counts_as_started_only_once_its_runtime_runs() -> None:
    from ponder_app import warm

    assert warm.server_started() is False  # no Streamlit runtime in this process
