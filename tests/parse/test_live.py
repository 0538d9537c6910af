"""Following a growing log: incremental reads equal a full re-parse."""

from __future__ import annotations

import functools
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
