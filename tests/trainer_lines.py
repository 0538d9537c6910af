"""Real-format lines for tests, with test defaults, printed by the grammar's writers.

The writers are held to the trainer's own example lines in `tests/format/`, so a parser
test built from these is a test against the real format, not against the parser's idea
of it. The arguments keep the trainer's own names and units (PL/LM in percent).
"""

from __future__ import annotations

from ponder_parse.format import writer


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
    pl, e, k, g = avgs if avgs is not None else (None, None, None, None)
    return writer.format_step_line(
        {
            "step": step,
            "audit": audit,
            "tot_loss": tot,
            "lm_loss": lm,
            "total_ponder": net,
            "ponder_raw": raw,
            "reward": rwd,
            "lr": lr,
            "grad_norm": grad,
            "lambda_p": lam,
            "deadband_active": deadband_active,
            "ctrl_err": ctrl_err,
            "p_near_clamp": p_near,
            "mtp_loss": mtp if variant == "model3b" else None,
            "aux_loss": aux,
            "baton": None if baton is None else baton[0],
            "baton_lam": None if baton is None else baton[1],
            "pl_lm": None if pl is None else pl * 0.01,
            "avg_exec": e,
            "avg_k": k,
            "avg_gap": g,
            "dt_ms": dt,
            "tok_per_sec": tps,
        }
    )


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
    return writer.format_layer_line(
        {
            "layer": i,
            "k_exec": k_exec,
            "k": k,
            "s_final": s_final,
            "avg_exec_token": avg_tok,
            "p95_exec_token": p95_tok,
            "frac_ge2": ge2,
            "frac_ge3": ge3,
            "frac_ge4": ge4,
            "ent": ent,
            "p_mean": p_mean,
            "p_std": p_std,
            "d_rel": d_rel,
            "h_diff": h_diff,
            "p_diff": p_diff,
            "ponder_signal": ponder_signal,
            "lambda_p": lambda_p,
        }
    )


trace_line = writer.format_trace_line
lr_check_line = writer.format_lr_check_line
quality_line = writer.format_quality_line

INIT_MODEL3B = writer.format_init_line(
    "model3b",
    params=451234567,
    emb="Kronecker(D=8192)+tok_embed",
    d_model=512,
    n_layers_cfg=8,
    n_heads=16,
    experts="4r+4n",
    ponder="ON",
)
INIT_SMOLLM = writer.format_init_line("smollm", params=86123456, K=1536)


def generation_block(step: int, samples: list[tuple[str, str]]) -> list[str]:
    """A block with one sample per (prompt, output); token counts are word counts."""
    return writer.format_generation_block(
        step,
        [(len(p.split()), p.split("\n"), len(o.split()), o.split("\n")) for p, o in samples],
    )


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
