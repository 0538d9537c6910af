"""The run store: what it reads back equals `load_run`, and it parses only what changed."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from trainer_lines import generation_block, small_log, step_line

from ponder_parse import load_run
from ponder_parse.analysis.summaries import health, run_summary
from ponder_parse.files.store import (
    RUNS_SCHEMA,
    StoreError,
    ingest_paths,
    layout,
    open_store,
    run_id_for,
)
from ponder_parse.files.store import ingest as store_ingest
from ponder_parse.files.store.query import query, runs_where
from ponder_parse.run import Run
from ponder_parse.sim.simulate import SimConfig, simulate

SMALL = SimConfig(
    steps=600,
    n_layers=2,
    crash_at=420,
    checkpoint_every=100,
    force_end=200,
    ponder_start=300,
    generate_every=200,
    warmup_steps=100,
    lr_total_steps=600,
)


def assert_same_run(a: Run, b: Run) -> None:
    for name in b.tables():
        assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert a.meta == b.meta
    assert a.hparams == b.hparams
    assert a.snapshot == b.snapshot
    assert (a.name, a.variant, a.source) == (b.name, b.variant, b.source)


def store_files(root: Path) -> set[Path]:
    """Every file in the tables' partitions (what an engine globbing the store sees)."""
    return {
        p
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith("_") for part in p.relative_to(root).parts)
    }


def referenced_files(store) -> set[Path]:
    out = {layout.runs_row_path(store.root, rid) for rid in store.run_ids()}
    for table in layout.RUN_TABLES:
        out |= set(store.files(table, store.run_ids()))
    return out


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory, sample_runs=Path(__file__).parents[2] / "sample_runs"):
    root = tmp_path_factory.mktemp("store") / "store"
    store = open_store(root, create=True)
    report = store.ingest([sample_runs], use_processes=False)
    assert not report.failures, report.failures
    return store, sample_runs


def _sim_text() -> str:
    return simulate(SMALL).log_text


# --- reading back -------------------------------------------------------------------------


def test_every_sample_run_reads_back_equal_to_load_run(sample_store) -> None:
    store, sample_runs = sample_store
    runs = store.runs()
    dirs = sorted(p for p in sample_runs.iterdir() if p.is_dir())
    assert runs.height == len(dirs) == 11
    for d in dirs:
        rid = run_id_for(d.resolve())
        assert_same_run(store.load(rid), load_run(d.resolve()))


def test_runs_table_holds_facts_summary_and_health(sample_store) -> None:
    store, sample_runs = sample_store
    runs = store.runs()
    assert runs.columns == ["run_id", *(c for c in RUNS_SCHEMA if c != "state")]
    assert dict(runs.schema) == {
        "run_id": pl.String,
        **{c: d for c, d in RUNS_SCHEMA.items() if c != "state"},
    }
    healths = set()
    for d in sorted(p for p in sample_runs.iterdir() if p.is_dir()):
        run = load_run(d)
        s = run_summary(run)
        row = runs.filter(pl.col("run_id") == run_id_for(d.resolve())).row(0, named=True)
        assert row["name"] == run.name and row["path"] == str(d.resolve())
        for col in ("final_lm", "best_lm", "k_mean_economic", "win_rate", "dominant_pattern"):
            assert row[col] == s[col], col
        assert (row["n_critical"], row["n_warning"]) == (s["n_critical"], s["n_warning"])
        assert row["health"] == health(s)
        assert row["n_layers"] == run.meta["n_layers"] and row["kmax"] == run.meta["kmax"]
        assert row["last_step"] == run.last_step and row["n_lines"] == run.meta["n_lines"]
        assert json.loads(row["hparams"]) == run.hparams
        assert json.loads(row["hparam_sources"]) == run.meta["hparam_sources"]
        assert row["size"] == Path(row["log_file"]).stat().st_size > 0
        healths.add(row["health"])
    assert {"healthy", "critical"} <= healths  # the sample sweep has both


def test_a_run_whose_summary_fails_is_stored_with_health_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(store_ingest, "run_summary", broken)
    log = tmp_path / "run" / "log_kronecker_adaptive.txt"
    log.parent.mkdir()
    log.write_text("\n".join(small_log()) + "\n", encoding="utf-8")
    store = open_store(tmp_path / "store", create=True)
    store.ingest([log.parent])
    row = store.runs().row(0, named=True)
    assert row["health"] == "unknown"
    assert "boom" in row["summary_error"]


def test_scan_reads_only_the_columns_and_steps_asked_for(sample_store) -> None:
    store, _ = sample_store
    ids = store.run_ids()[:3]
    lf = store.scan("steps", ids, columns=["lm_loss"], step_range=(100, 199))
    plan = lf.explain()
    assert "PROJECT 3/" in plan and "SELECTION" in plan  # pushed into the Parquet scan
    df = lf.collect()
    assert df.columns == ["run_id", "lm_loss"]
    assert df.height == 3 * 100
    assert df["run_id"].unique(maintain_order=True).to_list() == ids
    full = store.load(ids[1]).steps.filter(pl.col("step").is_between(100, 199))
    assert_frame_equal(df.filter(pl.col("run_id") == ids[1]).drop("run_id"), full.select("lm_loss"))
    # Open-ended ranges, all runs, and tables without steps: the textbook runs' last ten
    # steps, and steps 2990-3699 of the 3 700-step realistic run.
    assert store.scan("steps", step_range=(2990, None)).collect().height == 8 * 10 + 710
    with pytest.raises(ValueError, match="no step column"):
        store.scan("problems", ids, step_range=(0, 1))
    with pytest.raises(ValueError, match="no column"):
        store.scan("steps", ids, columns=["nope"])
    layers = store.scan("snapshot_layers", ids).collect()
    assert layers.columns[0] == "run_id" and layers.height > 0


def test_hparams_as_columns(sample_store) -> None:
    store, _ = sample_store
    hp = store.hparams()
    assert hp.height == 11 and hp.columns[0] == "run_id"
    assert set(hp["lambda_max"].to_list()) >= {0.05, 0.0005}


def test_duckdb_query_equals_our_summary_for_every_run(sample_store) -> None:
    store, sample_runs = sample_store
    got = query(
        store,
        "SELECT run_id, max(step) AS last_step, count(*) AS steps FROM steps "
        "GROUP BY run_id ORDER BY run_id",
    )
    # LM outcomes are windowed means of the policy steps (audit steps left out): the mean
    # of the last 100, and the lowest mean of 100 consecutive ones
    lm = query(
        store,
        "SELECT run_id, lm_loss FROM steps "
        "WHERE isfinite(lm_loss) AND NOT coalesce(audit, false) ORDER BY run_id, step",
    )
    assert got.height == 11
    for d in sorted(p for p in sample_runs.iterdir() if p.is_dir()):
        s = run_summary(load_run(d))
        rid = run_id_for(d.resolve())
        row = got.filter(pl.col("run_id") == rid).row(0, named=True)
        assert row["last_step"] == s["last_step"] and row["steps"] == s["steps"]
        values = lm.filter(pl.col("run_id") == rid)["lm_loss"].to_list()
        w = min(100, len(values))
        windows = [sum(values[i - w : i]) / w for i in range(w, len(values) + 1)]
        assert s["final_lm"] == pytest.approx(windows[-1], rel=1e-9)
        assert s["best_lm"] == pytest.approx(min(windows), rel=1e-9)
    # The runs view and the run tables join on run_id.
    joined = query(
        store,
        "SELECT r.name, count(*) AS n FROM runs r JOIN layers l USING (run_id) GROUP BY r.name",
    )
    assert joined.height == 11 and (joined["n"] > 0).all()
    critical = runs_where(store, "health = 'critical'")
    assert critical.height == (store.runs()["health"] == "critical").sum() > 0
    assert "state" not in critical.columns
    small = runs_where(store, "json_extract(hparams, '$.lambda_max')::DOUBLE < 0.01")
    assert small["name"].to_list() == ["lambda_max=0.0005,seed=0"]


def test_engines_read_the_hive_layout_with_no_code_of_ours(sample_store) -> None:
    store, _ = sample_store
    ids = sorted(store.run_ids())
    pl_steps = pl.scan_parquet(store.root / "steps", hive_partitioning=True).collect()
    assert sorted(pl_steps["run_id"].unique().to_list()) == ids
    ours = store.scan("steps").collect()
    assert_frame_equal(
        pl_steps.select(ours.columns).sort("run_id", "step"), ours.sort("run_id", "step")
    )
    runs = pl.scan_parquet(store.root / "runs", hive_partitioning=True).collect()
    assert sorted(runs["run_id"].to_list()) == ids
    glob = str(store.root / "steps" / "*" / "*.parquet")
    n = duckdb.sql(
        f"SELECT count(DISTINCT run_id) FROM read_parquet('{glob}', hive_partitioning = true)"
    ).fetchall()
    assert n == [(11,)]


# --- incremental ingest -------------------------------------------------------------------


def test_reingest_with_nothing_changed_parses_nothing(sample_store) -> None:
    store, sample_runs = sample_store
    report = store.ingest([sample_runs], use_processes=False)
    assert report.counts() == {"unchanged": 11}
    assert report.parsed_bytes == 0
    assert all(r.reason is None for r in report.results)  # the size/mtime check sufficed


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_touched_files_are_hashed_not_parsed(tmp_path, sample_runs) -> None:
    run = _copy_run(sample_runs / "baseline,seed=0", tmp_path / "runs" / "a")
    store = open_store(tmp_path / "s", create=True)
    assert store.ingest_run(run).action == "new"
    for p in run.iterdir():
        os.utime(p, ns=(1, 2))
    r = store.ingest_run(run)
    assert (r.action, r.parsed_bytes) == ("unchanged", 0)
    assert "content unchanged" in (r.reason or "")
    assert store.ingest_run(run).reason is None  # the new times were recorded


def test_changed_files_are_parsed_again(tmp_path, sample_runs) -> None:
    run = _copy_run(sample_runs / "baseline,seed=0", tmp_path / "runs" / "a")
    store = open_store(tmp_path / "s", create=True)
    rid = store.ingest_run(run).run_id
    assert rid is not None
    log = run / "log_kronecker_adaptive.txt"
    # The same size, a different value early in the log: the stored start no longer holds.
    data = log.read_bytes()
    i = data.index(b"LM: ", data.index(b"STEP: 10 "))
    log.write_bytes(data[:i] + b"LM: 9.9999" + data[i + 10 :])
    r = store.ingest_run(run)
    assert r.action == "parsed" and r.parsed_bytes == len(data)
    assert store.load(rid).steps.filter(pl.col("step") == 10)["lm_loss"].item() == 9.9999
    assert_same_run(store.load(rid), load_run(run.resolve()))
    # A side file alone: stats.json rewritten (the trainer does it every step).
    stats = json.loads((run / "stats.json").read_text())
    stats["lm_loss"] = 1.25
    (run / "stats.json").write_text(json.dumps(stats))
    r = store.ingest_run(run)
    assert r.action == "refreshed" and r.parsed_bytes < 1000
    assert store.load(rid).snapshot["lm_loss"] == 1.25
    assert_same_run(store.load(rid), load_run(run.resolve()))
    # A config file: the hyperparameters follow.
    cfg = json.loads((run / "config.json").read_text())
    cfg["lambda_max"] = 0.01
    (run / "config.json").write_text(json.dumps(cfg))
    assert store.ingest_run(run).action == "refreshed"
    assert json.loads(store.runs()["hparams"][0])["lambda_max"] == 0.01
    assert_same_run(store.load(rid), load_run(run.resolve()))
    # The file replaced by a shorter one.
    log.write_text("\n".join(small_log(30, 2)) + "\n")
    assert store.ingest_run(run).action == "parsed"
    assert_same_run(store.load(rid), load_run(run.resolve()))
    assert store_files(store.root) == referenced_files(store)


def _grow(log: Path, text: bytes, cuts: list[int], store, run_dir: Path) -> list[str]:
    """Write the log up to each cut in turn, ingesting after each; every stored version
    must equal a full parse of the same bytes."""
    actions = []
    for cut in cuts:
        with log.open("ab") as fh:
            fh.write(text[log.stat().st_size if log.exists() else 0 : cut])
        r = store.ingest_run(run_dir)
        assert r.ok, r.reason
        actions.append(r.action)
        assert_same_run(store.load(r.run_id), load_run(run_dir.resolve()))
        assert store_files(store.root) == referenced_files(store)
    return actions


def test_a_growing_log_appends_parts_equal_to_a_full_parse(tmp_path) -> None:
    lines = small_log(steps=300, layers=2, ponder_start=100)
    lines[150:150] = generation_block(60, [("a prompt", "an output\nSTEP: 5 | fake")])
    text = ("\n".join(lines) + "\n").encode()
    run = tmp_path / "runs" / "grow"
    run.mkdir(parents=True)
    log = run / "log_kronecker_adaptive.txt"
    store = open_store(tmp_path / "s", create=True)
    gen = text.index(b"[GEN 1]") + 3
    cuts = [
        text.index(b"STEP: 40 ") + 25,  # mid-line: an incomplete last line
        gen,  # inside an open generation block (held back, in the tail part)
        gen + 40,
        text.index(b"STEP: 200 ") - 1,  # just before a newline
        len(text),
    ]
    actions = _grow(log, text, cuts, store, run)
    assert actions == ["new", "appended", "appended", "appended", "appended"]
    rid = run_id_for(run.resolve())
    assert len(store.files("steps", [rid])) > 1  # parts, not rewrites
    last = store.runs().row(0, named=True)
    assert last["parsed_bytes"] < len(text) / 2


def test_a_log_growing_through_a_resume_reads_back_as_a_full_parse(tmp_path) -> None:
    text = _sim_text().encode()
    run = tmp_path / "runs" / "resumed"
    run.mkdir(parents=True)
    log = run / "log_kronecker_adaptive.txt"
    store = open_store(tmp_path / "s", create=True)
    resume = text.index("⏩ Resuming from step 400".encode())
    relogged = text.index(b"STEP: 410 ", resume)
    cuts = [
        text.index(b"STEP: 300 "),
        text.index(b"Traceback"),  # the crash: a traceback still open
        resume,  # resume lines, no step re-logged yet
        relogged + 30,  # steps 400..409 again: the later occurrence wins
        text.index(b"STEP: 425 ", resume),  # past the crash step (420): all re-logged
        text.index(b"STEP: 500 ", resume),
        len(text),
    ]
    actions = _grow(log, text, cuts, store, run)
    assert actions[:3] == ["new", "appended", "appended"]
    # Re-logged steps replace stored ones: the run's parts are rewritten, each time the
    # new lines re-log a step the store holds (here 400..409, then 410..420).
    assert actions[3:5] == ["parsed", "parsed"]
    assert actions[5:] == ["appended", "appended"]
    full = load_run(run)
    assert full.meta["restarts"] == 1 and full.steps["step"].is_unique().all()


def test_compressed_logs_are_stored_and_parsed_again_when_they_change(tmp_path) -> None:
    run = tmp_path / "runs" / "gz"
    run.mkdir(parents=True)
    log = run / "log_kronecker_adaptive.txt.gz"
    log.write_bytes(gzip.compress(("\n".join(small_log(40, 2)) + "\n").encode()))
    store = open_store(tmp_path / "s", create=True)
    assert store.ingest_run(run).action == "new"
    assert_same_run(store.load(run_id_for(run.resolve())), load_run(run.resolve()))
    log.write_bytes(gzip.compress(("\n".join(small_log(60, 2)) + "\n").encode()))
    assert store.ingest_run(run).action == "parsed"
    assert_same_run(store.load(run_id_for(run.resolve())), load_run(run.resolve()))


def test_a_lone_log_file_is_a_run(tmp_path) -> None:
    log = tmp_path / "my_run.log"
    log.write_text("\n".join(small_log(30, 1)) + "\n")
    store = open_store(tmp_path / "s", create=True)
    r = store.ingest_run(log)
    assert r.action == "new" and r.name == "my_run"
    assert_same_run(store.load(r.run_id), load_run(log.resolve()))


def test_runs_stored_by_other_code_are_parsed_again(tmp_path, monkeypatch) -> None:
    log = tmp_path / "a.log"
    log.write_text("\n".join(small_log(30, 1)) + "\n")
    store = open_store(tmp_path / "s", create=True)
    store.ingest_run(log)
    monkeypatch.setattr(store_ingest, "layout_code", lambda: "another")
    r = store.ingest_run(log)
    assert r.action == "parsed" and "another version" in (r.reason or "")


def test_a_bad_run_is_reported_and_the_others_are_ingested(tmp_path) -> None:
    good = tmp_path / "runs" / "good"
    good.mkdir(parents=True)
    (good / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(20, 1)) + "\n")
    empty = tmp_path / "runs" / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("nothing here")
    store = open_store(tmp_path / "s", create=True)
    report = store.ingest([good, empty, tmp_path / "missing"], use_processes=False)
    assert {r.path.name: r.action for r in report.results} == {
        "good": "new",
        "empty": "failed",
        "missing": "failed",
    }
    assert all(r.reason for r in report.failures)
    assert store.runs()["name"].to_list() == ["good"]


# --- atomicity and concurrency ------------------------------------------------------------


@pytest.mark.parametrize("fail_at", [1, 3, "row"])
def test_an_interrupted_write_leaves_the_previous_version(tmp_path, monkeypatch, fail_at) -> None:
    text = ("\n".join(small_log(200, 2, ponder_start=50)) + "\n").encode()
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    log = run / "log_kronecker_adaptive.txt"
    log.write_bytes(text[: len(text) // 2])
    store = open_store(tmp_path / "s", create=True)
    rid = store.ingest_run(run).run_id
    before = store.load(rid)
    files_before = store_files(store.root)

    calls = {"n": 0}
    real = layout.write_parquet

    def failing(df: pl.DataFrame, fh) -> None:
        calls["n"] += 1
        is_row = "state" in df.columns
        if (fail_at == "row" and is_row) or calls["n"] == fail_at:
            real(df.head(max(df.height // 2, 1)), fh)  # half a file on disk, then the crash
            raise OSError("disk full")
        real(df, fh)

    monkeypatch.setattr(layout, "write_parquet", failing)
    log.write_bytes(text)
    r = store.ingest_run(run)
    assert r.action == "failed" and "disk full" in (r.reason or "")
    assert store_files(store.root) == files_before  # no partial or orphan file visible
    assert not list(layout.tmp_dir(store.root).iterdir())  # the half-written file is gone
    assert_same_run(store.load(rid), before)

    monkeypatch.setattr(layout, "write_parquet", real)
    assert store.ingest_run(run).action == "appended"
    assert_same_run(store.load(rid), load_run(run.resolve()))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files via /proc")
def test_every_part_is_on_disk_before_the_row_that_names_it(tmp_path, monkeypatch) -> None:
    """With `sync`, the parts of a version are flushed as a batch: each part's bytes before
    any part is renamed into place, each folder a part went to is flushed after the
    renames, and only then is the row (the commit record) written, flushed and renamed."""
    log = tmp_path / "a.log"
    log.write_text("\n".join(small_log(60, 2, ponder_start=20)) + "\n")
    store = open_store(tmp_path / "s", create=True)
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(layout.os, "fsync", fsync)
    monkeypatch.setattr(layout.os, "replace", replace)
    assert store.ingest_run(log, sync=True).action == "new"
    row = str(layout.runs_row_path(store.root, run_id_for(log.resolve())))
    renames = [dst for kind, dst in events if kind == "replace"]
    assert renames[-1] == row and len(renames) >= 3  # parts, then the row
    parts = renames[:-1]
    first_rename = events.index(("replace", parts[0]))
    part_flushes = [
        i for i, (kind, name) in enumerate(events) if kind == "fsync" and "_tmp" in name
    ]
    assert len(part_flushes) >= len(parts) + 1  # every part, and the row's own file
    assert all(i < first_rename for i in part_flushes[: len(parts)])
    folder_flushes = {
        name for kind, name in events[: events.index(("replace", row))] if kind == "fsync"
    }
    assert {str(Path(p).parent) for p in parts} <= folder_flushes
    assert events[-1] == ("fsync", str(Path(row).parent))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="names open files via /proc")
def test_by_default_only_the_row_is_flushed(tmp_path, monkeypatch) -> None:
    log = tmp_path / "a.log"
    log.write_text("\n".join(small_log(60, 2, ponder_start=20)) + "\n")
    store = open_store(tmp_path / "s", create=True)
    flushed: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        flushed.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(layout.os, "fsync", fsync)
    assert store.ingest_run(log).action == "new"
    row = layout.runs_row_path(store.root, run_id_for(log.resolve()))
    assert len(flushed) == 2
    assert Path(flushed[0]).parent == layout.tmp_dir(store.root)  # the row, before its rename
    assert flushed[1] == str(row.parent)
    assert len(store.files("steps", [run_id_for(log.resolve())])) == 1


@pytest.mark.parametrize("cut", ["short", "gone"])
def test_a_part_that_did_not_reach_the_disk_is_parsed_again(tmp_path, cut) -> None:
    """What a power loss can leave without `sync`: a row whose part is empty or absent.
    The next ingest sees it from the sizes the row recorded, without reading the part."""
    log = tmp_path / "a.log"
    log.write_text("\n".join(small_log(60, 2, ponder_start=20)) + "\n")
    store = open_store(tmp_path / "s", create=True)
    rid = store.ingest_run(log).run_id
    assert store.ingest_run(log).action == "unchanged"
    part = store.files("layers", [rid])[0]
    if cut == "short":
        part.write_bytes(b"")
    else:
        part.unlink()
    r = store.ingest_run(log)
    assert r.action == "parsed"
    assert r.reason == (
        "stored parts incomplete (cut short by a crash?)"
        if cut == "short"
        else "stored parts missing"
    )
    assert store.ingest_run(log).action == "unchanged"
    assert_same_run(store.load(rid), load_run(log.resolve()))


def test_a_rename_failing_midway_leaves_the_previous_version(tmp_path, monkeypatch) -> None:
    text = ("\n".join(small_log(200, 2, ponder_start=50)) + "\n").encode()
    log = tmp_path / "a.log"
    log.write_bytes(text[: len(text) // 2])
    store = open_store(tmp_path / "s", create=True)
    rid = store.ingest_run(log).run_id
    before = store.load(rid)
    files_before = store_files(store.root)
    real_replace = os.replace
    calls = {"n": 0}

    def replace(src, dst) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("no space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(layout.os, "replace", replace)
    log.write_bytes(text)
    r = store.ingest_run(log)
    assert r.action == "failed" and "no space" in (r.reason or "")
    assert store_files(store.root) == files_before  # the part renamed first is gone again
    assert not list(layout.tmp_dir(store.root).iterdir())
    assert_same_run(store.load(rid), before)
    monkeypatch.setattr(layout.os, "replace", real_replace)
    assert store.ingest_run(log).action == "appended"
    assert_same_run(store.load(rid), load_run(log.resolve()))


def test_the_resume_point_of_a_whole_log_reuses_its_content_hash(tmp_path) -> None:
    log = tmp_path / "a.log"
    log.write_text("\n".join(small_log(40, 2)) + "\n")
    store = open_store(tmp_path / "s", create=True)
    rid = store.ingest_run(log).run_id
    state = json.loads(store_ingest.read_row(store.root, rid)["state"])
    assert state["append"]["offset"] == log.stat().st_size
    assert state["append"]["prefix_hash"] == state["hashes"]["log"]
    assert state["hashes"]["log"] == store_ingest._hash(log.read_bytes())
    with log.open("a") as fh:
        fh.write("STEP 41 unfinished")  # no newline: the resume point stops before it
    store.ingest_run(log)
    state = json.loads(store_ingest.read_row(store.root, rid)["state"])
    end = state["append"]["offset"]
    assert end < log.stat().st_size
    assert state["append"]["prefix_hash"] == store_ingest._hash(log.read_bytes()[:end])


def test_a_run_whose_parts_went_missing_is_parsed_again(tmp_path) -> None:
    log = tmp_path / "a.log"
    log.write_text("\n".join(small_log(30, 1)) + "\n")
    store = open_store(tmp_path / "s", create=True)
    rid = store.ingest_run(log).run_id
    store.files("steps", [rid])[0].unlink()
    r = store.ingest_run(log)
    assert (r.action, r.reason) == ("parsed", "stored parts missing")
    assert_same_run(store.load(rid), load_run(log.resolve()))


def test_leftovers_of_a_killed_writer_are_swept(tmp_path) -> None:
    log = tmp_path / "a.log"
    log.write_text("\n".join(small_log(30, 1)) + "\n")
    store = open_store(tmp_path / "s", create=True)
    rid = store.ingest_run(log).run_id
    orphan = layout.part_path(store.root, "steps", rid, 99)
    orphan.write_bytes(b"not parquet")
    tmp = layout.tmp_dir(store.root) / f"{rid}.123.abcd.parquet"
    tmp.write_bytes(b"half")
    other = layout.tmp_dir(store.root) / "rother.123.abcd.parquet"
    other.write_bytes(b"another run's writer at work")
    assert len(store.files("steps", [rid])) == 1  # readers go by the committed version
    store.ingest_run(log)
    assert not orphan.exists() and not tmp.exists()
    assert other.exists()


def test_concurrent_ingests_of_the_same_runs_leave_a_consistent_store(tmp_path) -> None:
    dirs = []
    for i in range(3):
        d = tmp_path / "runs" / f"run{i}"
        d.mkdir(parents=True)
        (d / "log_kronecker_adaptive.txt").write_text(
            "\n".join(small_log(150 + 20 * i, 2, ponder_start=50)) + "\n"
        )
        dirs.append(d)
    root = tmp_path / "s"
    reports = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            reports.append(ingest_paths(root, dirs, workers=2, use_processes=False))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    # Meanwhile one log grows: whichever writer gets it next must append, not mix.
    with (dirs[0] / "log_kronecker_adaptive.txt").open("a") as fh:
        fh.write(step_line(170) + "\n" + step_line(171) + "\n")
    for t in threads:
        t.join()
    assert not errors
    assert all(not r.failures for r in reports)
    store = open_store(root)
    report = store.ingest(dirs, use_processes=False)  # catch the growth if all came before it
    assert not report.failures
    assert sorted(store.runs()["name"].to_list()) == ["run0", "run1", "run2"]
    for d in dirs:
        assert_same_run(store.load(run_id_for(d.resolve())), load_run(d.resolve()))
    assert store_files(root) == referenced_files(store)
    assert not list((root / "_locks").iterdir())


def test_two_processes_ingesting_the_same_runs_leave_a_consistent_store(tmp_path) -> None:
    dirs = []
    for i in range(3):
        d = tmp_path / "runs" / f"run{i}"
        d.mkdir(parents=True)
        (d / "log_kronecker_adaptive.txt").write_text(
            "\n".join(small_log(200, 2, ponder_start=50)) + "\n"
        )
        dirs.append(str(d))
    root = tmp_path / "s"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    cmd = [sys.executable, "-m", "ponder_parse.cli", "ingest", *dirs, "--store", str(root)]
    procs = [
        subprocess.Popen([*cmd, "--workers", "1"], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    store = open_store(root)
    assert store.runs()["name"].sort().to_list() == ["run0", "run1", "run2"]
    assert store.runs()["version"].to_list() == [1, 1, 1]  # each run written once
    for d in dirs:
        assert_same_run(store.load(run_id_for(Path(d).resolve())), load_run(Path(d).resolve()))
    assert store_files(root) == referenced_files(store)


def test_processes_ingest_in_parallel(tmp_path) -> None:
    dirs = []
    for i in range(2):
        d = tmp_path / "runs" / f"p{i}"
        d.mkdir(parents=True)
        (d / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(40, 1)) + "\n")
        dirs.append(d)
    seen = []
    report = ingest_paths(tmp_path / "s", dirs, workers=2, progress=lambda *a: seen.append(a[:2]))
    assert report.counts() == {"new": 2}
    assert sorted(seen) == [(1, 2), (2, 2)]


def test_locks_wait_for_live_writers_and_take_over_dead_ones(tmp_path) -> None:
    log = tmp_path / "a.log"
    log.write_text("\n".join(small_log(20, 1)) + "\n")
    root = tmp_path / "s"
    rid = run_id_for(log.resolve())
    lock = layout.lock_path(root, rid)
    lock.parent.mkdir(parents=True)
    import socket

    # A live holder (this very process): the ingest gives up after its timeout.
    lock.write_text(json.dumps({"token": "x", "host": socket.gethostname(), "pid": os.getpid()}))
    r = store_ingest.ingest_run(root, log, lock_timeout=0.2)
    assert r.action == "failed" and "locked" in (r.reason or "")
    # A dead one: taken over.
    lock.write_text(json.dumps({"token": "y", "host": socket.gethostname(), "pid": 2**22 + 7}))
    assert store_ingest.ingest_run(root, log, lock_timeout=5).action == "new"
    assert not lock.exists()


# --- the store folder ---------------------------------------------------------------------


def test_default_store_is_in_the_user_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("PONDER_STORE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert layout.default_store_dir() == tmp_path / "cache" / "ponder-parse" / "store"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert layout.default_store_dir() == tmp_path / "home" / ".cache" / "ponder-parse" / "store"
    monkeypatch.setenv("PONDER_STORE", "~/lab-store")
    assert layout.default_store_dir() == tmp_path / "home" / "lab-store"


def test_a_folder_that_is_not_a_store_is_refused(tmp_path) -> None:
    with pytest.raises(StoreError, match="not a run store"):
        open_store(tmp_path)
    store = open_store(tmp_path / "new", create=True)
    assert store.runs().height == 0
    assert store.scan("steps").collect().columns[:2] == ["run_id", "step"]
    assert query(store, "SELECT count(*) AS n FROM steps")["n"].item() == 0


def test_remove_forgets_a_run(tmp_path) -> None:
    log = tmp_path / "a.log"
    log.write_text("\n".join(small_log(20, 1)) + "\n")
    store = open_store(tmp_path / "s", create=True)
    rid = store.ingest_run(log).run_id
    assert store.remove(rid)
    assert store.runs().height == 0 and store_files(store.root) == set()
    assert not store.remove(rid)


def test_the_store_marker_appears_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second writer creating the same store at the same moment must never read a
    half-written marker ("unreadable store marker"): while the marker's bytes are being
    written, the marker itself does not exist yet."""
    from ponder_parse.files.store import layout

    root = tmp_path / "s"
    seen: list[bool] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        seen.append((root / layout.MARKER).exists())
        real_fsync(fd)

    monkeypatch.setattr(layout.os, "fsync", fsync)
    layout.ensure_store(root)
    assert seen and seen[0] is False
    layout.check_store(root)
    assert [p.name for p in root.iterdir()] == [layout.MARKER]


# --- runs opened lazily -------------------------------------------------------------------


def test_stored_runs_read_no_table_until_one_is_used(sample_store) -> None:
    from ponder_parse.files.store import reader

    store, sample_runs = sample_store
    reader.TABLE_CACHE.clear()
    before = reader.TABLE_CACHE.reads
    runs = store.stored_runs()
    assert len(runs) == 11 and [r.name for r in runs] == sorted(r.name for r in runs)
    copies = [r.replaced(meta=dict(r.meta)) for r in runs]
    assert reader.TABLE_CACHE.reads == before and not reader.TABLE_CACHE.run_ids()
    run = copies[0]
    full = load_run(Path(str(run.source)).parent)
    assert run.n_steps == full.n_steps and run.meta == full.meta and run.hparams == full.hparams
    assert reader.TABLE_CACHE.reads == before  # n_steps comes from the row
    assert_frame_equal(run.steps, full.steps, check_exact=True)
    assert reader.TABLE_CACHE.run_ids() == {run.run_id} and run.loaded_tables() == ["steps"]
    assert_frame_equal(run.traces, full.traces, check_exact=True)
    assert reader.TABLE_CACHE.reads == before + 2
    run.steps  # noqa: B018 - a second use is served from memory
    assert reader.TABLE_CACHE.reads == before + 2
    # What the store computed at ingest is what the analysis says of the loaded run.
    s = run_summary(full)
    assert run.stored_summary == {k: v for k, v in s.items() if k != "run"}
    assert summaries_facts(full) == run.stored_facts


def test_a_stored_run_asked_for_two_columns_reads_only_those(sample_store) -> None:
    from ponder_parse.files.store import reader

    store, _ = sample_store
    reader.TABLE_CACHE.clear()
    run = next(r for r in store.stored_runs() if r.n_steps > 10)
    full = store.load(run.run_id)
    before, bytes_before = reader.TABLE_CACHE.reads, reader.TABLE_CACHE.read_bytes
    got = run.table("steps", ["lm_loss", "step", "no_such_column"])
    assert got.columns == ["lm_loss", "step"]  # in the order asked; a missing one left out
    assert_frame_equal(got, full.table("steps", ["lm_loss", "step"]), check_exact=True)
    assert_frame_equal(got, full.steps.select("lm_loss", "step"), check_exact=True)
    # One read, of two columns: the whole table stayed on disk.
    assert reader.TABLE_CACHE.reads == before + 1
    read = reader.TABLE_CACHE.read_bytes - bytes_before
    assert read == got.estimated_size() < full.steps.estimated_size() / 4
    assert reader.TABLE_CACHE.peek((str(store.root), run.run_id, run.version, "steps")) is None
    assert run.loaded_tables() == ["steps"]
    run.table("steps", ["lm_loss", "step", "no_such_column"])  # asked again: from memory
    assert reader.TABLE_CACHE.reads == before + 1
    # Fewer of those columns are cut from them, without a read; others are read.
    assert_frame_equal(run.table("steps", ["step"]), full.steps.select("step"))
    assert reader.TABLE_CACHE.reads == before + 1
    run.table("steps", ["step", "avg_k"])
    assert reader.TABLE_CACHE.reads == before + 2
    # Once the whole table is in memory, a column set is cut from it without a read.
    run.steps  # noqa: B018
    assert reader.TABLE_CACHE.reads == before + 3
    assert_frame_equal(run.table("steps", ["grad_norm"]), full.steps.select("grad_norm"))
    assert reader.TABLE_CACHE.reads == before + 3
    with pytest.raises(ValueError, match="unknown table"):
        run.table("nope", ["step"])


def test_a_stored_run_knows_its_columns_without_reading_a_table(sample_store) -> None:
    """Pickers and the "printed as 0 on every line" notes of a stored run come from its
    row: the same answers as the parsed run, no table read."""
    from ponder_parse.analysis import catalog
    from ponder_parse.files.store import reader

    store, _ = sample_store
    reader.TABLE_CACHE.clear()
    before = reader.TABLE_CACHE.reads
    runs = store.stored_runs()
    flat = {}
    for run in runs:
        full = store.load(run.run_id)  # read apart from the cache
        assert run.stored_counts is not None
        assert run.column_counts() == full.column_counts()
        flat[run.name] = catalog.flat_metrics(run)
        assert flat[run.name] == catalog.flat_metrics(full)
        assert catalog.flat_metrics(run, 10**6) == frozenset()
    assert reader.TABLE_CACHE.reads == before and not any(r.loaded_tables() for r in runs)
    assert {n for n, f in flat.items() if "layers.ent" in f} == {
        n for n in flat if n.startswith("regime=real")
    }


def test_a_stored_run_keeps_its_phases(sample_store) -> None:
    """The phases a chart bands and the phase pages compare (no edits) are in the row."""
    from ponder_parse.analysis import phases

    store, _ = sample_store
    for run in store.stored_runs():
        assert run.stored_phases is not None
        want = phases.phases(store.load(run.run_id))
        assert_frame_equal(run.stored_phases, want.select(list(phases.PHASES_SCHEMA)))
        assert run.loaded_tables() == []


def test_a_row_written_before_column_counts_still_opens(sample_store, tmp_path: Path) -> None:
    """A store written by an older version lacks the row's `columns`: it opens all the
    same, that run's counts are taken from its tables, the others' from their rows."""
    store, _ = sample_store
    copy = tmp_path / "store"
    shutil.copytree(store.root, copy)
    old = open_store(copy)
    first, *rest = old.stored_runs()
    row_file = copy / "runs" / f"run_id={first.run_id}" / "part-0.parquet"
    pl.read_parquet(row_file, hive_partitioning=False).drop("columns").write_parquet(row_file)
    assert "columns" not in pl.read_parquet_schema(row_file)
    runs = {r.run_id: r for r in old.stored_runs()}
    assert len(runs) == 1 + len(rest)
    assert old.runs().filter(pl.col("run_id") == first.run_id)["columns"].to_list() == [None]
    assert runs[first.run_id].stored_counts is None
    assert runs[first.run_id].column_counts() == old.load(first.run_id).column_counts()
    assert all(runs[r.run_id].stored_counts == r.stored_counts is not None for r in rest)


def test_column_reads_keep_to_the_cache_budget(sample_store) -> None:
    from ponder_parse.files.store.reader import TableCache

    store, _ = sample_store
    runs = store.stored_runs()
    one = runs[0].table("steps", ["step", "lm_loss"]).estimated_size()
    cache = TableCache(budget=int(one * 2.5))
    for r in runs[:6]:
        key = (str(store.root), r.run_id, r.version, "steps", ("step", "lm_loss"))
        assert cache.get(key, store._read_table).columns == ["step", "lm_loss"]
    assert cache.reads == 6 and cache.nbytes <= cache.budget


def summaries_facts(run: Run) -> list[list[str]]:
    from ponder_parse.analysis.summaries import run_facts

    return [list(r) for r in run_facts(run).rows()]


def test_the_table_cache_keeps_to_its_budget(sample_store) -> None:
    from ponder_parse.files.store.reader import TableCache

    store, _ = sample_store
    runs = store.stored_runs()
    one = runs[0].steps.estimated_size()
    cache = TableCache(budget=int(one * 2.5))
    for r in runs[:6]:
        got = cache.get((str(store.root), r.run_id, r.version, "steps"), store._read_table)
        assert got.height == r.n_steps
    assert cache.reads == 6 and cache.nbytes <= cache.budget
    assert len(cache.run_ids()) <= 3  # the least recently used went first
    assert runs[5].run_id in cache.run_ids()


def test_replaced_is_a_shallow_copy_with_fields_changed() -> None:
    run = Run(name="a", hparams={"seed": 1})
    other = run.replaced(name="b", hparams={"seed": 2})
    assert (run.name, run.hparams, other.name, other.hparams) == (
        "a",
        {"seed": 1},
        "b",
        {"seed": 2},
    )
    assert other.steps is run.steps
    with pytest.raises(TypeError, match="no field"):
        run.replaced(nmae="c")
