"""The grammar against the real trainer: the writers reproduce the trainer's own example
lines byte for byte, the reference patterns match what the writers print, and every line
written parses back to its values at print precision.

The literal lines below are copied from the trainer's log format notes: they are facts
about the trainer, so a change to the grammar that breaks one is a drift from the trainer.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ponder_parse import schema
from ponder_parse.format import grammar as fmt
from ponder_parse.format import writer
from ponder_parse.parse.scan import parse_text

# --- the trainer's example lines ---------------------------------------------------------

DOC_STEP = (
    "STEP: 1500 [AUDIT] | TOT: 3.2145 | LM: 2.9800 | PONDER: 0.000123 (RAW: 0.000456, "
    "RWD: 0.000333) | LR: 2.8000e-04 | GRAD: 0.8732 | λ_p: 1.20e-03[DB] | CTRL_ERR: +0.082 | "
    "P_NR: 3.2% | MTP: 3.1200 | AUX: 0.0021 | PL/LM: 0.04% | AVGS: exec=1.43, k=1.38, "
    "gap=0.05 | dt:  420.00ms | tok/sec:    609.52"
)
DOC_STEP_VALUES: dict[str, Any] = {
    "step": 1500,
    "audit": True,
    "tot_loss": 3.2145,
    "lm_loss": 2.98,
    "total_ponder": 0.000123,
    "ponder_raw": 0.000456,
    "reward": 0.000333,
    "lr": 2.8e-4,
    "grad_norm": 0.8732,
    "lambda_p": 1.2e-3,
    "deadband_active": True,
    "ctrl_err": 0.082,
    "p_near_clamp": 0.032,
    "mtp_loss": 3.12,
    "aux_loss": 0.0021,
    "pl_lm": 0.0004,
    "avg_exec": 1.43,
    "avg_k": 1.38,
    "avg_gap": 0.05,
    "dt_ms": 420.0,
    "tok_per_sec": 609.52,
}
DOC_LAYER = (
    " L0: k_exec=2, expected_k=1.38, s_fin=0.042 | tok: avg=1.41, p95=2.00 | tail: "
    "≥2:41.20%, ≥3:5.30%, ≥4:0.10% | ent=3.1420 | p_mu=0.82, p_std=0.120, d_rel=0.043 | "
    "Δh=0.031, Δp=-0.41 | ponder=0.031, λ_p=1.20e-03"
)
DOC_LAYER_VALUES: dict[str, Any] = {
    "layer": 0,
    "k_exec": 2,
    "k": 1.38,
    "s_final": 0.042,
    "avg_exec_token": 1.41,
    "p95_exec_token": 2.0,
    "frac_ge2": 0.412,
    "frac_ge3": 0.053,
    "frac_ge4": 0.001,
    "ent": 3.142,
    "p_mean": 0.82,
    "p_std": 0.12,
    "d_rel": 0.043,
    "h_diff": 0.031,
    "p_diff": -0.41,
    "ponder_signal": 0.031,
    "lambda_p": 1.2e-3,
}
DOC_TRACE = "  L0 s_trace: [1.00, 0.82, 0.23, 0.04]"
DOC_LR_CHECK = "LR CHECK: (1500, 2.80e-04, phase=cosine)"
DOC_QUALITY = (
    "  RECURRENCE QUALITY: ΔCE=0.042300 | ΔH=-0.0312 | COUPON: 0.000333 "
    "[ECONOMIC WIN] [CONFIDENCE+]"
)
DOC_INIT_MODEL3B = (
    "INIT | PARAMS: 451234567 | EMB: Kronecker(D=8192)+tok_embed | D=512 L=8 H=16 "
    "EXPERTS=4r+4n | PONDER=ON"
)
DOC_INIT_SMOLLM = "INIT | PARAMS: 86123456 | K: 1536"
DOC_DEADBAND = "🔒 [DEADBAND ENGAGED] λ_p=2.51e-02 stable for 100 steps"
DOC_BOUNDS_MODEL3B = "   Asymmetric bounds: TARGET_K=2.40 ± [-2.0%, +5.0%]"
DOC_BOUNDS_SMOLLM = "   Controller now uses asymmetric bounds: TARGET_K=1.30 ± [-2.0%, +5.0%]"
DOC_CHECKPOINT = "💾 Checkpoint saved: checkpoints/kronecker_latest.pt (step=1500, λ_p=1.20e-03)"
DOC_RESTORED = "   📊 Restored λ_p = 3.10e-03"
DOC_RESUMING = "⏩ Resuming from step 1250 (loss: 3.1234)"
DOC_START = "🚀 Starting Training Loop..."
DOC_GEN_HEADER = "==================== GENERATION STEP 1500 ===================="


def test_step_line_is_the_trainers_example() -> None:
    assert writer.format_step_line(DOC_STEP_VALUES) == DOC_STEP


def test_layer_trace_lr_and_quality_lines_are_the_trainers_examples() -> None:
    assert writer.format_layer_line(DOC_LAYER_VALUES) == DOC_LAYER
    assert writer.format_trace_line(0, [1.0, 0.82, 0.23, 0.04]) == DOC_TRACE
    assert writer.format_lr_check_line(1500, 2.8e-4, "cosine") == DOC_LR_CHECK
    assert writer.format_quality_line(0.0423, -0.0312, 0.000333, "ECONOMIC WIN", True) == (
        DOC_QUALITY
    )


def test_init_lines_are_the_trainers_examples() -> None:
    model3b = writer.format_init_line(
        "model3b",
        params=451234567,
        emb="Kronecker(D=8192)+tok_embed",
        d_model=512,
        n_layers_cfg=8,
        n_heads=16,
        experts="4r+4n",
        ponder="ON",
    )
    assert model3b == DOC_INIT_MODEL3B
    assert writer.format_init_line("smollm", params=86123456, K=1536) == DOC_INIT_SMOLLM


def test_event_lines_are_the_trainers_examples() -> None:
    assert writer.format_deadband_lines("model3b", 2.51e-2, 100, 2.40, 0.02, 0.05) == [
        "",
        DOC_DEADBAND,
        DOC_BOUNDS_MODEL3B,
    ]
    assert writer.format_deadband_lines("smollm", 2.51e-2, 100, 1.30, 0.02, 0.05)[2] == (
        DOC_BOUNDS_SMOLLM
    )
    assert writer.format_checkpoint_line("checkpoints/kronecker_latest.pt", 1500, 1.2e-3) == (
        DOC_CHECKPOINT
    )
    resume = writer.format_resume_lines("checkpoints/kronecker_latest.pt", 1250, 3.1e-3, 3.1234)
    assert resume[0] == "🔄 Loading checkpoint: checkpoints/kronecker_latest.pt"
    assert resume[1] == "✅ Loaded checkpoint from checkpoints/kronecker_latest.pt at step 1250"
    assert resume[2:] == [DOC_RESTORED, DOC_RESUMING, DOC_START]


def test_generation_block_is_the_trainers_layout() -> None:
    assert writer.format_generation_block(1500, []) == [DOC_GEN_HEADER, "=" * 60]
    block = writer.format_generation_block(1500, [(37, ["Once upon"], 128, ["a time", "x"])])
    assert block == [
        DOC_GEN_HEADER,
        "[GEN 1]",
        "  Prompt (37 tokens):",
        "    Once upon",
        "  Output (128 tokens):",
        "    a time",
        "    x",
        "=" * 60,
    ]


def test_smollm_step_line_has_no_mtp_and_can_carry_baton() -> None:
    values = DOC_STEP_VALUES | {"audit": False, "deadband_active": False, "mtp_loss": None}
    assert writer.format_step_line(values) == (
        "STEP: 1500 | TOT: 3.2145 | LM: 2.9800 | PONDER: 0.000123 (RAW: 0.000456, "
        "RWD: 0.000333) | LR: 2.8000e-04 | GRAD: 0.8732 | λ_p: 1.20e-03 | CTRL_ERR: +0.082 | "
        "P_NR: 3.2% | PL/LM: 0.04% | AVGS: exec=1.43, k=1.38, gap=0.05 | dt:  420.00ms | "
        "tok/sec:    609.52"
    )
    baton = values | {"baton": 0.4123, "baton_lam": 0.0311, "dt_ms": 9.5, "tok_per_sec": 123.0}
    assert writer.format_step_line(baton).endswith(
        "| P_NR: 3.2% | BATON: 0.412 (lam=0.031) | PL/LM: 0.04% | AVGS: exec=1.43, k=1.38, "
        "gap=0.05 | dt:    9.50ms | tok/sec:    123.00"
    )
    no_layers = values | {"pl_lm": None}
    assert writer.format_step_line(no_layers).endswith(
        "| P_NR: 3.2% | dt:  420.00ms | tok/sec:    609.52"
    )


def test_two_digit_layer_ids_and_non_finite_values() -> None:
    layer = writer.format_layer_line(DOC_LAYER_VALUES | {"layer": 12, "k_exec": 4})
    assert layer.startswith(" L12: k_exec=4, expected_k=1.38, ")
    nan, inf = float("nan"), float("inf")
    diverged = DOC_STEP_VALUES | {
        "audit": False,
        "tot_loss": nan,
        "lm_loss": nan,
        "grad_norm": inf,
        "ctrl_err": nan,
        "p_near_clamp": nan,
        "pl_lm": nan,
        "dt_ms": nan,
    }
    line = writer.format_step_line(diverged)
    assert line.startswith("STEP: 1500 | TOT: nan | LM: nan | PONDER: ")
    assert "| GRAD: inf | " in line
    assert "| CTRL_ERR: +nan | P_NR: nan% | " in line
    assert "| PL/LM: nan% | " in line
    assert "| dt:     nanms | " in line
    tables, _ = parse_text(line + "\n")
    assert tables["problems"].is_empty()
    row = tables["steps"].row(0, named=True)
    assert math.isnan(row["tot_loss"]) and row["grad_norm"] == inf
    assert math.isnan(row["p_near_clamp"]) and math.isnan(row["dt_ms"])


def test_example_lines_parse_to_their_values() -> None:
    text = "\n".join([DOC_STEP, DOC_LAYER, DOC_TRACE, DOC_LR_CHECK, DOC_QUALITY]) + "\n"
    tables, _ = parse_text(text)
    assert tables["problems"].is_empty()
    step = tables["steps"].row(0, named=True)
    for name, value in DOC_STEP_VALUES.items():
        assert step[name] == (value if isinstance(value, bool) else pytest.approx(value)), name
    layer = tables["layers"].row(0, named=True)
    for name, value in DOC_LAYER_VALUES.items():
        assert layer[name] == pytest.approx(value), name
    assert tables["traces"]["s_trace"].to_list() == [[1.0, 0.82, 0.23, 0.04]]
    assert tables["lr_checks"].row(0) == (1500, 2.8e-4, "cosine")
    quality = tables["quality"].row(0, named=True)
    assert quality["status"] == "ECONOMIC WIN" and quality["confidence"] is True


@pytest.mark.parametrize(
    ("pattern", "line"),
    [
        (fmt.STEP, DOC_STEP),
        (fmt.LAYER, DOC_LAYER),
        (fmt.TRACE, DOC_TRACE),
        (fmt.LR_CHECK, DOC_LR_CHECK),
        (fmt.QUALITY, DOC_QUALITY),
    ],
)
def test_reference_patterns_match_the_examples(pattern: str, line: str) -> None:
    assert re.match(pattern, line)
    assert not re.match(pattern, line + " x")


def test_reference_pattern_reads_the_guides_audit_placement() -> None:
    guide = "[AUDIT] " + DOC_STEP.replace(" [AUDIT]", "")
    m = re.match(fmt.STEP, guide)
    assert m and m["audit_pre"] and not m["audit"]


def test_every_line_kind_has_its_fields_in_the_table_vocabulary() -> None:
    tables = {
        "step": schema.STEPS,
        "layer": schema.LAYERS,
        "trace": schema.TRACES,
        "quality": schema.QUALITY,
        "lr_check": schema.LR_CHECKS,
    }
    for line in fmt.DATA_LINES:
        names = [f.name for f in line.fields] + [f.name for f in line.flags]
        assert len(names) == len(set(names)), line.kind
        assert set(names) <= set(tables[line.kind]), line.kind


# --- round trip: written lines parse back at print precision ------------------------------
# Each example is a parse (a dozen Polars calls): no per-example deadline, which a busy
# machine turns into flaky failures.


def _tolerance(f: fmt.Field, value: float) -> float:
    """Half a unit in the last printed place, in the units the tables hold."""
    spec = f.spec.rstrip("%")
    digits = int(spec.split(".")[1].rstrip("fe"))
    if spec.endswith("e"):
        if value == 0:
            return 0.0
        return 0.5 * 10 ** (math.floor(math.log10(abs(value))) - digits) * 1.0001
    half = 0.5 * 10**-digits
    return (half * 0.01 if f.percent else half) + 1e-9 * abs(value)


def _close(f: fmt.Field, parsed: float, value: float) -> bool:
    if math.isnan(value):
        return math.isnan(parsed)
    if math.isinf(value):
        return parsed == value
    return abs(parsed - value) <= _tolerance(f, value)


def _floats(f: fmt.Field) -> st.SearchStrategy[float]:
    if f.spec.endswith("e"):
        return st.floats(1e-9, 1.0)
    if f.percent:
        return st.floats(0, 1)
    if f.padded:
        return st.floats(0, 1e6)
    return st.floats(-1e4, 1e4) | st.sampled_from([math.nan, math.inf, -math.inf])


def _values(line: fmt.LineFormat, optional: dict[str, bool]) -> st.SearchStrategy[dict]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for block in line.blocks:
        for f in block.fields:
            if block.optional and not optional.get(block.name, False):
                fields[f.name] = st.none()
            elif f.integer:
                fields[f.name] = st.integers(0, 10**7)
            elif f.choices:
                fields[f.name] = st.sampled_from(f.choices)
            else:
                fields[f.name] = _floats(f)
    fields |= {flag.name: st.booleans() for flag in line.flags}
    return st.fixed_dictionaries(fields)


@st.composite
def _step_values(draw: st.DrawFn) -> dict[str, Any]:
    optional = {b.name: draw(st.booleans()) for b in fmt.STEP_LINE.blocks if b.optional}
    return draw(_values(fmt.STEP_LINE, optional))


def _assert_round_trip(line: fmt.LineFormat, values: dict[str, Any], row: dict[str, Any]) -> None:
    for f in line.fields:
        if values[f.name] is None:
            assert row[f.name] is None, f.name
        elif f.integer or f.text:
            assert row[f.name] == values[f.name], f.name
        else:
            assert _close(f, row[f.name], values[f.name]), (f.name, row[f.name], values[f.name])
    for flag in line.flags:
        assert row[flag.name] == values[flag.name], flag.name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=_step_values())
def test_step_lines_parse_back_at_print_precision(values: dict[str, Any]) -> None:
    line = writer.format_step_line(values)
    tables, _ = parse_text(line + "\n")
    assert tables["problems"].is_empty(), line
    _assert_round_trip(fmt.STEP_LINE, values, tables["steps"].row(0, named=True))
    assert re.match(fmt.STEP, line), line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    layer=_values(fmt.LAYER_LINE, {}),
    trace=st.lists(st.floats(0, 1), min_size=1, max_size=8),
    quality=_values(fmt.QUALITY_LINE, {}),
    lr=st.floats(1e-9, 1.0),
    phase=st.sampled_from(fmt.LR_PHASES),
)
def test_layer_trace_quality_and_lr_lines_parse_back(
    layer: dict[str, Any],
    trace: list[float],
    quality: dict[str, Any],
    lr: float,
    phase: str,
) -> None:
    lines = [
        writer.format_step_line(DOC_STEP_VALUES),
        writer.format_layer_line(layer),
        writer.format_trace_line(layer["layer"], trace),
        writer.format_lr_check_line(1500, lr, phase),
        writer.format_quality_line(**quality),
    ]
    tables, _ = parse_text("\n".join(lines) + "\n")
    assert tables["problems"].is_empty(), lines
    _assert_round_trip(fmt.LAYER_LINE, layer, tables["layers"].row(0, named=True))
    _assert_round_trip(fmt.QUALITY_LINE, quality, tables["quality"].row(0, named=True))
    parsed = tables["traces"]["s_trace"][0].to_list()
    assert len(parsed) == len(trace)
    assert all(abs(a - b) <= 0.005 + 1e-12 for a, b in zip(parsed, trace, strict=True))
    lr_row = tables["lr_checks"].row(0, named=True)
    assert lr_row["phase"] == phase
    assert _close(fmt.LR_CHECK_LINE.field("lr"), lr_row["lr"], lr)
    patterns = (fmt.LAYER, fmt.TRACE, fmt.LR_CHECK, fmt.QUALITY)
    for pattern, text in zip(patterns, lines[1:], strict=True):
        assert re.match(pattern, text), text


@pytest.mark.parametrize(
    ("delta_ce", "delta_h", "audit", "status", "confidence"),
    [
        (0.0423, -0.0312, False, "ECONOMIC WIN", True),  # helped and more confident
        (0.0423, 0.01, False, "ECONOMIC WIN", False),
        (-0.01, -0.01, False, "TAX ONLY", False),
        (0.0423, -0.0312, True, "AUDIT-POS", False),  # never CONFIDENCE+ on an audit
        (-0.0423, -0.0312, True, "AUDIT-NEG", False),
    ],
)
def test_quality_status_as_the_trainer_decides_it(
    delta_ce: float, delta_h: float, audit: bool, status: str, confidence: bool
) -> None:
    assert writer.quality_status(delta_ce, delta_h, audit) == (status, confidence)
    line = writer.format_quality_line(delta_ce, delta_h, 0.000333, status, confidence)
    assert line.endswith(f"[{status}]" + (" [CONFIDENCE+]" if confidence else ""))
