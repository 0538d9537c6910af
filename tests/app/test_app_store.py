"""The app on a run store: `--store DIR`, runs read lazily (only the shown ones), the run
chooser on the Runs page, and runs given as paths going through the cache store."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import streamlit as st
from app_helpers import assert_ok, copy_run, goto, new_app, runs_table, sidebar_text
from streamlit.testing.v1 import AppTest

from ponder_app import prepare, source, state
from ponder_parse.analysis import red_flags as flags
from ponder_parse.files.store import open_store, reader
from ponder_parse.files.store.reader import StoredRun
from ponder_parse.parse import scan
from ponder_parse.sim.simulate import SimConfig, write_run

N_RUNS = source.DEFAULT_SHOWN + 5
SMALL = SimConfig(
    steps=400,
    n_layers=2,
    force_end=100,
    ponder_start=150,
    warmup_steps=50,
    lr_total_steps=400,
    checkpoint_every=100,
    generate_every=200,
)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of more runs than are shown by default: target_k × seeds."""
    logs = tmp_path_factory.mktemp("logs")
    for i in range(N_RUNS):
        tk = (1.3, 2.4)[i % 2]
        cfg = SimConfig(**{**SMALL.to_json(), "target_k": tk, "seed": i})
        write_run(cfg, logs, f"target_k={tk},seed={i:02d}")
    root = tmp_path_factory.mktemp("store") / "store"
    report = open_store(root, create=True).ingest([logs], use_processes=False)
    assert not report.failures, report.failures
    return root


@pytest.fixture(autouse=True)
def _no_outside_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PONDER_RUNS", raising=False)
    monkeypatch.setattr(sys, "argv", ["app.py"])


def ctx_of(at: AppTest) -> state.Context:
    ctx = at.session_state[state.CTX_KEY]
    assert isinstance(ctx, state.Context)
    return ctx


def open_app(monkeypatch: pytest.MonkeyPatch, *args: str) -> AppTest:
    monkeypatch.setattr(sys, "argv", ["app.py", *args])
    at = new_app().run()
    assert_ok(at)
    return at


def test_store_opens_every_run_and_reads_only_the_shown(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader.TABLE_CACHE.clear()
    at = open_app(monkeypatch, "--store", str(store_dir))
    ctx = ctx_of(at)
    stored = open_store(store_dir).runs()
    assert sorted(r.name for r in ctx.all_runs) == sorted(stored["name"])  # no sample runs
    assert all(isinstance(r, StoredRun) for r in ctx.all_runs)
    names = [r.name for r in ctx.all_runs]
    # A large store opens with the first runs shown, not all of them.
    assert at.session_state["selected_runs"] == names[: source.DEFAULT_SHOWN]
    shown_ids = {r.run_id for r in ctx.runs if isinstance(r, StoredRun)}
    # The Runs page (chooser and table) came from the runs table: no run's tables read.
    assert runs_table(at).height == source.DEFAULT_SHOWN
    assert reader.TABLE_CACHE.run_ids() <= shown_ids
    goto(at, "step_line")
    loaded = reader.TABLE_CACHE.run_ids()
    assert loaded and loaded <= shown_ids
    hidden = {r.run_id for r in ctx.all_runs if isinstance(r, StoredRun)} - shown_ids
    assert len(hidden) == N_RUNS - source.DEFAULT_SHOWN and not loaded & hidden
    goto(at, "sweep")  # from stored summaries, as the Runs page
    assert reader.TABLE_CACHE.run_ids() <= shown_ids


def test_the_step_line_reads_only_the_columns_it_draws(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The metric picker and its notes, and the baseline's phase bands, come from the
    stored rows; each shown run then has the chosen metrics and the x axes read, one
    read per run, and nothing else."""
    st.cache_resource.clear()  # frames earlier tests drew are not read again
    at = open_app(monkeypatch, "--store", str(store_dir))
    ctx = ctx_of(at)
    reader.TABLE_CACHE.clear()
    goto(at, "step_line")
    assert at.multiselect(key="sl_metrics").options  # offered from the rows alone
    base = ctx.baseline
    assert isinstance(base, StoredRun)

    def read() -> dict[tuple[str, str], list[tuple[str, ...] | None]]:
        out: dict[tuple[str, str], list[tuple[str, ...] | None]] = {}
        for k in reader.TABLE_CACHE._items:
            out.setdefault((k[1], k[3]), []).append(k[4] if len(k) > 4 else None)
        return out

    assert base.stored_phases is not None and base.stored_phases.height
    assert at.toggle(key="sl_phases").value  # the bands are drawn
    axes = set(prepare.AXIS_COLUMNS)
    shown = [r for r in ctx.runs if isinstance(r, StoredRun)]
    assert len(shown) == source.DEFAULT_SHOWN
    got = read()
    assert got == {
        (r.run_id, "steps"): [got_cols(axes, "lambda_p", "lm_loss", "avg_k")] for r in shown
    }
    reader.TABLE_CACHE.clear()
    at.multiselect(key="sl_metrics").set_value(["steps.grad_norm"]).run()
    assert_ok(at)
    got = read()
    for r in shown:
        assert got[(r.run_id, "steps")] == [got_cols(axes, "grad_norm")]


def got_cols(axes: set[str], *metrics: str) -> tuple[str, ...]:
    """The columns `per_step` asks a stored run for: the axes, then the metrics."""
    return (*prepare.AXIS_COLUMNS, *sorted(set(metrics) - axes))


def test_the_chooser_filters_feed_the_selection(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(monkeypatch, "--store", str(store_dir))
    at.text_input(key="pick_search").set_value("target_k=2.4").run()
    assert_ok(at)
    at.button(key="pick_show_matching").click().run()
    assert_ok(at)
    want = sorted(r.name for r in ctx_of(at).all_runs if r.name.startswith("target_k=2.4"))
    assert len(want) == (N_RUNS // 2) and at.session_state["selected_runs"] == want
    assert at.multiselect(key="selected_widget").value == want
    assert sorted(runs_table(at)["run"]) == want
    # A regular expression, and a value filter on a swept setting.
    at.toggle(key="pick_regex").set_value(True).run()
    at.text_input(key="pick_search").set_value(r"seed=0[0-3]$").run()
    at.multiselect(key="pick_settings").set_value(["target_k"]).run()
    at.multiselect(key="pick_value_target_k").set_value(["1.3"]).run()
    assert_ok(at)
    at.button(key="pick_show_matching").click().run()
    assert at.session_state["selected_runs"] == ["target_k=1.3,seed=00", "target_k=1.3,seed=02"]
    # A broken expression is said, not raised; the selection stays.
    at.text_input(key="pick_search").set_value("seed=(").run()
    assert not at.exception
    assert any("not a valid regular expression" in str(e.value) for e in at.main.error)
    assert at.session_state["selected_runs"] == ["target_k=1.3,seed=00", "target_k=1.3,seed=02"]


def test_a_folder_that_is_not_a_store_is_a_listed_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(monkeypatch, "--store", str(tmp_path))
    assert "not a run store" in sidebar_text(at)
    assert not ctx_of(at).all_runs


def test_a_store_is_an_allowed_root(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["app.py", "--store", str(store_dir)])
    assert store_dir.resolve() in state.allowed_roots()
    assert state.confine(str(store_dir / "runs")) == (store_dir / "runs").resolve()
    assert state.SAMPLE_RUNS not in state.allowed_roots()  # a store is runs given
    assert state.confine(str(store_dir.parent.parent)) is None


def test_runs_given_as_paths_are_parsed_once_through_the_cache_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PONDER_STORE", str(cache))
    sweep = tmp_path / "sweep"
    copy_run("baseline,seed=0", sweep)
    copy_run("gate=stuck,seed=0", sweep)
    parses: list[int] = []
    real_scan = scan.scan_lines
    monkeypatch.setattr(scan, "scan_lines", lambda *a, **k: parses.append(1) or real_scan(*a, **k))
    loads: list[str] = []
    real_load = state.load_run
    monkeypatch.setattr(state, "load_run", lambda p: loads.append(p) or real_load(p))
    st.cache_resource.clear()
    at = open_app(monkeypatch, "--runs", str(sweep))
    first = runs_table(at)
    assert sorted(first["run"]) == ["baseline,seed=0", "gate=stuck,seed=0"]
    assert parses and not loads  # parsed by the ingest, not by load_run
    assert open_store(cache).runs().height == 2
    assert all(isinstance(r, StoredRun) for r in ctx_of(at).all_runs)
    # A new server (no in-process cache) opening the same runs parses nothing.
    n = len(parses)
    st.cache_resource.clear()
    at = open_app(monkeypatch, "--runs", str(sweep))
    assert len(parses) == n and not loads
    assert runs_table(at).equals(first)
    # A changed file is parsed again (only that run).
    log = next((sweep / "gate=stuck,seed=0").glob("log_*.txt"))
    log.write_bytes(log.read_bytes() + b"stray line\n")
    at.run()
    assert_ok(at)
    assert len(parses) > n
    assert runs_table(at).filter(runs_table(at)["run"] == "gate=stuck,seed=0")["problems"][0] >= 1


def test_cache_store_off_reads_runs_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PONDER_STORE", "off")
    sweep = tmp_path / "sweep"
    copy_run("baseline,seed=0", sweep)
    at = open_app(monkeypatch, "--runs", str(sweep))
    ctx = ctx_of(at)
    assert [r.name for r in ctx.all_runs] == ["baseline,seed=0"]
    assert not any(isinstance(r, StoredRun) for r in ctx.all_runs)


def test_stored_figures_stand_only_for_default_settings(store_dir: Path) -> None:
    run = open_store(store_dir).stored_runs()[0]
    rules = flags.DEFAULT
    assert source.stored_summary(run, rules, False, {}) == {**run.stored_summary, "run": run.name}
    assert source.stored_summary(run, rules, True, {}) is None  # audit steps counted
    assert source.stored_summary(run, rules, False, {"gate_learning": 300}) is None
    grad = flags.RULES["grad_sustained"]
    edited = rules.with_settings(grad, dataclasses.replace(grad.settings, rel=5.0))
    assert edited.names and source.stored_summary(run, edited, False, {}) is None
    m = source.stored_measures(run, rules, {})
    assert m is not None and m.run == run.name
    assert m == flags.measure_run(run.store.load(run.run_id).replaced(name=run.name), rules)


def test_the_chooser_opens_by_itself_only_for_many_runs(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(monkeypatch)  # the sample sweep: every run shown, the chooser closed
    assert at.toggle(key="pick_open").value is False
    assert not [t for t in at.main.text_input if t.key == "pick_search"]
    at.toggle(key="pick_open").set_value(True).run()
    assert_ok(at)
    at.text_input(key="pick_search").set_value("seed=1").run()
    at.button(key="pick_show_matching").click().run()
    assert_ok(at)
    assert at.session_state["selected_runs"] == [
        n for n in (r.name for r in ctx_of(at).all_runs) if "seed=1" in n
    ]
    big = open_app(monkeypatch, "--store", str(store_dir))
    assert big.toggle(key="pick_open").value is True


def test_edited_red_flag_settings_read_only_the_shown_runs(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chooser lists every stored run from its row even when the session's red-flag
    settings differ from those the store used (the shown runs are judged with them)."""
    reader.TABLE_CACHE.clear()
    monkeypatch.setattr(sys, "argv", ["app.py", "--store", str(store_dir)])
    at = new_app()
    grad = flags.RULES["grad_sustained"]
    at.session_state[state.FLAG_RULES_KEY] = flags.DEFAULT.with_settings(
        grad, dataclasses.replace(grad.settings, rel=5.0)
    )
    at.run()
    assert_ok(at)
    ctx = ctx_of(at)
    assert ctx.rules.names == {"grad_sustained"}
    shown_ids = {r.run_id for r in ctx.runs if isinstance(r, StoredRun)}
    assert reader.TABLE_CACHE.run_ids() == shown_ids  # the runs table judged them afresh
    assert "default red-flag settings" in "\n".join(str(c.value) for c in at.main.caption)


def test_warming_a_store_opens_its_rows_and_parses_no_sample(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m ponder_app -- --store DIR` shows the store, not the sample sweep: the
    warming thread opens the store's rows (what the Runs page lists) and parses nothing."""
    from ponder_app import warm

    loads: list[object] = []
    opened: list[object] = []
    monkeypatch.setattr(state, "_load_one", lambda *a, **k: loads.append(a))
    real = source.opened_stores
    monkeypatch.setattr(source, "opened_stores", lambda d=None: opened.append(d) or real(d))
    warm.warm(["--store", str(store_dir)], env_paths=[])
    assert loads == []
    assert opened == [[str(store_dir)]]
    assert len(real([str(store_dir)]).runs) == N_RUNS
