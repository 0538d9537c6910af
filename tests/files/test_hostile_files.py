"""Hostile and damaged files on disk: inputs larger than the machine can hold, special
files where stats.json or a config file belongs, snapshots no column can hold, and
folders the loader may not enter. Every case loads what it can and says the rest."""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import tarfile
import threading
import zipfile
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from trainer_lines import small_log

from ponder_parse import RunLoadError, load_run, load_runs
from ponder_parse.files import limits
from ponder_parse.files.limits import InputTooLarge, LineCounter, LogLimits
from ponder_parse.files.loader import WalkCache, expand_paths, open_bytes
from ponder_parse.files.uploads import ArchiveLimits, materialize_uploads
from ponder_parse.run import Run

SMALL = LogLimits(max_lines=10_000, max_bytes=50_000_000)


@pytest.fixture
def small_caps(monkeypatch: pytest.MonkeyPatch) -> LogLimits:
    monkeypatch.setenv(limits.ENV_MAX_LINES, str(SMALL.max_lines))
    monkeypatch.setenv(limits.ENV_MAX_BYTES, str(SMALL.max_bytes))
    return SMALL


def problem_reasons(run) -> list[str]:
    return run.problems["reason"].to_list()


# --- caps sized to the machine --------------------------------------------------------


def test_default_caps_follow_the_machine_and_the_environment() -> None:
    mem = limits.machine_memory()
    caps = limits.log_limits({})
    assert caps.max_lines == int(mem * limits.MEMORY_FRACTION) // limits.BYTES_PER_LINE
    assert caps.max_bytes == min(int(mem * limits.MEMORY_FRACTION), limits.MAX_LOG_BYTES_CEILING)
    got = limits.log_limits({limits.ENV_MAX_LINES: "2M", limits.ENV_MAX_BYTES: "512MiB"})
    assert got == LogLimits(max_lines=2 * 2**20, max_bytes=512 * 2**20)
    assert limits.log_limits({limits.ENV_MAX_LINES: "lots"}) == caps  # ignored, not fatal


@pytest.mark.parametrize(
    ("chunks", "lines"),
    [
        ([b"a\nb\n"], 2),
        ([b"a\r\nb\r\n"], 2),
        ([b"a\rb\rc"], 2),
        ([b"a\r", b"\nb\n"], 2),  # a CRLF split between chunks is one break
        ([b"\n" * 1000], 1000),
    ],
)
def test_line_counter_counts_as_the_parser_splits(chunks: list[bytes], lines: int) -> None:
    counter = LineCounter()
    for c in chunks:
        counter.feed(c)
    assert counter.lines == lines


def test_a_gzip_of_newlines_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """62 KB of gzip held 64 M newlines: 7.9 GB once parsed. Counting stops at the cap."""
    p = tmp_path / "log_bomb.txt.gz"
    p.write_bytes(gzip.compress(b"\n" * 64_000_000, compresslevel=9))
    assert p.stat().st_size < 100_000
    caps = LogLimits(max_lines=1_000_000, max_bytes=4 * 2**30)
    with pytest.raises(InputTooLarge, match="more than 1,000,000 lines") as err:
        open_bytes(p, caps)
    assert str(tmp_path) not in str(err.value) and "PONDER_MAX_LOG_LINES" in str(err.value)


def test_a_too_long_log_is_a_listed_failure(tmp_path: Path, small_caps: LogLimits) -> None:
    good = tmp_path / "sweep" / "good"
    good.mkdir(parents=True)
    (good / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(20, 2)) + "\n")
    for name, data in (
        ("plain", b"\n" * 20_000),
        ("gz", gzip.compress(b"\n" * 20_000)),
        ("crs", b"\r" * 20_000),
    ):
        d = tmp_path / "sweep" / name
        d.mkdir()
        suffix = ".txt.gz" if name == "gz" else ".txt"
        (d / f"log_kronecker_adaptive{suffix}").write_bytes(data)
    runs = load_runs([tmp_path / "sweep"])
    assert [r.name for r in runs] == ["good"]
    assert sorted(f.path.name for f in runs.failures) == ["crs", "gz", "plain"]
    for f in runs.failures:
        assert "more than 10,000 lines" in f.reason and str(tmp_path) not in f.reason
    with pytest.raises(RunLoadError, match="refused"):
        load_run(tmp_path / "sweep" / "plain")


def test_a_concatenated_gzip_reads_every_member(tmp_path: Path) -> None:
    lines = small_log(20, 2)
    half = len(lines) // 2
    p = tmp_path / "log_two.txt.gz"
    p.write_bytes(
        gzip.compress(("\n".join(lines[:half]) + "\n").encode())
        + gzip.compress(("\n".join(lines[half:]) + "\n").encode())
    )
    run = load_run(p)
    assert run.n_steps == 20 and run.problems.is_empty()


# --- archives: the caps hold inside members ---------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_line_cap_applies_inside_archive_members(tmp_path: Path) -> None:
    """The bomb ratio sees compressed bytes only: 1 MB of zip can hold 1 G newlines."""
    log = ("\n".join(small_log(20, 2)) + "\n").encode()
    lims = ArchiveLimits(max_member_lines=5_000)
    for kind, pack in (("zip", _zip), ("tar.gz", _tar_gz)):
        data = pack({"s/ok/log_a.txt": log, "s/bomb/log_a.txt": b"\n" * 3_000_000})
        result = materialize_uploads([(f"s.{kind}", data)], tmp_path / kind, lims)
        assert [p.name for p in result.run_dirs] == ["ok"], kind
        text = " ".join(result.messages)
        assert "more than 5,000 lines" in text and "s/bomb/log_a.txt" in text, text
        assert not (tmp_path / kind / "s" / "s" / "bomb" / "log_a.txt").exists()


def test_skipped_tar_members_count_against_the_bomb_ratio(tmp_path: Path) -> None:
    """A member skipped as "not a log" is still decompressed to pass it in a .tar.gz;
    those bytes count, so a 5 MB archive cannot cost gigabytes of inflating."""
    log = ("\n".join(small_log(20, 2)) + "\n").encode()
    data = _tar_gz({"s/bomb.bin": b"\0" * 400_000_000, "s/run/log_a.txt": log})
    assert len(data) < 1_000_000
    lims = ArchiveLimits(ratio_floor_bytes=1_000_000)
    result = materialize_uploads([("s.tar.gz", data)], tmp_path / "up", lims)
    assert result.run_dirs == []
    assert any("expands more than" in m for m in result.messages), result.messages


def test_skipped_zip_members_are_never_decompressed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ("\n".join(small_log(20, 2)) + "\n").encode()
    data = _zip({"s/ckpt.pt": b"\0" * 10_000_000, "s/run/log_a.txt": log})
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: str | zipfile.ZipInfo, *args: Any, **kwargs: Any) -> Any:
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    result = materialize_uploads([("s.zip", data)], tmp_path / "up")
    assert [p.name for p in result.run_dirs] == ["run"]
    assert opened == ["s/run/log_a.txt"]


# --- stats.json and config files ----------------------------------------------------------------


def _run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir(exist_ok=True)
    (d / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(20, 2)) + "\n")
    return d


def test_a_fifo_for_stats_json_does_not_hang(tmp_path: Path) -> None:
    d = _run_dir(tmp_path)
    os.mkfifo(d / "stats.json")
    os.mkfifo(d / "config.json")
    got: list[Run] = []
    worker = threading.Thread(target=lambda: got.append(load_run(d)), daemon=True)
    worker.start()
    worker.join(30)
    if worker.is_alive():  # release the reader blocked on the FIFO before failing
        for fifo in ("stats.json", "config.json"):
            with suppress(OSError):
                os.close(os.open(d / fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO as stats.json hung the load")
    run = got[0]
    assert run.n_steps == 20 and run.snapshot is None
    reasons = " ".join(problem_reasons(run))
    assert "stats.json ignored: not a regular file" in reasons
    assert "config.json: ignored, not a regular file" in reasons


def test_a_link_to_dev_zero_is_not_read(tmp_path: Path) -> None:
    d = _run_dir(tmp_path)
    (d / "stats.json").symlink_to("/dev/zero")
    (d / "config.yaml").symlink_to("/dev/zero")
    run = load_run(d)
    assert run.n_steps == 20 and run.snapshot is None
    reasons = " ".join(problem_reasons(run))
    assert "stats.json ignored: not a regular file" in reasons
    assert "config.yaml: ignored, not a regular file" in reasons


def test_an_oversized_stats_json_is_set_aside(tmp_path: Path) -> None:
    d = _run_dir(tmp_path)
    (d / "stats.json").write_bytes(b" " * (limits.MAX_SNAPSHOT_BYTES + 1))
    run = load_run(d)
    assert run.n_steps == 20 and run.snapshot is None
    assert any("stats.json ignored: larger than" in r for r in problem_reasons(run))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"layers": [{"k_exec": 1e30, "k": 1.2}, {"k_exec": 3, "k": 1.1}]}', "`k_exec`"),
        ('{"layers": [{"k_exec": ' + "9" * 400 + ', "k": 1.2}]}', "`k_exec`"),
        ('{"step": ' + "9" * 5000 + "}", "stats.json ignored"),
        ('{"layers": [{"k": "x", "s_trace": [1, "a", 1e999]}]}', None),
        ('{"layers": {"0": 1}, "step": [1, 2]}', None),
    ],
)
def test_a_bad_stats_json_is_a_problem_of_a_run_that_loads(
    tmp_path: Path, content: str, expected: str | None
) -> None:
    d = _run_dir(tmp_path)
    (d / "stats.json").write_text(content)
    run = load_run(d)
    assert run.n_steps == 20
    rows = run.problems.filter(pl.col("text") == "stats.json")
    if expected is not None:
        assert rows.height >= 1 and expected in " ".join(rows["reason"]), rows
    assert str(tmp_path) not in " ".join(run.problems["reason"])


def test_out_of_range_snapshot_values_keep_the_others(tmp_path: Path) -> None:
    d = _run_dir(tmp_path)
    (d / "stats.json").write_text(
        json.dumps({"layers": [{"k_exec": 1e30, "k": 1.2}, {"k_exec": 3, "k": 1.1}]})
    )
    run = load_run(d)
    assert run.snapshot_layers["k_exec"].to_list() == [None, 3]
    assert run.snapshot_layers["k"].to_list() == [1.2, 1.1]


def test_a_snapshot_with_a_bom_is_read(tmp_path: Path) -> None:
    d = _run_dir(tmp_path)
    (d / "stats.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"step": 19}).encode())
    run = load_run(d)
    assert run.snapshot == {"step": 19}


def test_a_bad_config_file_is_a_problem_of_a_run_that_loads(tmp_path: Path) -> None:
    d = _run_dir(tmp_path)
    (d / "config.json").write_text("[" * 100_000)
    (d / "config.yaml").write_text("a: &a [*a]\n" + "b: " + "[" * 50_000 + "\n")
    run = load_run(d)
    assert run.n_steps == 20
    reasons = " ".join(problem_reasons(run))
    assert "config.json: ignored" in reasons and str(tmp_path) not in reasons


# --- filesystem errors are listed failures ------------------------------------------------------


@pytest.fixture
def locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A sweep with one readable run, one folder that can be listed but not entered, and
    one that cannot be listed at all.

    The modes are set for real; run as root (who reads every folder whatever its mode),
    the same refusals are made by the OS calls the loader goes through.
    """
    sweep = tmp_path / "sweep"
    good = sweep / "good"
    good.mkdir(parents=True)
    (good / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(20, 2)) + "\n")
    no_enter = sweep / "no_enter"
    no_list = sweep / "no_list"
    for d in (no_enter, no_list):
        d.mkdir()
        (d / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(20, 2)) + "\n")
    no_enter.chmod(0o600)  # readable entries, but no search permission
    no_list.chmod(0o300)  # enterable, not listable
    if os.geteuid() == 0:
        _deny(monkeypatch, no_enter, no_list)
    yield sweep
    for d in (no_enter, no_list):
        d.chmod(0o755)


def _deny(monkeypatch: pytest.MonkeyPatch, no_enter: Path, no_list: Path) -> None:
    def denied(path: object) -> OSError:
        return PermissionError(errno.EACCES, "Permission denied", str(path))

    def where(path: Any) -> Path | None:
        try:
            return Path(os.fsdecode(path))
        except TypeError:  # a file descriptor
            return None

    def guard(real: Callable[..., Any], listing: bool = False) -> Callable[..., Any]:
        def call(path: Any, *args: Any, **kwargs: Any) -> Any:
            p = where(path)
            if p is not None and (no_enter in p.parents or (listing and p in (no_enter, no_list))):
                raise denied(path)
            return real(path, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "stat", guard(os.stat))
    monkeypatch.setattr(os, "lstat", guard(os.lstat))
    monkeypatch.setattr(os, "open", guard(os.open))
    monkeypatch.setattr(io, "open", guard(io.open))
    monkeypatch.setattr(os, "listdir", guard(os.listdir, listing=True))
    monkeypatch.setattr(os, "scandir", guard(os.scandir, listing=True))


def test_unreadable_run_folders_are_reported_not_raised(locked: Path) -> None:
    runs = load_runs([locked])
    assert [r.name for r in runs] == ["good"]
    failed = {f.path.name: f.reason for f in runs.failures}
    assert set(failed) == {"no_enter", "no_list"}, failed
    for reason in failed.values():
        assert "Permission denied" in reason and str(locked) not in reason
    for p in (locked / "no_enter", locked / "no_list", locked / "no_enter" / "log_x.txt"):
        with pytest.raises(RunLoadError, match="Permission denied"):
            load_run(p)


def test_expand_paths_never_raises(locked: Path) -> None:
    runs, failures = expand_paths(
        [locked, locked / "no_enter" / "log_kronecker_adaptive.txt", locked / "no_list"]
    )
    assert [p.name for p in runs] == ["good"]
    assert [f.path.name for f in failures] == [
        "no_enter",
        "no_list",
        "log_kronecker_adaptive.txt",
        "no_list",
    ]
    assert all("Permission denied" in f.reason for f in failures), failures


# --- typed folders are walked once while nothing changes ----------------------------------------


def test_walk_cache_walks_again_only_when_something_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = tmp_path / "sweep"
    for i in range(3):
        d = sweep / f"group{i}" / f"seed={i}"
        d.mkdir(parents=True)
        (d / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(5, 2)) + "\n")
    (sweep / "notes.txt").write_text("nothing yet\n")
    cache = WalkCache()
    listed: list[Path] = []
    real_iterdir = Path.iterdir

    def counting(self: Path) -> Any:
        listed.append(self)
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", counting)
    first, _ = expand_paths([sweep], cache)
    assert [p.name for p in first] == ["seed=0", "seed=1", "seed=2"]
    assert cache.walks == 1 and listed
    listed.clear()
    again, _ = expand_paths([sweep], cache)
    assert again == first and cache.walks == 1 and listed == []  # stats only, no listing
    # A new run folder changes its parent's mtime: walked again, and found.
    new = sweep / "group1" / "seed=9"
    new.mkdir()
    (new / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(5, 2)) + "\n")
    found, _ = expand_paths([sweep], cache)
    assert cache.walks == 2 and [p.name for p in found] == ["seed=0", "seed=1", "seed=9", "seed=2"]
    # A text file that starts logging changes size: walked again.
    (sweep / "notes.txt").write_text("\n".join(small_log(5, 2)) + "\n")
    found, _ = expand_paths([sweep], cache)
    assert cache.walks == 3 and sweep in found


@pytest.mark.parametrize("name", ["![x](x.png)", "run[1]", "a*b", "{a,b}", "q?"])
def test_a_folder_named_like_a_glob_pattern_loads_its_own_log(tmp_path: Path, name: str) -> None:
    d = tmp_path / name
    d.mkdir()
    (d / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(20, 2)) + "\n")
    decoy = tmp_path / "run1"  # what `run[1]` matches as a pattern
    decoy.mkdir()
    (decoy / "log_kronecker_adaptive.txt").write_text("\n".join(small_log(5, 2)) + "\n")
    run = load_run(d)
    assert run.name == name and run.n_steps == 20


def test_the_store_refuses_a_log_past_the_caps(tmp_path: Path, small_caps: LogLimits) -> None:
    from ponder_parse.files.store import open_store

    d = tmp_path / "runs" / "blank"
    d.mkdir(parents=True)
    (d / "log_kronecker_adaptive.txt").write_bytes(b"\n" * 20_000)
    r = open_store(tmp_path / "s", create=True).ingest_run(d)
    assert r.action == "failed" and "more than 10,000 lines" in (r.reason or "")


def test_an_unreadable_text_file_that_could_be_a_log_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `.txt` in a folder without a log may be the log itself: when it cannot be opened
    to tell, the folder is not silently passed over."""
    sweep = tmp_path / "sweep"
    (sweep / "run").mkdir(parents=True)
    hidden = sweep / "run" / "train_output.txt"
    hidden.write_text("STEP: 1 | ...\n")
    real_open = Path.open

    def guarded(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == hidden:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", guarded)
    runs = load_runs([sweep])
    assert list(runs) == []
    failed = {f.path.name: f.reason for f in runs.failures}
    assert set(failed) == {"train_output.txt", "sweep"}
    assert "Permission denied" in failed["train_output.txt"]
    assert failed["sweep"] == "no trainer log found in this folder"
