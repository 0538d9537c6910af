"""Uploads become run folders; hostile archives are refused without touching the disk outside."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from ponder_parse.files.discovery import find_run_dirs, is_log_file
from ponder_parse.files.hparams import parse_folder_name
from ponder_parse.files.uploads import (
    ArchiveLimits,
    UploadResult,
    content_tag,
    materialize_uploads,
)

STEP = (
    "STEP: 1 | TOT: 3.2145 | LM: 2.9800 | PONDER: 0.000123 (RAW: 0.000456, RWD: 0.000333) | "
    "LR: 2.8000e-04 | GRAD: 0.8732 | λ_p: 1.20e-03 | CTRL_ERR: +0.082 | P_NR: 3.2% | "
    "dt:  420.00ms | tok/sec:    609.52\n"
)
LOG = ("INIT | PARAMS: 86123456 | K: 1536\n" + STEP).encode()
STATS = b'{"step": 1, "lm_loss": 2.98, "layers": []}'


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """A parent folder holding only `dest`: anything else appearing in it escaped."""
    parent = tmp_path / "parent"
    dest = parent / "dest"
    dest.mkdir(parents=True)
    return parent, dest


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def outside(parent: Path) -> list[str]:
    return [p for p in listing(parent) if not p.startswith("dest")]


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                tf.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                tf.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def names(result: UploadResult) -> list[str]:
    return [p.name for p in result.run_dirs]


# --- loose files --------------------------------------------------------------------------


def test_single_loose_log_with_stats_and_config(box: tuple[Path, Path]) -> None:
    _, dest = box
    result = materialize_uploads(
        [("log_fourier_adaptive.txt", LOG), ("stats.json", STATS), ("config.yaml", b"eta: 2\n")],
        dest,
    )
    assert names(result) == ["log_fourier_adaptive"]
    run = result.run_dirs[0]
    assert (run / "log_fourier_adaptive.txt").read_bytes() == LOG
    assert (run / "stats.json").read_bytes() == STATS
    assert (run / "config.yaml").exists()
    assert result.messages == []


def test_several_logs_each_their_own_run_and_stats_by_prefix(box: tuple[Path, Path]) -> None:
    _, dest = box
    result = materialize_uploads(
        [
            ("seed1.log", LOG),
            ("seed2.log", LOG),
            ("seed2_stats.json", STATS),
            ("stats.json", STATS),
        ],
        dest,
    )
    assert names(result) == ["seed1", "seed2"]
    assert (dest / "seed2" / "stats.json").read_bytes() == STATS
    assert not (dest / "seed1" / "stats.json").exists()
    assert any("stats.json: unassigned" in m for m in result.messages)


def test_stats_prefix_tie_is_unassigned(box: tuple[Path, Path]) -> None:
    _, dest = box
    result = materialize_uploads(
        [("log_a1.txt", LOG), ("log_a2.txt", LOG), ("a_stats.json", STATS)], dest
    )
    assert names(result) == ["log_a1", "log_a2"]
    assert any("a_stats.json: unassigned" in m for m in result.messages)
    assert not list(dest.rglob("stats.json"))


def test_same_named_logs_get_distinct_folders(box: tuple[Path, Path]) -> None:
    _, dest = box
    other = LOG + b"\n"
    result = materialize_uploads(
        [
            ("log_kronecker_adaptive.txt", LOG),
            ("log_kronecker_adaptive.txt", other),
            ("log_kronecker_adaptive.txt", LOG),
        ],
        dest,
    )
    tag, tag2 = content_tag(LOG), content_tag(other)
    assert names(result) == [
        f"log_kronecker_adaptive #{tag}",
        f"log_kronecker_adaptive #{tag2}",
        f"log_kronecker_adaptive #{tag} (2)",
    ]
    assert sum("same name" in m for m in result.messages) == 3
    # None of the tags reads as a hyperparameter (`-2` did: `adaptive=2`).
    for name in names(result):
        assert parse_folder_name(name) == {}, name


def test_same_named_archives_do_not_read_as_a_setting(box: tuple[Path, Path]) -> None:
    _, dest = box
    data = zip_bytes({"log_fourier_adaptive.txt": LOG})
    result = materialize_uploads([("sweep.zip", data), ("sweep.zip", data)], dest)
    assert names(result) == ["sweep", "sweep (2)"]
    assert all(parse_folder_name(n) == {} for n in names(result))
    assert parse_folder_name("sweep-2") == {"sweep": 2}  # why `-2` is not used


def test_non_logs_are_skipped_with_a_message(box: tuple[Path, Path]) -> None:
    _, dest = box
    result = materialize_uploads(
        [("notes.txt", b"hello\n"), ("model.pt", b"\0" * 10), ("stats.json", STATS)], dest
    )
    assert result.run_dirs == []
    assert len(result.messages) == 3
    assert any("notes.txt" in m and "STEP" in m for m in result.messages)
    assert any("no log file" in m for m in result.messages)


def test_txt_with_step_lines_and_gz_logs_are_logs(box: tuple[Path, Path]) -> None:
    _, dest = box
    result = materialize_uploads(
        [("output.txt", b"warming up\n" + LOG), ("run.log.gz", gzip.compress(LOG))], dest
    )
    assert names(result) == ["output", "run"]
    assert (dest / "run" / "run.log.gz").exists()


def test_upload_names_cannot_escape(box: tuple[Path, Path]) -> None:
    parent, dest = box
    result = materialize_uploads([("../../log_evil.txt", LOG), ("..\\x.log", LOG)], dest)
    assert outside(parent) == []
    assert names(result) == ["log_evil", "x"]


# --- archives of run folders ----------------------------------------------------------------


def test_zip_of_run_folders(box: tuple[Path, Path]) -> None:
    _, dest = box
    data = zip_bytes(
        {
            "sweep/target_k=2.4,seed=1/log_kronecker_adaptive.txt": LOG,
            "sweep/target_k=2.4,seed=1/stats.json": STATS,
            "sweep/target_k=2.4,seed=10/log_kronecker_adaptive.txt": LOG,
            "sweep/target_k=2.4,seed=2/log_kronecker_adaptive.txt": LOG,
            "sweep/target_k=2.4,seed=2/checkpoints/latest.pt": b"\0" * 100,
            "__MACOSX/sweep/._stats.json": b"junk",
            "sweep/notes/readme.md": b"hi",
        }
    )
    result = materialize_uploads([("sweep.zip", data)], dest)
    assert names(result) == ["target_k=2.4,seed=1", "target_k=2.4,seed=2", "target_k=2.4,seed=10"]
    assert (result.run_dirs[0] / "stats.json").read_bytes() == STATS
    assert not list(dest.rglob("*.pt"))
    assert not list(dest.rglob("__MACOSX"))
    assert any("not logs" in m and "latest.pt" in m for m in result.messages)


def test_tar_gz_of_run_folders_and_plain_tar(box: tuple[Path, Path]) -> None:
    _, dest = box
    members = [("runs/a/log_x.txt", LOG), ("runs/b/train.log", LOG), ("runs/b/stats.json", STATS)]
    result = materialize_uploads(
        [("runs.tar.gz", tar_bytes(members)), ("more.tar", tar_bytes(members, "w"))], dest
    )
    assert names(result) == ["a", "b", "a", "b"]
    assert result.run_dirs[1] == dest / "runs" / "runs" / "b"
    assert result.run_dirs[2] == dest / "more" / "runs" / "a"
    assert (result.run_dirs[1] / "stats.json").read_bytes() == STATS


def test_archive_of_bare_run_files_is_one_run_named_after_it(box: tuple[Path, Path]) -> None:
    _, dest = box
    data = zip_bytes({"log_fourier_adaptive.txt": LOG, "stats.json": STATS})
    result = materialize_uploads([("tk2.4_seed3.zip", data)], dest)
    assert names(result) == ["tk2.4_seed3"]


def test_nested_archive_is_not_expanded(box: tuple[Path, Path]) -> None:
    _, dest = box
    inner = zip_bytes({"run/log_a.txt": LOG})
    data = zip_bytes({"run/log_a.txt": LOG, "run/inner.zip": inner, "run/old.tgz": b"x"})
    result = materialize_uploads([("outer.zip", data)], dest)
    assert names(result) == ["run"]
    assert not list(dest.rglob("*.zip")) and not list(dest.rglob("*.tgz"))
    assert any("nested archives not expanded" in m for m in result.messages)


def test_archive_without_logs_says_so(box: tuple[Path, Path]) -> None:
    _, dest = box
    result = materialize_uploads([("empty.zip", zip_bytes({"a/stats.json": STATS}))], dest)
    assert result.run_dirs == []
    assert any("no training log" in m for m in result.messages)
    assert listing(dest) == []


# --- hostile archives ---------------------------------------------------------------------


def check_nothing_escaped(parent: Path, before: list[str]) -> None:
    after = outside(parent)
    assert after == before == [], after


@pytest.mark.parametrize(
    "evil",
    ["../evil.txt", "../../evil.log", "ok/../../evil.log", "..\\evil.log", "ok\\..\\..\\evil.log"],
)
def test_zip_path_traversal_is_refused(box: tuple[Path, Path], evil: str) -> None:
    parent, dest = box
    before = outside(parent)
    data = zip_bytes({"run/log_a.txt": LOG, evil: LOG})
    result = materialize_uploads([("evil.zip", data)], dest)
    check_nothing_escaped(parent, before)
    assert names(result) == ["run"]
    assert any("evil.zip" in m and "climbs out" in m for m in result.messages)


def test_absolute_and_drive_paths_are_refused(box: tuple[Path, Path], tmp_path: Path) -> None:
    parent, dest = box
    target = parent / "abs_evil.log"
    before = outside(parent)
    data = zip_bytes({str(target): LOG, "C:/evil.log": LOG, "c:evil2.log": LOG, "run/x.log": LOG})
    tgz = tar_bytes([(str(target), LOG), ("run/x.log", LOG)])
    result = materialize_uploads([("a.zip", data), ("b.tgz", tgz)], dest)
    check_nothing_escaped(parent, before)
    assert not target.exists()
    assert any("a.zip" in m and "absolute path" in m for m in result.messages)
    assert any("a.zip" in m and "drive" in m and "c:evil2.log" in m for m in result.messages)
    assert any("b.tgz" in m and "absolute path" in m for m in result.messages)
    assert names(result) == ["run", "run"]


def test_tar_traversal_is_refused(box: tuple[Path, Path]) -> None:
    parent, dest = box
    before = outside(parent)
    result = materialize_uploads(
        [("t.tar.gz", tar_bytes([("../evil.log", LOG), ("./run/log_a.txt", LOG)]))], dest
    )
    check_nothing_escaped(parent, before)
    assert names(result) == ["run"]
    assert any("t.tar.gz" in m and "climbs out" in m for m in result.messages)


def test_tar_symlink_and_hardlink_members_are_refused(box: tuple[Path, Path]) -> None:
    parent, dest = box
    before = outside(parent)
    sym = tarfile.TarInfo("run/link.log")
    sym.type, sym.linkname = tarfile.SYMTYPE, "../../outside"
    sym_dir = tarfile.TarInfo("run/sub")
    sym_dir.type, sym_dir.linkname = tarfile.SYMTYPE, str(parent)
    hard = tarfile.TarInfo("run/hard.log")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    dev = tarfile.TarInfo("run/dev.log")
    dev.type = tarfile.CHRTYPE
    fifo = tarfile.TarInfo("run/fifo.log")
    fifo.type = tarfile.FIFOTYPE
    data = tar_bytes(
        [sym, sym_dir, hard, dev, fifo, ("run/log_a.txt", LOG), ("run/sub/evil.log", LOG)]
    )
    result = materialize_uploads([("links.tgz", data)], dest)
    check_nothing_escaped(parent, before)
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    text = "\n".join(result.messages)
    assert "refused symbolic links" in text and "refused hard links" in text
    assert "devices" in text and "run/fifo.log" in text
    # the folder a link would have created is an ordinary folder now, inside dest
    assert (dest / "links" / "run" / "sub" / "evil.log").is_file()
    assert names(result) == ["run"]


def test_zip_symlink_member_is_refused(box: tuple[Path, Path]) -> None:
    parent, dest = box
    before = outside(parent)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo("run/link.log")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, str(parent))
        zf.writestr("run/log_a.txt", LOG)
    result = materialize_uploads([("l.zip", buf.getvalue())], dest)
    check_nothing_escaped(parent, before)
    assert not (dest / "l" / "run" / "link.log").exists()
    assert any("l.zip" in m and "symbolic links" in m for m in result.messages)
    assert names(result) == ["run"]


def test_total_size_cap_refuses_the_whole_archive(box: tuple[Path, Path]) -> None:
    parent, dest = box
    limits = ArchiveLimits(max_total_bytes=3000, max_member_bytes=2000)
    members = {f"run{i}/log_a.txt": LOG + b"x" * 700 for i in range(5)}
    result = materialize_uploads([("big.zip", zip_bytes(members))], dest, limits)
    assert result.run_dirs == []
    assert any("big.zip" in m and "in total" in m for m in result.messages)
    assert listing(dest) == []
    assert outside(parent) == []


def test_total_size_cap_is_shared_by_all_uploads(box: tuple[Path, Path]) -> None:
    _, dest = box
    limits = ArchiveLimits(max_total_bytes=len(LOG) * 2 + 10)
    a = zip_bytes({"r/log_a.txt": LOG})
    result = materialize_uploads(
        [("a.zip", a), ("b.zip", a), ("c.log", LOG), ("d.log", LOG)], dest, limits
    )
    assert len(result.run_dirs) == 2
    assert sum(1 for m in result.messages if "refused" in m) == 2


def test_single_member_cap_skips_that_member(box: tuple[Path, Path]) -> None:
    _, dest = box
    limits = ArchiveLimits(max_member_bytes=1000)
    data = zip_bytes({"run/log_a.txt": LOG, "run/huge.log": b"x" * 5000})
    tgz = tar_bytes([("run/log_a.txt", LOG), ("run/huge.log", b"x" * 5000)])
    result = materialize_uploads(
        [("m.zip", data), ("m.tgz", tgz), ("loose.log", b"y" * 2000)], dest, limits
    )
    assert names(result) == ["run", "run"]
    assert not list(dest.rglob("huge.log"))
    assert sum(1 for m in result.messages if "larger than" in m and "huge.log" in m) == 2
    assert any("loose.log" in m and "larger than" in m for m in result.messages)


def test_member_cap_is_enforced_on_bytes_not_headers(box: tuple[Path, Path]) -> None:
    """A zip whose header under-declares a member's size still stops at the cap."""
    _, dest = box
    limits = ArchiveLimits(max_member_bytes=1000)
    data = bytearray(zip_bytes({"run/log_a.txt": LOG, "run/liar.log": b"z" * 50_000}))
    # Patch the central directory's uncompressed size of `liar.log` down to 10 bytes.
    name = b"run/liar.log"
    idx = data.find(b"PK\x01\x02", 0)
    while idx != -1:
        n = int.from_bytes(data[idx + 28 : idx + 30], "little")
        if data[idx + 46 : idx + 46 + n] == name:
            data[idx + 24 : idx + 28] = (10).to_bytes(4, "little")
        idx = data.find(b"PK\x01\x02", idx + 4)
    result = materialize_uploads([("liar.zip", bytes(data))], dest, limits)
    # The member's bytes disagree with its header, so the archive reads as damaged and
    # nothing of it lands on disk (not even the honest log beside the liar).
    assert list(dest.rglob("*.log")) == [] and list(dest.rglob("*.txt")) == []
    assert len(result.messages) == 1
    assert result.messages[0].startswith("liar.zip: not a readable archive (")
    assert "run/liar.log" in result.messages[0]
    assert result.messages[0].endswith("nothing from it was loaded")


def test_too_many_members(box: tuple[Path, Path]) -> None:
    _, dest = box
    limits = ArchiveLimits(max_members=10)
    members = {f"run/f{i}.log": b"x" for i in range(11)}
    tar_members: list[tarfile.TarInfo | tuple[str, bytes]] = list(members.items())
    result = materialize_uploads(
        [("many.zip", zip_bytes(members)), ("many.tar.gz", tar_bytes(tar_members))], dest, limits
    )
    assert result.run_dirs == []
    assert sum(1 for m in result.messages if "more than 10 members" in m) == 2
    assert listing(dest) == []


def test_zip_bomb_ratio(box: tuple[Path, Path]) -> None:
    _, dest = box
    limits = ArchiveLimits(max_ratio=50, ratio_floor_bytes=64 * 1024)
    bomb = zip_bytes({"run/log_a.txt": LOG, "run/zeros.log": b"\0" * (4 * 1024 * 1024)})
    assert len(bomb) < 20_000
    result = materialize_uploads([("bomb.zip", bomb)], dest, limits)
    assert result.run_dirs == []
    assert any("bomb.zip" in m and "zip bomb" in m for m in result.messages)
    assert listing(dest) == []


def test_tar_gz_bomb_ratio(box: tuple[Path, Path]) -> None:
    _, dest = box
    limits = ArchiveLimits(max_ratio=50, ratio_floor_bytes=64 * 1024)
    bomb = tar_bytes([("run/log_a.txt", LOG), ("run/zeros.log", b"\0" * (4 * 1024 * 1024))])
    result = materialize_uploads([("bomb.tgz", bomb)], dest, limits)
    assert result.run_dirs == []
    assert any("bomb.tgz" in m and "zip bomb" in m for m in result.messages)


def test_ordinary_logs_are_not_bombs() -> None:
    limits = ArchiveLimits()
    assert limits.max_ratio >= 100 and limits.ratio_floor_bytes >= 1024 * 1024


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("bad.zip", b"PK\x03\x04 this is not really a zip"),
        ("bad.tar.gz", b"\x1f\x8b\x08\x00garbage"),
        ("bad.tgz", b""),
        ("bad.tar", b"not a tar at all" * 100),
    ],
)
def test_corrupt_archive_is_a_message(box: tuple[Path, Path], name: str, data: bytes) -> None:
    _, dest = box
    result = materialize_uploads([(name, data), ("ok.log", LOG)], dest)
    assert names(result) == ["ok"]
    assert any(m.startswith(name) and "not a readable archive" in m for m in result.messages)
    assert sorted(p.name for p in dest.iterdir()) == ["ok"]


def test_truncated_tar_gz_is_discarded(box: tuple[Path, Path]) -> None:
    _, dest = box
    data = tar_bytes([("run/log_a.txt", LOG * 2000), ("run2/log_b.txt", LOG * 2000)])
    result = materialize_uploads([("cut.tar.gz", data[: len(data) // 2])], dest)
    assert result.run_dirs == []
    assert any("cut.tar.gz" in m for m in result.messages)
    assert listing(dest) == []


def test_truncated_zip_is_a_message(box: tuple[Path, Path]) -> None:
    _, dest = box
    data = zip_bytes({"run/log_a.txt": LOG * 100})
    result = materialize_uploads([("cut.zip", data[:-30])], dest)
    assert result.run_dirs == []
    assert any("cut.zip" in m and "not a readable archive" in m for m in result.messages)


# --- finding runs -------------------------------------------------------------------------


def test_is_log_file(tmp_path: Path) -> None:
    cases = {
        "log_kronecker_adaptive.txt": b"",
        "log_x.txt.gz": b"",
        "train.log": b"",
        "train.log.gz": b"",
        "output.txt": b"noise\n[AUDIT] STEP: 5 | ...\n",
        "plain.txt": b"nothing here\n",
        "readme.md": b"STEP: 1\n",
        "._log_x.txt": b"",
        "late.txt": b"x" * (70 * 1024) + b"\nSTEP: 1\n",
        "zipped.txt.gz": gzip.compress(b"STEP: 3 | TOT\n"),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    found = {n for n in cases if is_log_file(tmp_path / n)}
    assert found == {
        "log_kronecker_adaptive.txt",
        "log_x.txt.gz",
        "train.log",
        "train.log.gz",
        "output.txt",
        "zipped.txt.gz",
    }
    assert not is_log_file(tmp_path / "missing.log")
    (tmp_path / "dir.log").mkdir()
    assert not is_log_file(tmp_path / "dir.log")


def test_find_run_dirs(tmp_path: Path) -> None:
    for rel in [
        "sweep/seed10/log_a.txt",
        "sweep/seed2/log_a.txt",
        "sweep/seed2/old/log_b.txt",  # inside a run: not a run of its own
        "sweep/.hidden/log_a.txt",
        "__MACOSX/sweep/log_a.txt",
        "other/deep/er/run/x.log",
        "notes/readme.txt",
    ]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(LOG)
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    runs = find_run_dirs(tmp_path)
    assert [str(p.relative_to(tmp_path)) for p in runs] == [
        "other/deep/er/run",
        "sweep/seed2",
        "sweep/seed10",
    ]
    assert find_run_dirs(tmp_path, max_depth=2) == [
        tmp_path / "sweep" / "seed2",
        tmp_path / "sweep" / "seed10",
    ]
    assert find_run_dirs(tmp_path / "sweep" / "seed2") == [tmp_path / "sweep" / "seed2"]
    assert find_run_dirs(tmp_path / "sweep" / "seed2" / "log_a.txt") == [
        tmp_path / "sweep" / "seed2"
    ]
    assert find_run_dirs(tmp_path / "nope") == []


def test_find_run_dirs_survives_symlink_cycles(tmp_path: Path) -> None:
    (tmp_path / "a" / "run").mkdir(parents=True)
    (tmp_path / "a" / "run" / "x.log").write_bytes(LOG)
    (tmp_path / "a" / "loop").symlink_to(tmp_path / "a")
    assert find_run_dirs(tmp_path) == [tmp_path / "a" / "run"]


def test_unusable_destination_is_a_message(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = materialize_uploads([("a.log", LOG)], blocker)
    assert result.run_dirs == [] and len(result.messages) == 1
