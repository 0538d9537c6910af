"""The trainers' own print statements, as f-strings copied from the log format notes.

Tests format values with exactly what the trainer prints, so a parser test is a test
against the real format, not against the parser's idea of it.
"""

from __future__ import annotations


def step_line(
    step: int,
    tot: float = 3.2145,
    lm: float = 2.98,
    net: float = 0.000123,
    raw: float = 0.000456,
    rwd: float = 0.000333,
    lr: float = 2.8e-4,
    grad: float = 0.8732,
    lam: float = 1.2e-3,
    deadband_active: bool = False,
    ctrl_err: float = 0.082,
    p_near: float = 0.032,
    *,
    audit: bool = False,
    variant: str = "model3b",
    mtp: float = 3.12,
    aux: float = 0.0021,
    baton: tuple[float, float] | None = None,
    avgs: tuple[float, float, float, float] | None = (0.0004, 1.43, 1.38, 0.05),
    dt: float = 420.0,
    tps: float = 609.52,
) -> str:
    audit_flag = "[AUDIT] " if audit else ""
    s = (
        f"STEP: {step} {audit_flag}| TOT: {tot:.4f} | LM: {lm:.4f} | "
        f"PONDER: {net:.6f} (RAW: {raw:.6f}, RWD: {rwd:.6f}) | "
        f"LR: {lr:.4e} | GRAD: {grad:.4f} | "
        f"λ_p: {lam:.2e}{'[DB]' if deadband_active else ''} | "
        f"CTRL_ERR: {ctrl_err:+.3f} | P_NR: {p_near:.1%}"
    )
    if variant == "model3b":
        s += f" | MTP: {mtp:.4f} | AUX: {aux:.4f}"
    if baton is not None:
        baton_rat, lam_mu = baton
        s += f" | BATON: {baton_rat:.3f} (lam={lam_mu:.3f})"
    if avgs is not None:
        pl, e, k, g = avgs
        s += f" | PL/LM: {pl:.2f}% | AVGS: exec={e:.2f}, k={k:.2f}, gap={g:.2f}"
    s += f" | dt: {dt:7.2f}ms | tok/sec: {tps:9.2f}"
    return s


def layer_line(
    i: int,
    k_exec: int = 2,
    k: float = 1.38,
    s_final: float = 0.042,
    avg_tok: float = 1.41,
    p95_tok: float = 2.0,
    ge2: float = 0.412,
    ge3: float = 0.053,
    ge4: float = 0.001,
    ent: float = 3.142,
    p_mean: float = 0.82,
    p_std: float = 0.12,
    d_rel: float = 0.043,
    h_diff: float = 0.031,
    p_diff: float = -0.41,
    ponder_signal: float = 0.031,
    lambda_p: float = 1.2e-3,
) -> str:
    return (
        f" L{i}: k_exec={k_exec}, expected_k={k:.2f}, s_fin={s_final:.3f}"
        f" | tok: avg={avg_tok:.2f}, p95={p95_tok:.2f} | tail: ≥2:{ge2:.2%}, ≥3:{ge3:.2%}, ≥4:{ge4:.2%}"
        f" | ent={ent:.4f} | p_mu={p_mean:.2f}, p_std={p_std:.3f}, d_rel={d_rel:.3f}"
        f" | Δh={h_diff:.3f}, Δp={p_diff:.2f}"
        f" | ponder={ponder_signal:.3f}, λ_p={lambda_p:.2e}"
    )


def trace_line(i: int, trace: list[float]) -> str:
    return f"  L{i} s_trace: [{', '.join(f'{v:.2f}' for v in trace)}]"


def lr_check_line(step: int, lr: float, phase: str) -> str:
    return f"LR CHECK: ({step}, {lr:.2e}, phase={phase})"


def quality_line(ce: float, dh: float, coupon: float, status: str, conf: bool) -> str:
    c = " [CONFIDENCE+]" if conf else ""
    return (
        f"  RECURRENCE QUALITY: ΔCE={ce:.6f} | ΔH={dh:.4f} | COUPON: {coupon:.6f}"
        + f" [{status}]{c}"
    )


INIT_MODEL3B = (
    "INIT | PARAMS: 451234567 | EMB: Kronecker(D=8192)+tok_embed | D=512 L=8 H=16 "
    "EXPERTS=4r+4n | PONDER=ON"
)
INIT_SMOLLM = "INIT | PARAMS: 86123456 | K: 1536"


def generation_block(step: int, samples: list[tuple[str, str]]) -> list[str]:
    out = [f"{'=' * 20} GENERATION STEP {step} {'=' * 20}"]
    for n, (prompt, output) in enumerate(samples, start=1):
        out.append(f"[GEN {n}]")
        out.append(f"  Prompt ({len(prompt.split())} tokens):")
        out.extend("    " + ln for ln in prompt.split("\n"))
        out.append(f"  Output ({len(output.split())} tokens):")
        out.extend("    " + ln for ln in output.split("\n"))
    out.append("=" * 60)
    return out


def small_log(
    steps: int = 30, layers: int = 2, ponder_start: int = 20, *, variant: str = "model3b"
) -> list[str]:
    """A short, complete log: every line kind at the trainer's cadence."""
    lines = [INIT_MODEL3B if variant == "model3b" else INIT_SMOLLM, "🚀 Starting Training Loop..."]
    for s in range(steps):
        audit = s >= ponder_start and s % 7 == 0
        lines.append(step_line(s, lm=5.0 - s * 0.01, audit=audit, variant=variant))
        if s % 10 == 0:
            for i in range(layers):
                lines.append(layer_line(i, k=1.3 + i * 0.1))
                if s % 50 == 0:
                    lines.append(trace_line(i, [1.0, 0.82, 0.23, 0.04]))
            if s % 50 == 0:
                lines.append(lr_check_line(s, 3e-4, "warmup"))
        if s >= ponder_start:
            if audit:
                lines.append(quality_line(0.01, -0.02, 0.00002, "AUDIT-POS", False))
            else:
                lines.append(quality_line(0.0423, -0.0312, 0.000333, "ECONOMIC WIN", True))
    return lines
