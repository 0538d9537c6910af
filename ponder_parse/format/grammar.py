"""Regular expressions for every line kind the trainers print.

Kept apart from the parsing machinery so that the exact shape of each line (taken from
the trainers' own f-strings) can be read in one place. All patterns are Rust-regex
compatible (no look-around, no back-references) because Polars evaluates them.

The full step, layer and quality patterns are the reference for those lines' shape; the
parser itself reads and validates them structurally (`logparse._step_fields` and kin),
which is faster, and the line-by-line baseline in `benchmarks/parse_speed.py` uses them.
"""

from __future__ import annotations

# Data-line patterns use ASCII classes ([0-9], [ \t]): Unicode \d and \s make the regex
# automaton several times larger and the match measurably slower.
# A number as Python formats it: fixed, exponent, signed, or a non-finite value
# (`nan`, `+nan`, `inf`, `-inf`) from a diverged run. Non-finite values are data.
NUM = r"[-+]?(?:[nN]a[nN]|[iI]nf|[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)"


def _n(name: str) -> str:
    return f"(?P<{name}>{NUM})"


# Level 1. The audit flag sits after the step number in real logs; the guide shows it
# before `STEP:`. Both are accepted. Optional blocks: MTP/AUX (model3b), BATON (smollm),
# PL/LM + AVGS (only when per-layer stats exist).
STEP = (
    r"^(?P<audit_pre>\[AUDIT\] )?STEP: (?P<step>[0-9]+) (?P<audit_post>\[AUDIT\] )?"
    rf"\| TOT: {_n('tot_loss')} \| LM: {_n('lm_loss')} \| "
    rf"PONDER: {_n('total_ponder')} \(RAW: {_n('ponder_raw')}, RWD: {_n('reward')}\) \| "
    rf"LR: {_n('lr')} \| GRAD: {_n('grad_norm')} \| "
    rf"λ_p: {_n('lambda_p')}(?P<db>\[DB\])? \| "
    rf"CTRL_ERR: {_n('ctrl_err')} \| P_NR: {_n('p_near_clamp')}%"
    rf"(?: \| MTP: {_n('mtp_loss')} \| AUX: {_n('aux_loss')})?"
    rf"(?: \| BATON: {_n('baton')} \(lam={_n('baton_lam')}\))?"
    rf"(?: \| PL/LM: {_n('pl_lm')}% \| AVGS: exec={_n('avg_exec')}, k={_n('avg_k')}, gap={_n('avg_gap')})?"
    rf" \| dt: *{_n('dt_ms')}ms \| tok/sec: *{_n('tok_per_sec')}[ \t]*$"
)

# Level 2: one per layer, one leading space.
LAYER = (
    rf"^[ \t]*L(?P<layer>[0-9]+): k_exec=(?P<k_exec>[0-9]+), expected_k={_n('k')}, s_fin={_n('s_final')}"
    rf" \| tok: avg={_n('avg_exec_token')}, p95={_n('p95_exec_token')}"
    rf" \| tail: ≥2:{_n('frac_ge2')}%, ≥3:{_n('frac_ge3')}%, ≥4:{_n('frac_ge4')}%"
    rf" \| ent={_n('ent')} \| p_mu={_n('p_mean')}, p_std={_n('p_std')}, d_rel={_n('d_rel')}"
    rf" \| Δh={_n('h_diff')}, Δp={_n('p_diff')}"
    rf" \| ponder={_n('ponder_signal')}, λ_p={_n('lambda_p')}[ \t]*$"
)

# Level 3.
TRACE = rf"^[ \t]*L(?P<layer>[0-9]+) s_trace: \[(?P<values>[ \t]*(?:{NUM}(?:[ \t]*,[ \t]*{NUM})*)?[ \t]*)\][ \t]*$"
LR_CHECK = rf"^LR CHECK: \((?P<step>[0-9]+), {_n('lr')}, phase=(?P<phase>\w+)\)[ \t]*$"

# Level 4.
QUALITY = (
    rf"^[ \t]*RECURRENCE QUALITY: ΔCE={_n('delta_ce')} \| ΔH={_n('delta_h')} \| "
    rf"COUPON: {_n('coupon')} \[(?P<status>ECONOMIC WIN|TAX ONLY|AUDIT-POS|AUDIT-NEG)\]"
    r"(?P<conf> \[CONFIDENCE\+\])?[ \t]*$"
)

# Run-level lines.
INIT_PARAMS = r"PARAMS: (\d+)"
INIT_FIELDS = {
    "emb": r"EMB: ([^|]+?)\s*(?:\||$)",
    "d_model": r"\bD=(\d+)\s",
    "n_layers_cfg": r"\bL=(\d+)",
    "n_heads": r"\bH=(\d+)",
    "experts": r"EXPERTS=(\S+)",
    "ponder": r"PONDER=(\w+)",
    "K": r"\bK: (\d+)",
}
TARGET_K = rf"TARGET_K=({NUM})"
LAMBDA_VALUE = rf"λ_p\s*=\s*({NUM})"
CHECKPOINT_STEP = r"\(step=(\d+)"
# The step a resume or pause line names: "Resuming from step 1250", "... at step 812".
NAMED_STEP = r"(?:Resuming from step|at step) (\d+)"
GEN_HEADER = r"^=+ GENERATION STEP (\d+) =+\s*$"
GEN_CLOSE = r"^={20,}\s*$"
GEN_SAMPLE = r"^\[GEN (\d+)\]\s*$"
GEN_PROMPT = r"^  Prompt \((\d+) tokens\):\s*$"
GEN_OUTPUT = r"^  Output \((\d+) tokens\):\s*$"

# Lines that other processes write into the same file (stderr redirected).
PROGRESS = r"\d+%\||\d+(?:\.\d+)?(?:it/s|s/it)\]"
WARNING_MARK = "Warning: "  # `file.py:12: UserWarning: ...`, matched literally (fast)
EXCEPTION = r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b(?::.*)?\s*$"
