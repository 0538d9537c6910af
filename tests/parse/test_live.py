"""Following a growing log: incremental reads equal a full re-parse."""

from __future__ import annotations

from polars.testing import assert_frame_equal
from trainer_lines import generation_block, small_log, step_line

from ponder_parse import load_run
from ponder_parse.parse.live import LiveLog


def assert_same_run(a, b) -> None:
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
    assert (
        a.meta == {**b.meta, "live": True}
        or {k: v for k, v in a.meta.items() if k != "live"} == b.meta
    )


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
