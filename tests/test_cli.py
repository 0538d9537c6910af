"""The `ponder-parse` command over the same loader as the app."""

from __future__ import annotations

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
