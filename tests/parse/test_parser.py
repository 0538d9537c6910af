"""Parser tests from real-format lines (see the trainer's print statements in trainer_lines)."""

from __future__ import annotations

import math

import polars as pl
import pytest
from trainer_lines import (
    INIT_MODEL3B,
    INIT_SMOLLM,
    generation_block,
    layer_line,
    lr_check_line,
    quality_line,
    small_log,
    step_line,
    trace_line,
)

from ponder_parse import schema
from ponder_parse.parse.scan import PROBLEM_TEXT_MAX, parse_text

GUIDE_STEP = (
    "STEP: 1500 | TOT: 3.2145 | LM: 2.9800 | PONDER: 0.000123 (RAW: 0.000456, RWD: 0.000333) "
    "| LR: 2.8e-04 | GRAD: 0.8732 | λ_p: 1.20e-03[DB] | CTRL_ERR: +0.082 | P_NR: 3.2% | MTP: 3.1200 "
    "| AUX: 0.0021 | PL/LM: 0.04% | AVGS: exec=1.43, k=1.38, gap=0.05 | dt:  420.00ms | tok/sec:    609.52"
)
REAL_AUDIT_STEP = (
    "STEP: 1500 [AUDIT] | TOT: 3.2145 | LM: 2.9800 | PONDER: 0.000123 (RAW: 0.000456, RWD: 0.000333) "
    "| LR: 2.8000e-04 | GRAD: 0.8732 | λ_p: 1.20e-03[DB] | CTRL_ERR: +0.082 | P_NR: 3.2% | MTP: 3.1200 "
    "| AUX: 0.0021 | PL/LM: 0.04% | AVGS: exec=1.43, k=1.38, gap=0.05 | dt:  420.00ms | tok/sec:    609.52"
)


def parse(lines: list[str], trailing_newline: bool = True):
    tables, facts = parse_text("\n".join(lines) + ("\n" if trailing_newline else ""))
    return tables, facts


def test_real_audit_step_line_parses_every_field() -> None:
    t, _ = parse([REAL_AUDIT_STEP])
    row = t["steps"].row(0, named=True)
    assert row["step"] == 1500 and row["audit"] is True
    assert row["tot_loss"] == 3.2145 and row["lm_loss"] == 2.98
    assert (
        row["total_ponder"] == 0.000123
        and row["ponder_raw"] == 0.000456
        and row["reward"] == 0.000333
    )
    assert row["lr"] == pytest.approx(2.8e-4) and row["grad_norm"] == 0.8732
    assert row["lambda_p"] == pytest.approx(1.2e-3) and row["deadband_active"] is True
    assert row["ctrl_err"] == pytest.approx(0.082)
    assert row["p_near_clamp"] == pytest.approx(0.032)  # percent stored as a fraction
    assert row["mtp_loss"] == 3.12 and row["aux_loss"] == 0.0021
    assert row["pl_lm"] == pytest.approx(0.0004)
    assert (row["avg_exec"], row["avg_k"], row["avg_gap"]) == (1.43, 1.38, 0.05)
    assert row["dt_ms"] == 420.0 and row["tok_per_sec"] == 609.52
    assert row["baton"] is None and row["baton_lam"] is None
    assert t["problems"].is_empty()


def test_guide_spellings_are_accepted() -> None:
    guide_audit = "[AUDIT] " + GUIDE_STEP
    t, _ = parse([GUIDE_STEP.replace("STEP: 1500", "STEP: 1499"), guide_audit])
    assert t["steps"]["step"].to_list() == [1499, 1500]
    assert t["steps"]["audit"].to_list() == [False, True]
    assert t["steps"]["lr"][0] == pytest.approx(2.8e-4)
    assert t["problems"].is_empty()


def test_smollm_step_line_without_mtp_with_baton() -> None:
    line = step_line(7, variant="smollm", baton=(0.512, 0.25), avgs=None, dt=1234.5, tps=12345.67)
    t, _ = parse([INIT_SMOLLM, line])
    row = t["steps"].row(0, named=True)
    assert row["mtp_loss"] is None and row["aux_loss"] is None  # absent, not 0
    assert row["baton"] == 0.512 and row["baton_lam"] == 0.25
    assert row["pl_lm"] is None and row["avg_k"] is None
    assert row["dt_ms"] == 1234.5 and row["tok_per_sec"] == 12345.67


def test_step_layouts_mixed_in_one_log() -> None:
    """Optional blocks are looked for per line: model3b with and without per-layer stats,
    smollm with and without BATON, and both with BATON and MTP, all in one file."""
    lines = [
        step_line(1),
        step_line(2, avgs=None),
        step_line(3, variant="smollm", baton=(0.5, 0.125)),
        step_line(4, variant="smollm", avgs=None),
        step_line(5, baton=(0.25, 0.5), audit=True),
    ]
    t, _ = parse(lines)
    assert t["problems"].is_empty()
    s = t["steps"]
    assert s["step"].to_list() == [1, 2, 3, 4, 5]
    assert s["mtp_loss"].to_list() == [3.12, 3.12, None, None, 3.12]
    assert s["aux_loss"].to_list() == [0.0021, 0.0021, None, None, 0.0021]
    assert s["baton"].to_list() == [None, None, 0.5, None, 0.25]
    assert s["baton_lam"].to_list() == [None, None, 0.125, None, 0.5]
    assert s["avg_k"].to_list() == [1.38, None, 1.38, None, 1.38]
    assert s["audit"].to_list() == [False, False, False, False, True]
    assert s["dt_ms"].to_list() == [420.0] * 5


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("| TOT: ", "| TOTAL: "),  # a label that is not the trainer's
        ("STEP: 1500", "STEP: +1500"),  # a step number is plain digits
        ("STEP: 1500", "STEP: -1500"),
        (" | LM: 2.9800", ""),  # a part missing
        ("(RAW: ", "(RAW2: "),  # a label inside a composite part
        (", RWD: 0.000333)", ")"),  # a composite part cut short
        ("gap=0.05", "gap=0.05, x=1"),  # a composite part with one value too many
        ("| AUX: 0.0021 ", ""),  # MTP without AUX
        ("| MTP: 3.1200 ", ""),  # AUX without MTP
        ("| AVGS: exec=1.43, k=1.38, gap=0.05 ", ""),  # PL/LM without AVGS
        ("| PL/LM: 0.04% ", ""),  # AVGS without PL/LM
        ("GRAD: 0.8732", "GRAD: 0.87x2"),  # a number that does not parse
        ("P_NR: 3.2%", "P_NR: 3.2"),  # a percentage without its sign
        ("| tok/sec:    609.52", ""),  # the last part missing
        (" | dt:  420.00ms", " | dt:  420.00ms | dt:  420.00ms"),  # a part too many
    ],
)
def test_step_line_deviations_are_problems(old: str, new: str) -> None:
    line = REAL_AUDIT_STEP.replace(old, new)
    assert line != REAL_AUDIT_STEP
    t, _ = parse([step_line(1), line])
    assert t["steps"]["step"].to_list() == [1]
    assert t["problems"].rows() == [(2, line[:PROBLEM_TEXT_MAX], "malformed step line")]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("expected_k=", "expect_k="),
        ("tail: ≥2:41.20%", "tail: ≥2:41.20"),
        (", d_rel=0.043", ""),
        ("λ_p=1.20e-03", "λ_p=1.20e-03, extra=1"),
        ("k_exec=2", "k_exec=2.5"),
        ("k_exec=2", "k_exec=+2"),
    ],
)
def test_layer_line_deviations_are_problems(old: str, new: str) -> None:
    good = layer_line(0)
    line = good.replace(old, new)
    assert line != good
    t, _ = parse([step_line(1), line])
    assert t["layers"].is_empty()
    assert t["problems"].rows() == [(2, line, "malformed layer line")]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("[ECONOMIC WIN]", "[BIG WIN]"),
        ("COUPON: ", "COUPONS: "),
        (" [CONFIDENCE+]", " [CONFIDENCE]"),
        ("ΔH=-0.0312 | ", ""),
    ],
)
def test_quality_line_deviations_are_problems(old: str, new: str) -> None:
    good = quality_line(0.0423, -0.0312, 0.000333, "ECONOMIC WIN", True)
    line = good.replace(old, new)
    assert line != good
    t, _ = parse([step_line(1), line])
    assert t["quality"].is_empty()
    assert t["problems"].rows() == [(2, line, "malformed RECURRENCE QUALITY line")]


def test_non_finite_values_are_data() -> None:
    line = step_line(
        3, tot=math.nan, lm=math.inf, grad=-math.inf, ctrl_err=math.nan, p_near=math.nan
    )
    t, _ = parse([line])
    row = t["steps"].row(0, named=True)
    assert (
        math.isnan(row["tot_loss"]) and row["lm_loss"] == math.inf and row["grad_norm"] == -math.inf
    )
    assert math.isnan(row["ctrl_err"]) and math.isnan(row["p_near_clamp"])
    assert t["problems"].is_empty()


def test_layer_and_trace_lines_belong_to_the_preceding_step() -> None:
    lines = [step_line(9), step_line(10)]
    lines += [
        layer_line(0),
        trace_line(0, [1.0, 0.82, 0.23, 0.04]),
        layer_line(11, k_exec=4, k=2.5),
    ]
    lines += [trace_line(11, [1.0, 0.95, 0.9, 0.85, 0.8])]
    t, _ = parse(lines)
    layers = t["layers"]
    assert layers["step"].to_list() == [10, 10]
    assert layers["layer"].to_list() == [0, 11]
    row = layers.row(0, named=True)
    assert row["k"] == 1.38 and row["s_final"] == 0.042 and row["avg_exec_token"] == 1.41
    assert row["frac_ge2"] == pytest.approx(0.412) and row["frac_ge4"] == pytest.approx(0.001)
    assert row["ent"] == 3.142 and row["p_mean"] == 0.82 and row["p_std"] == 0.12
    assert (
        row["h_diff"] == 0.031
        and row["p_diff"] == -0.41
        and row["lambda_p"] == pytest.approx(1.2e-3)
    )
    assert layers["k_exec"].to_list() == [2, 4]
    traces = t["traces"]
    assert traces["s_trace"].to_list() == [[1.0, 0.82, 0.23, 0.04], [1.0, 0.95, 0.9, 0.85, 0.8]]
    assert traces["step"].to_list() == [10, 10]


def test_quality_lines_and_statuses() -> None:
    lines = [step_line(1200), quality_line(0.0423, -0.0312, 0.000333, "ECONOMIC WIN", True)]
    lines += [step_line(1201), quality_line(-0.01, 0.02, -0.00001, "TAX ONLY", False)]
    lines += [step_line(1202, audit=True), quality_line(0.02, -0.01, 0.00002, "AUDIT-POS", False)]
    lines += [step_line(1203, audit=True), quality_line(-0.02, 0.01, -0.00002, "AUDIT-NEG", False)]
    t, _ = parse(lines)
    q = t["quality"]
    assert q["step"].to_list() == [1200, 1201, 1202, 1203]
    assert q["status"].to_list() == ["ECONOMIC WIN", "TAX ONLY", "AUDIT-POS", "AUDIT-NEG"]
    assert q["confidence"].to_list() == [True, False, False, False]
    assert q["delta_ce"][0] == 0.0423 and q["delta_h"][0] == -0.0312 and q["coupon"][0] == 0.000333


def test_lr_check_carries_its_own_step() -> None:
    t, _ = parse([step_line(500), lr_check_line(500, 2.8e-4, "cosine")])
    assert t["lr_checks"].rows() == [(500, pytest.approx(2.8e-4), "cosine")]


def test_events_and_init_meta_lines() -> None:
    lines = [
        INIT_MODEL3B,
        "🚀 Starting Training Loop...",
        step_line(1250),
        "",
        "🔒 [DEADBAND ENGAGED] λ_p=2.51e-02 stable for 100 steps",
        "   Asymmetric bounds: TARGET_K=2.40 ± [-2.0%, +5.0%]",
        "💾 Checkpoint saved: checkpoints/kronecker_latest.pt (step=1250, λ_p=1.20e-03)",
        "🛠️ CLI Override: Setting compute price λ_p = 5.00e-03",
        "[PAUSE] Received signal 2. Pausing after current step...",
        "[PAUSE] Saving checkpoint at step 1250 and exiting...",
        "JSON Dump failed: disk full",
        "Generation failed: CUDA error",
    ]
    t, _ = parse(lines)
    kinds = t["events"]["kind"].to_list()
    assert kinds == [
        "init",
        "resume",
        "deadband",
        "deadband_bounds",
        "checkpoint",
        "cli_override",
        "pause",
        "pause",
        "json_dump_failed",
        "generation_failed",
    ]
    ev = t["events"].filter(pl.col("kind") == "checkpoint")
    assert ev["step"][0] == 1250
    assert t["problems"].is_empty()


def test_generation_text_is_never_data() -> None:
    fake = step_line(99999, lm=0.0001)
    lines = (
        [step_line(500)]
        + generation_block(
            500, [("Once upon a time", "there was\n" + fake + "\n L0: k_exec=9"), ("Hi", "ok")]
        )
        + [step_line(501)]
    )
    t, _ = parse(lines)
    assert t["steps"]["step"].to_list() == [500, 501]
    assert t["layers"].is_empty()
    g = t["generations"]
    assert g["sample"].to_list() == [1, 2]
    assert g["step"].to_list() == [500, 500]
    assert g["prompt"][0] == "Once upon a time" and g["prompt_tokens"][0] == 4
    assert g["output"][0].splitlines()[1] == fake
    assert t["problems"].is_empty()


def test_unclosed_generation_block_ends_at_the_next_log_line() -> None:
    block = generation_block(500, [("p", "o")])[:-1]  # no closing rule: generation crashed
    t, _ = parse([step_line(500), *block, "Generation failed: OOM", step_line(501)])
    assert t["steps"]["step"].to_list() == [500, 501]
    assert t["generations"].height == 1
    assert "generation_failed" in t["events"]["kind"].to_list()


def test_stderr_noise_is_events_not_problems() -> None:
    lines = [
        step_line(1),
        "Traceback (most recent call last):",
        '  File "train.py", line 10, in <module>',
        "    main()",
        "RuntimeError: CUDA out of memory",
        "/usr/lib/python3/torch/x.py:12: UserWarning: something deprecated",
        "  warnings.warn(",
        " 45%|████▌     | 45/100 [00:01<00:02, 30.00it/s]\r 50%|█████     | 50/100 [00:01<00:02, 30.00it/s]",
        step_line(2),
        layer_line(0),
    ]
    t, _ = parse(lines)
    ev = t["events"]
    assert ev.filter(pl.col("kind") == "traceback").height == 4
    assert ev.filter(pl.col("kind") == "warning").height == 2
    assert ev.filter(pl.col("kind") == "progress").height == 1
    assert t["problems"].is_empty()
    assert t["layers"]["step"].to_list() == [2]


def test_every_line_is_accounted_for() -> None:
    lines = small_log(steps=60, layers=3) + ["something nobody prints", "STEP: 61 | TOT: 3.2"]
    t, facts = parse(lines)
    n_data = t["steps"].height + t["layers"].height + t["traces"].height + t["quality"].height
    n_data += t["lr_checks"].height
    assert n_data + t["events"].height + t["problems"].height == len(lines) == facts["n_lines"]
    reasons = dict(
        zip(t["problems"]["line_no"].to_list(), t["problems"]["reason"].to_list(), strict=True)
    )
    assert reasons == {len(lines) - 1: "unrecognized line", len(lines): "malformed step line"}


def test_malformed_known_lines_are_reported_with_line_numbers() -> None:
    lines = [
        step_line(10),
        layer_line(0)[:60],
        "  L0 s_trace: [1.00, 0.8",
        "LR CHECK: (10, oops)",
        "  RECURRENCE QUALITY: ΔCE=0.1 | ΔH=x",
    ]
    t, _ = parse(lines)
    assert t["problems"]["line_no"].to_list() == [2, 3, 4, 5]
    assert t["problems"]["reason"].to_list() == [
        "malformed layer line",
        "malformed s_trace line",
        "malformed LR CHECK line",
        "malformed RECURRENCE QUALITY line",
    ]


def test_resumed_log_keeps_the_later_occurrence() -> None:
    first = [step_line(s, lm=4.0) for s in range(1240, 1261)] + [
        "Traceback (most recent call last):",
        "KeyboardInterrupt",
    ]
    resume = [
        "🔄 Loading checkpoint: checkpoints/kronecker_latest.pt",
        "✅ Loaded checkpoint from checkpoints/kronecker_latest.pt at step 1250",
        "   📊 Restored λ_p = 3.10e-03",
        "⏩ Resuming from step 1250 (loss: 3.1234)",
        "📈 Restored compute price λ_p = 3.10e-03",
        "🚀 Starting Training Loop...",
    ]
    second = []
    for s in range(1250, 1271):
        second.append(step_line(s, lm=3.0))
        if s % 10 == 0:
            second.append(layer_line(0, k=1.9))
    first_with_layers = []
    for ln in first:
        first_with_layers.append(ln)
        if ln.startswith("STEP: 1250 "):
            first_with_layers.append(layer_line(0, k=1.1))
    t, _ = parse(first_with_layers + resume + second)
    steps = t["steps"]
    assert steps["step"].to_list() == list(range(1240, 1271))
    assert steps["step"].is_unique().all()
    by_step = dict(zip(steps["step"].to_list(), steps["lm_loss"].to_list(), strict=True))
    assert by_step[1249] == 4.0 and by_step[1250] == 3.0 and by_step[1260] == 3.0
    seg = dict(zip(steps["step"].to_list(), steps["segment"].to_list(), strict=True))
    assert seg[1249] == 0 and seg[1250] == 1
    layers = t["layers"].filter(pl.col("step") == 1250)
    assert layers["k"].to_list() == [1.9]
    restored = t["events"].filter(pl.col("kind") == "restored_lambda")
    assert restored.height == 2


def test_resume_exactly_at_the_crash_step_still_starts_a_segment() -> None:
    lines = [step_line(s) for s in range(10)] + ["⏩ Resuming from step 10 (loss: 3.0)"]
    lines += [step_line(s) for s in range(10, 13)]
    t, _ = parse(lines)
    assert t["steps"]["segment"].to_list() == [0] * 10 + [1] * 3


def test_crlf_and_truncated_last_line() -> None:
    lines = small_log(steps=12, layers=1)
    text = "\r\n".join(lines) + "\r\n" + step_line(12)[:80]
    t, facts = parse_text(text)
    assert t["steps"]["step"].to_list() == list(range(12))
    assert facts["truncated"] is True
    last = t["problems"].row(-1, named=True)
    assert last["line_no"] == len(lines) + 1 and "incomplete last line" in last["reason"]


def test_empty_and_non_log_text() -> None:
    t, facts = parse_text("")
    assert all(df.is_empty() for df in t.values()) and facts["n_lines"] == 0
    for name, df in t.items():
        assert dict(df.schema) == {k: v for k, v in schema.TABLES[name].items()}
    t, _ = parse_text("hello\nworld\n")
    assert t["problems"]["reason"].to_list() == ["unrecognized line"] * 2


def test_line_kinds_account_for_every_physical_line() -> None:
    lines = small_log(steps=40, layers=2) + [
        "",
        "garbage",
        "Traceback (most recent call last):",
        "  x",
    ]
    lines += generation_block(40, [("p", "o\n\nSTEP: 1 | fake")]) + [
        "💾 Checkpoint saved: c.pt (step=40, λ_p=1.00e-03)"
    ]
    t, facts = parse_text("\n".join(lines) + "\n" + "STEP: 41 | TO")
    kinds = facts["line_kinds"]
    assert sum(kinds.values()) + facts["truncated"] == facts["n_lines"] == len(lines) + 1
    assert kinds["step"] == 40 and kinds["blank"] == 1 and kinds["unknown"] == 1
    assert kinds["traceback"] == 2 and kinds["checkpoint"] == 1
    assert kinds["generation"] == len(generation_block(40, [("p", "o\n\nSTEP: 1 | fake")]))


def test_logging_and_torch_warnings_are_warnings() -> None:
    t, _ = parse(
        [
            step_line(1),
            "WARNING:root:something odd",
            "[W socket.cpp:663] [c10d] no peer",
            step_line(2),
        ]
    )
    assert t["events"]["kind"].to_list() == ["warning", "warning"]
    assert t["problems"].is_empty()
