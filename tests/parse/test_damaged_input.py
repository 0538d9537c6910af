"""Damaged and unusual input: a line that cannot be read never hands its block to another
step, model output stays text whatever it holds, and a log in another encoding or with
other line ends is read (or refused by name), never silently misread."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from trainer_lines import (
    INIT_MODEL3B,
    generation_block,
    layer_line,
    lr_check_line,
    quality_line,
    step_line,
    trace_line,
)

from ponder_parse import load_run, parse_run
from ponder_parse.parse.scan import (
    NO_STEP_LINE,
    UNREADABLE_STEP_LINE,
    parse_text,
)
from ponder_parse.parse.snapshot import read_snapshot


def parse(lines: list[str]) -> dict[str, pl.DataFrame]:
    tables, _ = parse_text("\n".join(lines) + "\n")
    return tables


WIN = quality_line(0.0423, -0.0312, 0.000333, "ECONOMIC WIN", True)
TAX = quality_line(-0.01, 0.02, -0.00001, "TAX ONLY", False)


def block(step: int, layers: int, quality: str, *, lr: bool = False) -> list[str]:
    """A step line and what the trainer prints after it: layer and trace lines, an LR
    check when asked, the recurrence quality line."""
    out = [step_line(step)]
    for i in range(layers):
        out += [layer_line(i, k_exec=3), trace_line(i, [1.0, 0.5, 0.25])]
    if lr:
        out.append(lr_check_line(step, 2.07e-4, "cosine"))
    return [*out, quality]


def test_a_damaged_step_line_keeps_its_block_from_the_previous_step() -> None:
    """`GRAD:` → `GRAD;` on step 1500's line: its 8 layer rows, 8 traces and quality line
    are reported, and step 1499 keeps exactly its own rows (its quality not overwritten)."""
    lines = block(1499, 8, TAX) + block(1500, 8, WIN) + block(1501, 8, TAX)
    bad = lines.index(step_line(1500))
    lines[bad] = lines[bad].replace("GRAD:", "GRAD;")
    t = parse(lines)
    assert t["steps"]["step"].to_list() == [1499, 1501]
    assert t["layers"].group_by("step").len().sort("step").rows() == [(1499, 8), (1501, 8)]
    assert t["traces"].group_by("step").len().sort("step").rows() == [(1499, 8), (1501, 8)]
    assert t["quality"].select("step", "status").rows() == [(1499, "TAX ONLY"), (1501, "TAX ONLY")]
    problems = t["problems"]
    assert problems.row(0) == (bad + 1, lines[bad], "malformed step line")
    orphans = problems.slice(1)
    assert orphans["line_no"].to_list() == list(range(bad + 2, bad + 2 + 17))
    assert orphans["reason"].unique().to_list() == [UNREADABLE_STEP_LINE]
    assert orphans["text"].to_list() == lines[bad + 1 : bad + 18]


def test_stderr_interleaved_into_a_step_line_keeps_its_block_from_the_previous_step() -> None:
    """Under `2>&1` a warning lands in the middle of a step line: the line's head (with
    the warning) and its tail are unreadable, and so is everything up to the next step."""
    full = step_line(1500)
    cut = full.index(" | LR:")
    lines = [
        *block(1499, 2, TAX),
        full[:cut] + "/usr/lib/python3/torch/x.py:12: UserWarning: deprecated",
        full[cut:],
        *block(1500, 2, WIN)[1:],
        *block(1501, 2, TAX),
    ]
    t = parse(lines)
    assert t["steps"]["step"].to_list() == [1499, 1501]
    assert t["layers"]["step"].unique().sort().to_list() == [1499, 1501]
    assert t["quality"]["status"].to_list() == ["TAX ONLY", "TAX ONLY"]
    reasons = dict(zip(t["problems"]["line_no"], t["problems"]["reason"], strict=True))
    assert reasons[7] == "malformed step line" and reasons[8] == "unrecognized line"
    assert [reasons[n] for n in range(9, 14)] == [UNREADABLE_STEP_LINE] * 5
    assert len(reasons) == 7


def test_a_step_line_with_junk_in_front_is_a_step_line_that_could_not_be_read() -> None:
    """Stderr text without its newline in front of a step line: the line is unrecognized,
    and the layer lines after it are still not the previous step's."""
    lines = [*block(10, 2, TAX), "tqdm: 5/9" + step_line(11), layer_line(0), step_line(12)]
    t = parse(lines)
    assert t["layers"]["step"].to_list() == [10, 10]
    reasons = t["problems"].select("line_no", "reason").rows()
    assert reasons == [(7, "unrecognized line"), (8, UNREADABLE_STEP_LINE)]


def test_an_lr_check_names_its_step_for_the_lines_after_it() -> None:
    """After an unreadable step line, the LR CHECK line says which step this is: the
    quality line after it is that step's (only the lines before it are unattributable)."""
    lines = block(1499, 1, TAX, lr=True) + block(1500, 1, WIN, lr=True) + [step_line(1501)]
    bad = lines.index(step_line(1500))
    lines[bad] = lines[bad].replace("LM:", "LM;")
    t = parse(lines)
    assert t["quality"].select("step", "status").rows() == [
        (1499, "TAX ONLY"),
        (1500, "ECONOMIC WIN"),
    ]
    assert t["lr_checks"]["step"].to_list() == [1499, 1500]
    assert t["steps"]["segment"].to_list() == [0, 0]
    assert t["problems"].select("line_no", "reason").rows() == [
        (bad + 1, "malformed step line"),
        (bad + 2, UNREADABLE_STEP_LINE),
        (bad + 3, UNREADABLE_STEP_LINE),
    ]


def test_data_lines_before_any_step_line_are_reported() -> None:
    lines = [INIT_MODEL3B, layer_line(0), trace_line(0, [1.0, 0.5]), TAX, step_line(0), TAX]
    t = parse(lines)
    assert t["layers"].is_empty() and t["traces"].is_empty()
    assert t["quality"]["step"].to_list() == [0]
    assert t["problems"].select("line_no", "reason").rows() == [
        (2, NO_STEP_LINE),
        (3, NO_STEP_LINE),
        (4, NO_STEP_LINE),
    ]
    assert t["events"].select("step", "kind").rows() == [(None, "init")]


def test_events_after_an_unreadable_step_line_name_no_step() -> None:
    """A warning after step 1500's unreadable line is not step 1499's."""
    lines = [step_line(1499), step_line(1500).replace("TOT:", "TOT;"), "WARNING:root:odd"]
    lines += ["💾 Checkpoint saved: c.pt (step=1500, λ_p=1.00e-03)"]
    t = parse(lines)
    assert t["events"].select("step", "kind").rows() == [(None, "warning"), (1500, "checkpoint")]


# --- item: model output is never split on `\r` ---------------------------------------------


def test_a_carriage_return_in_model_output_stays_text() -> None:
    """A generation whose output holds `\\r` and then a whole real-format step line: no
    step 999999, the final LM stays the real one, and the block and its text are whole."""
    fake = step_line(999999, lm=0.0001)
    out = f"the loss went\r{fake}\nand then\r    L0: k_exec=9"
    lines = [step_line(500, lm=5.77), *generation_block(500, [("p", out)]), step_line(501, lm=5.77)]
    t = parse(lines)
    assert t["steps"]["step"].to_list() == [500, 501]
    assert t["steps"]["lm_loss"].to_list() == [5.77, 5.77]
    assert t["layers"].is_empty() and t["events"].is_empty() and t["problems"].is_empty()
    assert t["generations"]["output"].to_list() == [out]


def test_progress_bars_outside_a_generation_are_still_split() -> None:
    bar = " 45%|████▌     | 45/100 [00:01<00:02, 30.00it/s]"
    lines = [step_line(1), f"\r{bar}\r{step_line(2)}", *generation_block(2, [("p", "o")])]
    t = parse(lines)
    assert t["steps"]["step"].to_list() == [1, 2]
    assert t["events"]["kind"].to_list() == ["progress"]
    assert t["generations"]["output"].to_list() == ["o"]


# --- item: encodings and line ends -----------------------------------------------------------

LOG = [INIT_MODEL3B, *block(0, 2, TAX, lr=True), *block(1, 2, WIN)]


def test_a_utf8_bom_is_stripped(tmp_path: Path) -> None:
    data = codecs.BOM_UTF8 + ("\n".join(LOG) + "\n").encode()
    for run in (parse_run(data, name="r"), load_run(_write(tmp_path, data))):
        assert run.meta["params"] == 451234567
        assert run.events["kind"].to_list()[0] == "init"
        assert run.problems.is_empty()


@pytest.mark.parametrize(
    ("encoding", "name"),
    [
        ("utf-16", "UTF-16LE"),  # with a BOM (little-endian on this machine)
        ("utf-16-le", "UTF-16LE"),  # without one: told by its NUL bytes
        ("utf-16-be", "UTF-16BE"),
        ("utf-32", "UTF-32LE"),
        ("utf-32-be", "UTF-32BE"),
    ],
)
def test_a_utf16_or_utf32_log_is_decoded(tmp_path: Path, encoding: str, name: str) -> None:
    text = "\n".join(LOG) + "\n"
    want = parse_run(text, name="r")
    data = text.encode(encoding)
    for run in (parse_run(data, name="r"), load_run(_write(tmp_path, data))):
        assert_frame_equal(run.steps, want.steps, check_exact=True)
        assert_frame_equal(run.layers, want.layers, check_exact=True)
        assert run.meta["params"] == 451234567 and run.meta["n_lines"] == len(LOG)
        assert run.meta["encoding"] == name
        assert run.problems.is_empty()
    assert "encoding" not in want.meta


def test_a_utf16_log_cut_inside_a_character_reports_its_last_line() -> None:
    data = ("\n".join(LOG) + "\n" + step_line(2)).encode("utf-16-le")[:-1]
    run = parse_run(data, name="r")
    assert run.steps["step"].to_list() == [0, 1]
    assert run.problems.select("line_no", "reason").rows() == [
        (len(LOG) + 1, "incomplete last line (log still being written?)")
    ]


def test_cr_only_line_ends_are_lines(tmp_path: Path) -> None:
    """Old Mac line ends, no final newline: every line read, none dropped as incomplete."""
    data = "\r".join(LOG).encode()  # the last line ends without its `\r`: still being written
    run = parse_run(data + b"\r", name="r")
    assert run.steps["step"].to_list() == [0, 1] and run.layers.height == 4
    assert run.problems.is_empty() and run.meta["n_lines"] == len(LOG)
    run = parse_run(data, name="r")
    assert run.steps["step"].to_list() == [0, 1]
    assert run.problems.select("line_no", "reason").rows() == [
        (len(LOG), "incomplete last line (log still being written?)")
    ]
    assert load_run(_write(tmp_path, data + b"\r")).steps["step"].to_list() == [0, 1]


def test_a_progress_bar_alone_is_not_cr_line_ends() -> None:
    """No newline yet, only a progress bar redrawing itself: one line still being written."""
    bar = "".join(f"\r{p}%|{'█' * (p // 10)}| {p}/100" for p in range(0, 60, 10))
    run = parse_run(bar.encode(), name="r")
    assert run.meta["n_lines"] == 1 and run.meta["truncated"] is True


def test_a_stats_json_with_a_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.write_bytes(codecs.BOM_UTF8 + json.dumps({"step": 5, "lm_loss": 2.5}).encode())
    assert read_snapshot(path) == ({"step": 5, "lm_loss": 2.5}, None)


def _write(tmp_path: Path, data: bytes) -> Path:
    d = tmp_path / "run"
    d.mkdir(exist_ok=True)
    (d / "log_kronecker_adaptive.txt").write_bytes(data)
    return d


def test_undecodable_utf16_is_reported_in_its_encoding() -> None:
    """A lone surrogate inside a UTF-16 log: shown as U+FFFD, and the note names UTF-16."""
    good = ("\n".join(LOG) + "\n").encode("utf-16-le")
    bad = "    odd ".encode("utf-16-le") + b"\x00\xd8" + "\n".encode("utf-16-le")
    run = parse_run(codecs.BOM_UTF16_LE + good + bad, name="r")
    assert run.steps["step"].to_list() == [0, 1] and run.meta["invalid_utf8"] is True
    notes = run.problems.filter(pl.col("line_no").is_null())["reason"].to_list()
    assert notes == ["invalid UTF-16LE bytes in the log: shown as \ufffd"]
    assert run.problems.filter(pl.col("line_no").is_not_null())["text"].to_list() == [
        "    odd \ufffd"
    ]
