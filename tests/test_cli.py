"""The `ponder-parse` command over the same loader as the app."""

from __future__ import annotations

import io

import polars as pl
from trainer_lines import small_log

from ponder_parse.cli import main


def test_summary_prints_one_line_per_run(write_log, capsys) -> None:
    a = write_log(small_log(30, 1), name="a")
    b = write_log(small_log(12, 1), name="b")
    assert main(["summary", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "run",
        "variant",
        "steps",
        "last_step",
        "final_lm",
        "restarts",
        "problems",
    ]
    assert out[1].split()[:4] == ["a", "model3b", "30", "29"]
    assert out[2].split()[:4] == ["b", "model3b", "12", "11"]


def test_summary_reports_missing_paths(tmp_path, capsys) -> None:
    assert main(["summary", str(tmp_path / "missing")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_export_writes_every_table(write_log, tmp_path) -> None:
    a = write_log(small_log(60, 2), name="a")
    out = tmp_path / "out"
    assert main(["export", str(a), "--out", str(out), "--format", "parquet"]) == 0
    steps = pl.read_parquet(out / "steps.parquet")
    assert steps.height == 60
    assert pl.read_parquet(out / "traces.parquet")["s_trace"].dtype == pl.List(pl.Float64)
    assert main(["export", str(a), "--out", str(tmp_path / "csv"), "--format", "csv"]) == 0
    traces = pl.read_csv(tmp_path / "csv" / "traces.csv")
    assert traces["s_trace"][0] == "[1.0, 0.82, 0.23, 0.04]"
    assert {p.stem for p in (tmp_path / "csv").iterdir()} >= {
        "steps",
        "layers",
        "quality",
        "events",
        "problems",
    }


def test_ingest_runs_and_query_a_store(write_log, tmp_path, capsys) -> None:
    a = write_log(small_log(30, 1), name="a")
    b = write_log(small_log(12, 1), name="b")
    store = str(tmp_path / "store")
    # One missing path fails, is reported, and does not stop the others.
    code = main(["ingest", str(a), str(b), str(tmp_path / "missing"), "--store", store])
    assert code == 1
    err = capsys.readouterr().err
    assert "missing: no such file" in err and "2 new" in err and "1 failed" in err
    assert main(["ingest", str(a), str(b), "--store", store, "--workers", "2"]) == 0
    assert "2 unchanged" in capsys.readouterr().err

    assert main(["runs", "--store", store, "--format", "csv"]) == 0
    listed = pl.read_csv(io.StringIO(capsys.readouterr().out))
    assert sorted(listed["name"].to_list()) == ["a", "b"]
    assert main(["runs", "--store", store, "--where", "n_steps > 20", "--format", "csv"]) == 0
    assert pl.read_csv(io.StringIO(capsys.readouterr().out))["name"].to_list() == ["a"]

    sql = "SELECT r.name, max(s.step) AS last FROM steps s JOIN runs r USING (run_id) GROUP BY 1 ORDER BY 1"
    assert main(["query", "--store", store, sql, "--format", "csv"]) == 0
    out = pl.read_csv(io.StringIO(capsys.readouterr().out))
    assert out.rows() == [("a", 29), ("b", 11)]
    assert main(["query", "--store", store, "SELECT nope FROM steps"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["runs", "--store", str(tmp_path)]) == 1
    assert "not a run store" in capsys.readouterr().err


def test_ingest_uses_the_cache_store_by_default(write_log, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("PONDER_STORE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a = write_log(small_log(20, 1), name="a")
    assert main(["ingest", str(a), "--workers", "1"]) == 0
    assert (tmp_path / "cache" / "ponder-parse" / "store" / "steps").is_dir()
    assert main(["runs", "--columns", "name,health", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["name,health", "a,healthy"]


def test_ingest_fsync_flushes_every_part(write_log, tmp_path, monkeypatch, capsys) -> None:
    import os

    from ponder_parse.files.store import layout

    a = write_log(small_log(30, 1), name="a")
    flushes = {"n": 0}
    real = os.fsync

    def fsync(fd: int) -> None:
        flushes["n"] += 1
        real(fd)

    monkeypatch.setattr(layout.os, "fsync", fsync)
    assert main(["ingest", str(a), "--store", str(tmp_path / "s1"), "--workers", "1"]) == 0
    plain = flushes["n"]
    flushes["n"] = 0
    assert (
        main(["ingest", str(a), "--store", str(tmp_path / "s2"), "--workers", "1", "--fsync"]) == 0
    )
    assert "1 new" in capsys.readouterr().err
    # Without --fsync: the store marker (file, folder) and the row (file, folder); with it,
    # every part file and its folder as well.
    assert plain == 4 and flushes["n"] > plain + 4
