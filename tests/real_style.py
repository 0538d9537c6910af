"""Runs built with the figures of real model3b logs, for the red-flag tests.

The simulator's sample runs follow the guide's textbook; real runs of the trainer do not
(`real-runs.md`): GRAD is printed before clipping (median 2.5), AUX sits at 0.3–0.8, the
gate treats every token alike (p_std < 0.02, tok avg = p95 = k_exec), it is frozen at
0.5 through gate learning, traces are cut short, ent / d_rel / Δp / MTP print as 0, dt
follows the passes run, λ_p sits at its floor under TARGET_K 2.40. `real_run` builds
such a run table by table; each `pathology` changes only what it is named for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from ponder_parse import schema
from ponder_parse.run import Run

FORCE_END, PONDER_START = 800, 1200
REAL_PATHOLOGIES = ("diverged", "frozen", "collapsed", "aux", "memory")


def _trace(p: float, kmax: int, halt_thr: float = 0.10) -> tuple[list[float], int]:
    """A trace cut short: survival falls by `p` each pass, and the loop stops once
    nothing is alive any more (survival below `halt_thr`). Returns it and k_exec."""
    out = [1.0]
    while len(out) < kmax and out[-1] >= halt_thr:
        out.append(round(out[-1] * p, 2))
    if out[-1] < halt_thr and len(out) > 2:
        out.pop()
    return out, len(out)


def real_run(
    name: str = "real",
    target_k: float = 2.40,
    n_steps: int = 3698,
    n_layers: int = 8,
    seed: int = 0,
    pathology: str | None = None,
    kmax: int = 4,
    dt_ms: tuple[float, float] = (300.0, 500.0),
) -> Run:
    """A run that reads like a real model3b log (see the module docstring); a step takes
    `dt_ms[0] + dt_ms[1] × passes run` ms (D=512; D=768 is about (−1800, 3300))."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n_steps, dtype=np.int64)
    t = steps.astype(float)
    n = n_steps
    warm, gl, econ = t < FORCE_END, (t >= FORCE_END) & (t < PONDER_START), t >= PONDER_START
    audit = econ & (steps % 22 == 5)
    frac = np.clip((t - PONDER_START) / 2500.0, 0.0, 1.0)  # progress through the economic phase

    lm = np.where(
        warm,
        6.0 + 5.5 * np.exp(-t / 160.0),
        np.where(gl, 5.7 + 0.7 * (t - FORCE_END) / 400.0, 6.5 - 1.0 * frac),
    ) + rng.normal(0, 0.12, n)
    grad = 2.5 * np.exp(rng.normal(0, 0.15, n))
    spikes = rng.random(n) < 0.003
    grad[spikes] *= rng.uniform(3.0, 6.5, spikes.sum())
    aux = np.where(warm, 0.42, np.where(gl, 0.72, 0.45 - 0.13 * frac)) + rng.normal(0, 0.01, n)

    # the controller: under TARGET_K 2.40 λ_p never leaves its floor
    if target_k > 2.0:
        avg_k = np.where(econ, 1.80 - 0.30 * frac, 0.0)
        lam = np.full(n, 1e-4)
    else:
        rise = np.clip((t - PONDER_START) / 550.0, 0.0, 1.0)
        avg_k = np.where(econ, 1.86 - 0.61 * rise, 0.0)
        lam = np.where(econ, 1e-4 + rise * (1.06e-2 - 1e-4), 1e-4)
    avg_k = np.where(warm, 2.0, np.where(gl, 1.87, avg_k + rng.normal(0, 0.02, n)))
    avg_exec = np.where(warm, 2.0, np.where(gl, 4.0, np.clip(avg_k + 1.1 - 0.4 * frac, 1.0, 4.0)))
    avg_k = np.where(audit, 2.0, avg_k)
    avg_exec = np.where(audit, 2.0, avg_exec)
    pnr = np.where(warm | audit, 0.5, 0.0)

    dt = dt_ms[0] + dt_ms[1] * avg_exec + rng.normal(0, 30, n)  # the passes run set the time
    if pathology == "memory":  # swapping: three times slower at unchanged depth
        dt = np.where((t >= 2500) & (t < 2700), dt * 3.0, dt)
    if pathology == "aux":
        aux = np.where(t >= 2000, 2.5 + rng.normal(0, 0.05, n), aux)
    if pathology == "diverged":
        boom = t >= 2500
        grad = np.where(boom, grad * np.exp((t - 2500) / 60.0) * 20.0, grad)
        lm = np.where(boom, lm + (t - 2500) / 50.0, lm)
        lm = np.where(t >= 3000, np.nan, lm)
        grad = np.where(t >= 3000, np.nan, grad)
        steps, t, n = steps[:3100], t[:3100], 3100
    tps = 8192 / (dt[:n] / 1000.0)
    raw = lam[:n] * avg_k[:n] * 0.5
    rwd = np.where(econ[:n], np.abs(rng.normal(0, 1e-4, n)), 0.0)

    steps_df = schema.conform(
        pl.DataFrame(
            {
                "step": steps,
                "audit": audit[:n],
                "tot_loss": lm[:n] + aux[:n],
                "lm_loss": lm[:n],
                "total_ponder": np.maximum(raw - rwd, 0.0),
                "ponder_raw": raw,
                "reward": rwd,
                "lr": np.where(t < 500, 3e-4 * t / 500, 3e-4),
                "grad_norm": grad[:n],
                "lambda_p": lam[:n],
                "deadband_active": np.zeros(n, dtype=bool),
                "ctrl_err": avg_k[:n] - target_k,
                "p_near_clamp": pnr[:n],
                "mtp_loss": np.zeros(n),
                "aux_loss": aux[:n],
                "pl_lm": np.maximum(raw - rwd, 0.0) / lm[:n],
                "avg_exec": avg_exec[:n],
                "avg_k": avg_k[:n],
                "avg_gap": avg_exec[:n] - avg_k[:n],
                "dt_ms": dt[:n],
                "tok_per_sec": tps,
                "segment": np.zeros(n, dtype=np.int32),
            }
        ),
        schema.STEPS,
    )

    lrows: list[dict[str, Any]] = []
    trows: list[dict[str, Any]] = []
    for s in steps[steps % 10 == 0]:
        i = int(s)
        for layer in range(n_layers):
            row: dict[str, Any] = {"step": i, "layer": layer, "ent": 0.0, "d_rel": 0.0}
            row["p_diff"], row["h_diff"] = 0.0, round(float(rng.normal(0.05, 0.01)), 3)
            if i < FORCE_END or audit[i]:  # forced to 2 passes: p is 1 then 0
                tr, kx = [1.0, 1.0], 2
                row |= {"k": 2.0, "s_final": 0.0, "p_mean": 1.0 if audit[i] else 0.5}
                row |= {"p_std": 0.5, "avg_exec_token": 2.0, "p95_exec_token": 2.0}
            elif i < PONDER_START or pathology == "frozen":
                tr, kx = [1.0, 0.5, 0.25, 0.12][:kmax], kmax
                row |= {"k": 1.87, "s_final": 0.12, "p_mean": 0.5, "p_std": 0.0}
                row |= {"avg_exec_token": float(kx), "p95_exec_token": float(kx)}
            else:
                p = float(np.clip((avg_k[i] - 1.0) / avg_k[i], 0.1, 0.6))
                p = round(p + rng.normal(0, 0.01), 2)
                tr, kx = _trace(p, kmax)
                if pathology == "collapsed" and i >= 2000:
                    tr, kx = [1.0, 0.96, 0.93, 0.9][:kmax], kmax
                uniform = rng.random() < 0.9
                avg = float(kx) if uniform else round(kx - rng.uniform(0.1, 0.6), 2)
                row |= {"k": round(sum(tr), 2), "s_final": tr[-1], "p_mean": p}
                row |= {
                    "p_std": round(rng.uniform(0.003, 0.018) if uniform else 0.024, 3),
                    "avg_exec_token": avg,
                    "p95_exec_token": float(kx),
                }
            row |= {
                "k_exec": kx,
                "frac_ge2": 1.0,
                "frac_ge3": 1.0 if kx >= 3 else 0.0,
                "frac_ge4": 1.0 if kx >= 4 else 0.0,
                "ponder_signal": 0.4,
                "lambda_p": float(lam[i]) if i >= PONDER_START else 0.0,
            }
            lrows.append(row)
            if i % 50 == 0:
                trows.append({"step": i, "layer": layer, "s_trace": tr})

    qsteps = steps[steps >= PONDER_START]
    qa = audit[qsteps]
    dce = rng.normal(0.0015, 0.004, len(qsteps))
    dh = rng.normal(-0.001, 0.01, len(qsteps))
    status = np.where(
        qa,
        np.where(dce > 0, "AUDIT-POS", "AUDIT-NEG"),
        np.where(dce > 0, "ECONOMIC WIN", "TAX ONLY"),
    )
    quality = schema.conform(
        pl.DataFrame(
            {
                "step": qsteps,
                "delta_ce": dce,
                "delta_h": dh,
                "coupon": dce * 2.0,
                "status": status,
                "confidence": (~qa) & (dce > 0) & (dh < 0),
            }
        ),
        schema.QUALITY,
    )
    return Run(
        name=name,
        steps=steps_df,
        layers=schema.conform(pl.DataFrame(lrows), schema.LAYERS),
        traces=schema.conform(
            pl.DataFrame(
                trows,
                schema={"step": pl.Int64, "layer": pl.Int32, "s_trace": pl.List(pl.Float64)},
            ),
            schema.TRACES,
        ),
        quality=quality,
        meta={
            "params": 451234567,
            "n_layers": n_layers,
            "kmax": kmax,
            "target_k": target_k,
            "target_k_source": "ctrl_err",
            "restarts": 0,
            "resume_steps": [],
            "truncated": False,
        },
    )
