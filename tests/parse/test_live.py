"""Following a growing log: incremental reads equal a full re-parse."""

from __future__ import annotations

import functools
import gzip
import os
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal
from trainer_lines import generation_block, small_log, step_line

from ponder_parse import Run, load_run, parse_run
from ponder_parse.parse.live import LiveLog
from ponder_parse.sim.simulate import SimConfig, SimResult, simulate


def assert_same_run(a: Run, b: Run) -> None:
    """The live run `a` is the full parse `b`: every table exactly (float bits included)
    and every fact, plus the live marker."""
    for name in (
        "steps",
        "layers",
        "traces",
        "quality",
        "lr_checks",
        "events",
        "generations",
        "problems",
    ):
        assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert a.meta == {**b.meta, "live": True}


def test_follows_three_appends_including_a_line_cut_mid_write(tmp_path) -> None:
    lines = small_log(steps=120, layers=2, ponder_start=60)
    lines[70:70] = generation_block(60, [("a prompt", "an output\nSTEP: 5 | fake")])
    text = "\n".join(lines) + "\n"
    d = tmp_path / "run"
    d.mkdir()
    log = d / "log_kronecker_adaptive.txt"
    log.write_bytes(b"")  # the trainer creates the file before its first line
    live = LiveLog(d)
    # Cut points: inside a step line, inside the generation block, and at the end.
    gen_at = text.index("[GEN 1]") + 3
    cuts = [text.index("STEP: 40 ") + 25, gen_at, len(text)]
    start = 0
    for cut in cuts:
        with log.open("a", encoding="utf-8") as fh:
            fh.write(text[start:cut])
        start = cut
        assert live.poll()
        assert live.bytes_parsed <= len(text[:cut].encode())
        assert_same_run(live.run(), load_run(d))
    full = load_run(d)
    assert full.n_steps == 120 and full.problems.is_empty()
    assert full.generations.height == 1


def test_poll_parses_only_what_was_appended(tmp_path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    log = d / "log_kronecker_adaptive.txt"
    log.write_text("\n".join(small_log(200, 2)) + "\n")
    live = LiveLog(d)
    live.poll()
    first = live.bytes_parsed
    extra = step_line(200) + "\n" + step_line(201) + "\n"
    with log.open("a", encoding="utf-8") as fh:
        fh.write(extra)
    assert live.poll()
    assert live.bytes_parsed == len(extra.encode()) < first / 20
    assert live.run().last_step == 201
    assert not live.poll()  # nothing new


def test_truncated_file_starts_over(tmp_path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    log = d / "log_kronecker_adaptive.txt"
    log.write_text("\n".join(small_log(50, 1)) + "\n")
    live = LiveLog(d)
    live.poll()
    log.write_text("\n".join(small_log(10, 1)) + "\n")
    live.poll()
    assert live.run().n_steps == 10


@functools.cache
def resumed_run(variant: str) -> SimResult:
    """A simulated log that crashes after step 260 and resumes from the step-200 checkpoint
    (traceback, resume lines, step lines restarting at 200), with generation blocks,
    traces and LR checks: every line kind the trainer prints, small enough to parse often."""
    config = SimConfig(
        variant=variant,
        seed=3,
        steps=320,
        n_layers=2,
        crash_at=260,
        checkpoint_every=100,
        generate_every=100,
        gen_samples=1,
        force_end=100,
        ponder_start=150,
        warmup_steps=50,
        lr_total_steps=320,
    )
    return simulate(config)


def resumed_log(variant: str) -> bytes:
    return resumed_run(variant).log_text.encode()


def mid_character_offsets(data: bytes) -> list[int]:
    """Offsets that fall inside a multi-byte UTF-8 character (λ, Δ, ≥, emoji)."""
    return [i for i, b in enumerate(data) if b & 0xC0 == 0x80]


@st.composite
def cut_points(draw: st.DrawFn) -> tuple[str, list[int]]:
    """A resumed log's variant and 1-6 sorted cut offsets into it: anywhere, inside a
    character, or exactly at the crash and at the resume (where the segment changes)."""
    variant = draw(st.sampled_from(["model3b", "smollm"]))
    data = resumed_log(variant)
    special = [
        data.index(b"Traceback"),
        data.index("⏩ Resuming".encode()),
        data.index(b"STEP: 200 ", data.index(b"Resuming")),
    ]
    offset = (
        st.integers(0, len(data))
        | st.sampled_from(mid_character_offsets(data))
        | st.sampled_from(special)
    )
    return variant, sorted(draw(st.lists(offset, min_size=1, max_size=6)))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut_points())
def test_live_polls_equal_a_full_parse_at_random_cuts(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, list[int]]
) -> None:
    """After every append, wherever it cut the text (mid-line, mid-character, across the
    crash and resume), the live run is exactly the full parse of the file as it stands:
    same rows, same float bits, same problems and facts. Every example parses whole logs
    repeatedly, so its time says nothing about the code (no deadline)."""
    variant, offsets = case
    data = resumed_log(variant)
    d = tmp_path_factory.mktemp("live") / "run"
    d.mkdir()
    log = d / resumed_run(variant).log_name
    log.write_bytes(b"")
    live = LiveLog(d)
    start = 0
    for cut in [*offsets, len(data)]:
        with log.open("ab") as fh:
            fh.write(data[start:cut])
        start = cut
        live.poll()
        assert_same_run(live.run(), load_run(d))
    assert live.offset == len(data)


def test_live_follows_a_crash_and_resume(tmp_path: Path) -> None:
    """A run that crashes and resumes, followed as the trainer writes it: the traceback,
    then the resume lines, then step lines restarting from the checkpoint, each polled on
    its own (the resume line and the restarted step arrive in different polls). The live
    `steps` must equal the full parse's at every poll, and at the end hold each step once,
    from its later occurrence, in the right segment."""
    data = resumed_log("model3b")
    resume_at = data.index("⏩ Resuming".encode())
    restart_at = data.index(b"STEP: 200 ", resume_at)
    cuts = [
        data.index(b"Traceback"),  # the crash: steps 0-260 written
        data.index(b"\n", data.index(b"OutOfMemoryError")) + 1,  # the traceback, complete
        resume_at + 10,  # the resume line half written
        restart_at,  # every resume line, no restarted step yet
        data.index(b"\n", restart_at) + 1,  # the first restarted step
        data.index(b"STEP: 261 "),  # the re-run overlap, 200-260, complete
        len(data),
    ]
    log = tmp_path / "log_kronecker_adaptive.txt"
    log.write_bytes(b"")
    live = LiveLog(log)  # a lone log file, not a run folder
    start = 0
    for cut in cuts:
        with log.open("ab") as fh:
            fh.write(data[start:cut])
        start = cut
        live.poll()
        full = load_run(log)
        assert_frame_equal(live.run().steps, full.steps, check_exact=True)
        assert_same_run(live.run(), full)
    steps = live.run().steps
    truth = resumed_run("model3b").steps
    assert steps["step"].to_list() == list(range(320))
    assert steps["segment"].to_list() == truth["segment"].to_list()
    assert steps.filter(pl.col("step") < 200)["segment"].unique().to_list() == [0]
    assert steps.filter(pl.col("step") >= 200)["segment"].unique().to_list() == [1]
    # The re-run steps carry the re-run's values (as printed, to 4 decimals), not those
    # of the crashed segment, which differ.
    rerun = steps.filter(pl.col("step").is_between(200, 260))
    rerun_truth = truth.filter(pl.col("step").is_between(200, 260))["lm_loss"]
    assert_series_equal(rerun["lm_loss"], rerun_truth, check_exact=False, abs_tol=5.1e-5)
    crashed = parse_run(data[: cuts[0]], name="crashed").steps
    before = crashed.filter(pl.col("step").is_between(200, 260))["lm_loss"]
    assert before.len() == 61 and (before - rerun["lm_loss"]).abs().max() > 1e-3
    assert live.run().meta["restarts"] == 1 and live.run().meta["resume_steps"] == [200]


# --- the file changing other than by appends --------------------------------------------


def follow(live: LiveLog, where: Path) -> None:
    """One poll, then the live run must be the full parse of what is there now."""
    live.poll()
    assert_same_run(live.run(), load_run(where))


def test_a_same_size_replacement_is_read_again(tmp_path: Path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    log = d / "log_kronecker_adaptive.txt"
    first = "\n".join(small_log(60, 2)) + "\n"
    other = first.replace("LM: 4.9", "LM: 1.9")  # same length, other values
    assert len(other) == len(first) and other != first
    log.write_text(first)
    live = LiveLog(d)
    follow(live, d)
    log.write_text(other)  # in place: same inode, same size, a later mtime
    os.utime(log, ns=(time.time_ns(), time.time_ns() + 10**9))
    follow(live, d)
    assert live.run().steps["lm_loss"][10] == 1.9


def test_a_rewrite_that_grew_past_the_old_offset_is_not_spliced(tmp_path: Path) -> None:
    """The run restarted into the same file and wrote more than was read before the next
    poll: the old head and the new tail must not be joined, whether the new file starts
    like the old one (the same first steps) or not."""
    d = tmp_path / "run"
    d.mkdir()
    log = d / "log_kronecker_adaptive.txt"
    old = small_log(200, 2)
    same_start = old[:60] + [ln.replace("LM: ", "LM: 1") for ln in small_log(300, 2)[60:]]
    other_start = [ln.replace("TOT: ", "TOT: 9") for ln in small_log(300, 2)]
    for new in (same_start, other_start):
        log.write_text("\n".join(old) + "\n")
        live = LiveLog(d)
        follow(live, d)
        log.write_text("\n".join(new) + "\n")
        assert log.stat().st_size > live.offset
        follow(live, d)
        assert live.run().n_steps == 300


def test_a_rotated_log_is_read_from_its_start(tmp_path: Path) -> None:
    """Log rotation: the file moved away and a new one under the same name (another
    inode), of exactly the size read so far."""
    log = tmp_path / "log_kronecker_adaptive.txt"
    text = "\n".join(small_log(40, 1)) + "\n"
    log.write_text(text)
    live = LiveLog(log)
    follow(live, log)
    fresh = tmp_path / "fresh.tmp"
    fresh.write_text(text.replace("TOT: 3", "TOT: 4"))
    os.replace(fresh, log)
    follow(live, log)
    assert live.run().steps["tot_loss"][0] == 4.2145


def test_a_newer_log_in_the_folder_is_followed(tmp_path: Path) -> None:
    """The folder gets a second `log_*` file that grows larger: the loader shows that
    one, so the live view switches to it."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "log_a.txt").write_text("\n".join(small_log(20, 1)) + "\n")
    live = LiveLog(d)
    follow(live, d)
    (d / "log_b.txt").write_text("\n".join(small_log(80, 1)) + "\n")
    follow(live, d)
    assert live.log.name == "log_b.txt" and live.run().n_steps == 80


def test_a_compressed_log_in_a_run_folder_is_read_whole(tmp_path: Path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    log = d / "log_kronecker_adaptive.txt.gz"
    log.write_bytes(gzip.compress(("\n".join(small_log(30, 2)) + "\n").encode()))
    live = LiveLog(d)
    follow(live, d)
    assert live.run().n_steps == 30 and live.run().problems.is_empty()
    assert not live.poll()  # unchanged: not parsed again
    log.write_bytes(gzip.compress(("\n".join(small_log(50, 2)) + "\n").encode()))
    follow(live, d)
    assert live.run().n_steps == 50


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32-le"])
def test_a_wide_encoded_log_is_followed(tmp_path: Path, codec: str) -> None:
    log = tmp_path / "log_kronecker_adaptive.txt"
    text = "\n".join(small_log(40, 2)) + "\n"
    log.write_bytes(b"")
    live = LiveLog(log)
    for cut in (0, 1001, 2000, len(text)):
        log.write_bytes(text[:cut].encode(codec))
        follow(live, log)
    assert live.run().n_steps == 40 and live.run().meta["encoding"].startswith("UTF-")


def test_cr_line_ends_are_followed_until_a_newline_says_otherwise(tmp_path: Path) -> None:
    log = tmp_path / "log_kronecker_adaptive.txt"
    text = "\r".join(small_log(30, 1)) + "\r"
    log.write_bytes(b"")
    live = LiveLog(log)
    start = 0
    for cut in (5, 300, 301, 2000, len(text)):
        with log.open("ab") as fh:
            fh.write(text[start:cut].encode())
        start = cut
        follow(live, log)
    assert live.run().n_steps == 30
    with log.open("ab") as fh:  # now a `\n`: one line with `\r` overwrites after all
        fh.write(b"\n")
    follow(live, log)
    assert live.run().meta["n_lines"] == 1


def test_one_cr_ending_the_file_is_decided_again_when_more_follows(tmp_path: Path) -> None:
    """`x\\r` alone reads as one `\\r`-ended line, `x\\ry` as one line holding a `\\r`:
    the reader that saw the first must read the second as the full parse does."""
    log = tmp_path / "log.txt"
    log.write_bytes(b"")
    live = LiveLog(log)
    for piece in (b"\x01\r", b"\x00"):
        with log.open("ab") as fh:
            fh.write(piece)
        live.poll()
        want = load_run(log)
        assert live.run().meta["n_lines"] == want.meta["n_lines"]
        assert live.run().problems["line_no"].to_list() == want.problems["line_no"].to_list()
    assert live.run().meta["n_lines"] == 1


def test_a_bom_at_the_start_is_stripped_when_following(tmp_path: Path) -> None:
    log = tmp_path / "log_kronecker_adaptive.txt"
    data = b"\xef\xbb\xbf" + ("\n".join(small_log(10, 1)) + "\n").encode()
    log.write_bytes(b"")
    live = LiveLog(log)
    for cut in (1, 2, 3, 50, len(data)):
        log.write_bytes(data[:cut])
        follow(live, log)
    assert live.run().meta["params"] == 451234567


CHANGES = st.sampled_from(["append", "append", "append", "rewrite", "rotate", "truncate"])


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(CHANGES, st.integers(0, 10**6)), min_size=1, max_size=6))
def test_live_polls_equal_a_full_parse_through_rewrites_and_rotations(
    tmp_path_factory: pytest.TempPathFactory, changes: list[tuple[str, int]]
) -> None:
    """Appends cut anywhere mixed with the other changes a followed file sees: rewritten
    in place with another run's log up to some point (shorter, as long or longer than
    what was read), replaced by a new file (rotation), or truncated. After every poll
    the live run is the full parse of the file as it stands."""
    logs = [resumed_log("model3b"), resumed_log("smollm")]
    d = tmp_path_factory.mktemp("live") / "run"
    d.mkdir()
    log = d / "log_kronecker_adaptive.txt"
    log.write_bytes(b"")
    live = LiveLog(d)
    which, written = 0, 0
    for n, (change, at) in enumerate(changes):
        data = logs[which]
        if change == "append":
            cut = max(written, at % (len(data) + 1))
            with log.open("ab") as fh:
                fh.write(data[written:cut])
            written = cut
        elif change == "truncate":
            written = at % (written + 1)
            with log.open("r+b") as fh:
                fh.truncate(written)
        else:
            which = 1 - which
            data = logs[which]
            written = at % (len(data) + 1)
            target = log if change == "rewrite" else d / f"new{n}.tmp"
            target.write_bytes(data[:written])
            if change == "rotate":
                os.replace(target, log)
            else:  # a rewrite within the same clock tick still changes the mtime
                os.utime(log, ns=(time.time_ns(), time.time_ns() + n + 1))
        follow(live, d)
