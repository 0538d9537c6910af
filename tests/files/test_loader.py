"""Loading runs from disk: discovery, compression, stats.json, metadata and bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from trainer_lines import INIT_SMOLLM, layer_line, small_log, step_line

import ponder_parse
from ponder_parse import RunLoadError, load_run, load_runs

STATS = {
    "step": 29,
    "lm_loss": 2.98,
    "mtp_loss": 3.1,
    "aux_loss": 0.002,
    "total_ponder": 0.0001,
    "delta_ce": 0.04,
    "delta_h": -0.03,
    "deadband_active": True,
    "deadband_steps_since_trigger": 4,
    "layers": [
        {
            "k": 1.38,
            "ent": 3.14,
            "p_loss": 4e-05,
            "k_exec": 2,
            "s_final": 0.042,
            "s_trace": [1.0, 0.82, 0.23, 0.04],
            "p_mean": 0.82,
            "p_std": 0.12,
            "d_rel": 0.043,
            "ponder_signal": 0.031,
            "avg_exec_token": 1.41,
            "p95_exec_token": 2.0,
            "frac_ge2": 0.41,
            "frac_ge3": 0.053,
            "frac_ge4": 0.001,
            "h_diff": 0.031,
            "p_diff": -0.41,
            "p_near_clamp": 0.032,
            "wasted_compute": 0.5,
        },
    ],
}


def test_run_folder_with_stats(write_log) -> None:
    d = write_log(small_log(30, 2), name="target_k=2.4,seed=1")
    (d / "stats.json").write_text(json.dumps(STATS))
    run = load_run(d)
    assert run.name == "target_k=2.4,seed=1" and run.variant == "model3b"
    assert run.n_steps == 30 and run.last_step == 29
    assert run.snapshot is not None and run.snapshot["lm_loss"] == 2.98
    sl = run.snapshot_layers
    assert sl["s_trace"][0].to_list() == [1.0, 0.82, 0.23, 0.04]
    assert sl["wasted_compute"][0] == 0.5
    assert run.meta["params"] == 451234567 and run.meta["n_layers"] == 2 and run.meta["kmax"] == 4
    assert run.problems.is_empty()


def test_half_written_stats_json_is_a_problem_not_an_error(write_log) -> None:
    d = write_log(small_log(12, 1))
    (d / "stats.json").write_text(json.dumps(STATS)[:57])
    run = load_run(d)
    assert run.snapshot is None and run.n_steps == 12
    assert "half-written" in run.problems.filter(pl.col("text") == "stats.json")["reason"][0]


def test_single_log_file_and_gzip(tmp_path) -> None:
    text = "\n".join(small_log(20, 1)) + "\n"
    p = tmp_path / "my_run.log.gz"
    p.write_bytes(gzip.compress(text.encode()))
    run = load_run(p)
    assert run.name == "my_run" and run.n_steps == 20
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(gzip.compress(text.encode())[:-30])
    run = load_run(cut)
    assert 0 < run.n_steps <= 20
    assert run.problems["reason"].str.contains("ends early").any()


def test_smollm_variant_and_target_k_from_ctrl_err(write_log) -> None:
    lines = [INIT_SMOLLM] + [
        step_line(s, variant="smollm", ctrl_err=1.38 - 2.4, avgs=(0.01, 1.4, 1.38, 0.02))
        for s in range(5)
    ]
    run = load_run(write_log(lines, filename="train_output.txt"))
    assert run.variant == "smollm"
    assert run.meta["target_k"] == pytest.approx(2.4) and run.meta["target_k_source"] == "ctrl_err"
    assert run.meta["K"] == 1536


def test_bad_inputs_never_raise(write_log, tmp_path) -> None:
    empty = write_log(b"", name="empty")
    assert load_run(empty).n_steps == 0
    binary = write_log(bytes(range(256)) * 50, name="binary")
    run = load_run(binary)
    assert run.n_steps == 0 and not run.problems.is_empty()
    assert run.problems["reason"].str.contains("no step lines").any()
    bad_utf8 = write_log(
        ("\n".join(small_log(10, 1)) + "\n").encode() + b"\xff\xfe junk\n", name="utf8"
    )
    run = load_run(bad_utf8)
    assert run.n_steps == 10
    assert run.problems["reason"].str.contains("invalid UTF-8").any()


def test_missing_paths_raise_a_clear_error(tmp_path) -> None:
    with pytest.raises(RunLoadError, match="no such file"):
        load_run(tmp_path / "nope")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(RunLoadError, match="no trainer log"):
        load_run(tmp_path / "empty_dir")


def test_load_runs_expands_sweep_folders_and_collects_failures(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    for name in ("a,seed=0", "a,seed=1"):
        d = sweep / name
        d.mkdir(parents=True)
        (d / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(15, 1)) + "\n")
    (sweep / "notes").mkdir()
    runs = load_runs([sweep, tmp_path / "missing"])
    assert [r.name for r in runs] == ["a,seed=0", "a,seed=1"]
    assert len(runs.failures) == 1 and "no such" in runs.failures[0].reason
    assert isinstance(runs, list) and runs.by_name()["a,seed=1"].n_steps == 15


def test_load_runs_side_by_side_keeps_order_and_isolates_failures(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs are parsed concurrently; the result keeps the folders' order whatever order
    they finish in, and a run that blows up is a failure, not an exception."""
    from ponder_parse.files import loader

    sweep = tmp_path / "sweep"
    for i, steps in enumerate((400, 5, 300, 8, 200, 12)):
        d = sweep / f"run{i}"
        d.mkdir(parents=True)
        (d / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(steps, 2)) + "\n")
    real = loader.load_run

    def flaky(path):
        if Path(path).name == "run3":
            raise ValueError("disk on fire")
        return real(path)

    monkeypatch.setattr(loader, "load_run", flaky)
    runs = load_runs([sweep])
    assert [r.name for r in runs] == ["run0", "run1", "run2", "run4", "run5"]
    assert [r.n_steps for r in runs] == [400, 5, 300, 200, 12]
    assert [(f.path.name, "disk on fire" in f.reason) for f in runs.failures] == [("run3", True)]


def test_duplicate_run_names_are_disambiguated(tmp_path) -> None:
    for parent in ("sweepA", "sweepB"):
        d = tmp_path / parent / "baseline"
        d.mkdir(parents=True)
        (d / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(5, 1)) + "\n")
    runs = load_runs([tmp_path / "sweepA", tmp_path / "sweepB"])
    assert sorted(r.name for r in runs) == ["sweepA/baseline", "sweepB/baseline"]


def test_public_api_names() -> None:
    for name in ("load_run", "load_runs", "Run", "RunLoadError"):
        assert hasattr(ponder_parse, name)
    run = ponder_parse.Run(name="x")
    for table in (
        "steps",
        "layers",
        "traces",
        "quality",
        "lr_checks",
        "events",
        "generations",
        "problems",
    ):
        assert getattr(run, table).is_empty()


def test_meta_restarts_and_deadband(write_log) -> None:
    lines = [step_line(s) for s in range(1, 12)]
    lines += [
        "",
        "🔒 [DEADBAND ENGAGED] λ_p=2.51e-02 stable for 100 steps",
        "   Controller now uses asymmetric bounds: TARGET_K=1.30 ± [-2.0%, +5.0%]",
    ]
    lines += ["⏩ Resuming from step 10 (loss: 3.0)"] + [step_line(s) for s in range(10, 14)]
    lines += [layer_line(0)]
    run = load_run(write_log(lines))
    assert run.meta["restarts"] == 1 and run.meta["resume_steps"] == [10]
    assert run.meta["deadband_step"] == 11 and run.meta["target_k"] == 1.3
    assert run.meta["target_k_source"] == "deadband"


def test_decompression_is_capped(tmp_path) -> None:
    """Past the byte cap a log is refused, not cut: a partial run would pass for a whole one."""
    from ponder_parse.files.limits import InputTooLarge, LogLimits
    from ponder_parse.files.loader import open_bytes

    p = tmp_path / "bomb.log.gz"
    p.write_bytes(gzip.compress(b"x" * 5_000_000))
    with pytest.raises(InputTooLarge, match="larger than"):
        open_bytes(p, LogLimits(max_lines=10**9, max_bytes=1_000_000))


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_a_wide_encoded_txt_log_is_found_by_its_content(tmp_path: Path, codec: str) -> None:
    """A `.txt` not named like a log counts as one by its lines, whatever encoding a tool
    re-saved it in; it then loads like the UTF-8 original."""
    from trainer_lines import small_log

    from ponder_parse.files.discovery import find_run_dirs, is_log_file

    text = "\n".join(small_log()) + "\n"
    d = tmp_path / "run"
    d.mkdir()
    (d / "train_output.txt").write_bytes(text.encode(codec))
    assert is_log_file(d / "train_output.txt")
    assert find_run_dirs(tmp_path) == [d]
    assert load_run(d).n_steps == 30
    (d / "notes.txt").write_bytes("just notes\n".encode(codec))
    assert not is_log_file(d / "notes.txt")
