"""Runs for the tests: simulated realistic runs read back from their files
(`real_run`, `simulated_run`), and, for what the simulator does not make, constructed
runs: a healthy run and one run per pathology (`make_run`).

The numbers follow the guide's healthy ranges and the trainer's defaults (force warmup to
800, ponder start 1200, layer lines every 10 steps, traces every 50, quality lines every
step from the ponder start, ~5% audit steps). Each pathology changes only what it is
named for, so a rule firing on it cannot be explained by anything else.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ponder_parse import schema
from ponder_parse.files.loader import load_run
from ponder_parse.run import Run
from ponder_parse.sim import real as real_regime
from ponder_parse.sim.simulate import SimConfig, run_name, write_run

PATHOLOGIES = (
    "grad",
    "not_stopping",
    "over_penalized",
    "stuck_half",
    "p_nr",
    "ce_negative",
    "aux",
    "gap",
    "lm_flat",
    "slow",
    "nan",
    "lambda_max",
    "restarts",
    "problems",
    "no_deadband",
)


def healthy_trace(kmax: int, rng: np.random.Generator, scale: float = 1.0) -> list[float]:
    """A sharp-drop trace of length kmax ending near 0 (the guide's healthy shape)."""
    if kmax == 2:
        return [1.0, 0.12]  # the only healthy band Kmax 2 leaves: above over-penalized, ≤ 0.15
    base = [1.0, 0.82, 0.23, 0.04]
    shape = base[: kmax - 1] + [0.04] if kmax <= 4 else base + [0.01] * (kmax - 4)
    out = [1.0] + [min(1.0, max(0.0, v * scale + rng.normal(0, 0.01))) for v in shape[1:]]
    out[-1] = min(out[-1], 0.08)
    return [round(v, 2) for v in out]


def constant_trace(kmax: int, s2: float, tail: float | None = None) -> list[float]:
    tail = s2 if tail is None else tail
    return [1.0, s2] + [tail] * (kmax - 2)


def make_run(
    name: str = "healthy",
    n_steps: int = 3000,
    n_layers: int = 4,
    kmax: int = 4,
    pathology: str | None = None,
    first_step: int = 0,
    seed: int = 0,
    force_end: int = 800,
    ponder_start: int = 1200,
) -> Run:
    """A complete synthetic run; `pathology` is one of `PATHOLOGIES` (or None)."""
    rng = np.random.default_rng(seed)
    steps = np.arange(first_step, first_step + n_steps, dtype=np.int64)
    n = len(steps)
    t = steps.astype(float)

    lm = 2.4 + 2.6 * np.exp(-t / 900.0) + rng.normal(0, 0.02, n)
    if pathology == "lm_flat":
        lm = np.where(t < 500, lm, 3.4 + rng.normal(0, 0.02, n))
    grad = np.clip(0.6 + rng.normal(0, 0.08, n), 0.3, 0.9)
    if pathology == "grad":
        grad = np.where((t >= 2000) & (t < 2100), 3.0 + rng.random(n), grad)
    grad[n // 3] = 4.0  # one isolated spike: never a finding on its own
    lr = np.where(
        t < 500, 3e-4 * t / 500, 3e-5 + 0.5 * (3e-4 - 3e-5) * (1 + np.cos(np.pi * (t - 500) / 9500))
    )
    econ = t >= ponder_start
    after_force = t >= force_end
    lam = np.where(econ, np.minimum(2.5e-2, 1e-4 + (t - ponder_start) * 1e-4), 1e-4)
    if pathology == "lambda_max":
        lam = np.where(econ, np.minimum(5e-2, 1e-4 + (t - ponder_start) * 2e-4), 1e-4)
    db = econ & (t >= ponder_start + 400)
    if pathology in ("no_deadband", "lambda_max"):
        db = np.zeros(n, dtype=bool)
    avg_exec = np.where(after_force, 1.43 + rng.normal(0, 0.02, n), 2.0)
    avg_k = np.where(after_force, 1.38 + rng.normal(0, 0.02, n), 2.0)
    lagging = pathology == "gap"  # hard stop lags the soft survival (halt_thr too low)
    if lagging:
        avg_exec = np.where(t >= 1500, avg_k + 0.8, avg_exec)
    gap = np.round(avg_exec - avg_k, 2)
    pnr = np.where(after_force, 0.03 + rng.normal(0, 0.005, n), 0.0)
    if pathology == "p_nr":
        pnr = np.where(t >= 2000, 0.35, pnr)
    aux = 0.01 + rng.normal(0, 0.002, n)
    if pathology == "aux":
        aux = np.where(t >= 1000, 0.15, aux)
    aux[n // 2] = 0.3  # isolated spike
    tps = 600 + rng.normal(0, 10, n)
    tps[0] = 80  # slow first step (compilation)
    if pathology == "slow":
        tps = np.where((t >= 1500) & (t < 1700), 120.0, tps)
    audit = econ & (steps % 20 == 7)
    tot = lm + 0.3 * (lm + 0.1) + aux
    if pathology == "nan":
        bad = t >= 2500
        lm = np.where(bad, np.nan, lm)
        tot = np.where(bad, np.nan, tot)
        grad = np.where(bad, np.inf, grad)

    steps_df = schema.conform(
        pl.DataFrame(
            {
                "step": steps,
                "audit": audit,
                "tot_loss": tot,
                "lm_loss": lm,
                "total_ponder": np.where(econ, 1e-4, 0.0),
                "ponder_raw": np.where(econ, 4e-4, 0.0),
                "reward": np.where(econ, 3e-4, 0.0),
                "lr": lr,
                "grad_norm": grad,
                "lambda_p": lam,
                "deadband_active": db,
                "ctrl_err": avg_k - 1.30,
                "p_near_clamp": pnr,
                "mtp_loss": lm + 0.1,
                "aux_loss": aux,
                "pl_lm": np.where(econ, 0.0004, 0.0),
                "avg_exec": avg_exec,
                "avg_k": avg_k,
                "avg_gap": gap,
                "dt_ms": 2048 * 1000 / tps,
                "tok_per_sec": tps,
                "segment": np.zeros(n, dtype=np.int32),
            }
        ),
        schema.STEPS,
    )

    layer_steps = steps[steps % 10 == 0]
    lrows: list[dict[str, Any]] = []
    for s in layer_steps:
        forced = s < force_end
        # tokens running pass 2: fewer than survive there (a hard stop tracking the soft
        # survival), except where the hard stop lags and every token runs every pass
        tails: dict[str, float | None] = {"frac_ge2": 0.41, "frac_ge3": None, "frac_ge4": None}
        if pathology == "over_penalized" and s >= 2000:
            tails = {"frac_ge2": 0.01, "frac_ge3": None, "frac_ge4": None}
        if lagging and s >= 1500:
            tails = {"frac_ge2": 1.0, "frac_ge3": 1.0, "frac_ge4": 1.0}
        for layer in range(n_layers):
            lrows.append(
                {
                    "step": int(s),
                    "layer": layer,
                    "k_exec": 2 if forced else min(kmax, 3),
                    "k": 2.0 if forced else round(1.38 + rng.normal(0, 0.02), 2),
                    "s_final": 0.04,
                    **tails,
                    "p_mean": 0.82,
                    "lambda_p": 0.0 if s < ponder_start else 1e-3,
                }
            )
    layers_df = schema.conform(pl.DataFrame(lrows, infer_schema_length=None), schema.LAYERS)

    trows: list[dict[str, Any]] = []
    for s in steps[steps % 50 == 0]:
        for layer in range(n_layers):
            if s < force_end:
                tr = [1.0, 1.0] + [0.0] * (kmax - 2)
            elif s < ponder_start:
                tr = [1.0, 0.9] + [0.5] * (kmax - 3) + [0.3] if kmax > 2 else [1.0, 0.9]
            else:
                tr = healthy_trace(kmax, rng)
                if s >= 2000 and (layer == 0 or pathology != "not_stopping"):
                    if pathology == "not_stopping":
                        tr = [1.0] + [round(0.95 - 0.05 * i, 2) for i in range(kmax - 1)]
                    elif pathology == "over_penalized":
                        tr = constant_trace(kmax, 0.02, 0.0)
                    elif pathology == "stuck_half":
                        tr = constant_trace(kmax, 0.5)
            trows.append({"step": int(s), "layer": layer, "s_trace": tr})
    traces_df = schema.conform(
        pl.DataFrame(
            trows, schema={"step": pl.Int64, "layer": pl.Int32, "s_trace": pl.List(pl.Float64)}
        ),
        schema.TRACES,
    )

    qsteps = steps[steps >= ponder_start]
    qa = audit[steps >= ponder_start]
    dce = rng.normal(0.03, 0.02, len(qsteps))
    if pathology == "ce_negative":
        dce = -np.abs(dce) - 0.001
    dh = rng.normal(-0.02, 0.02, len(qsteps))
    status = np.where(
        qa,
        np.where(dce > 0, "AUDIT-POS", "AUDIT-NEG"),
        np.where(dce > 0, "ECONOMIC WIN", "TAX ONLY"),
    )
    quality_df = schema.conform(
        pl.DataFrame(
            {
                "step": qsteps,
                "delta_ce": dce,
                "delta_h": dh,
                "coupon": dce * 0.01,
                "status": status,
                "confidence": (~qa) & (dce > 0) & (dh < 0),
            }
        ),
        schema.QUALITY,
    )

    lr_steps = steps[steps % 50 == 0]
    lr_phase = np.where(lr_steps < 500, "warmup", np.where(lr_steps <= 10000, "cosine", "done"))
    lr_df = schema.conform(
        pl.DataFrame({"step": lr_steps, "lr": lr[np.isin(steps, lr_steps)], "phase": lr_phase}),
        schema.LR_CHECKS,
    )

    events: list[dict[str, Any]] = [
        {"line_no": 1, "step": None, "kind": "init", "text": "INIT | PARAMS: 451234567"}
    ]
    meta: dict[str, Any] = {
        "params": 451234567,
        "n_layers": n_layers,
        "kmax": kmax,
        "target_k": 1.30,
        "target_k_source": "ctrl_err",
        "restarts": 0,
        "resume_steps": [],
        "truncated": False,
    }
    db_steps = steps[db]
    if len(db_steps):
        meta["deadband_step"] = int(db_steps[0])
        events.append(
            {
                "line_no": 100,
                "step": int(db_steps[0]),
                "kind": "deadband",
                "text": "🔒 [DEADBAND ENGAGED] λ_p=2.50e-02 stable for 100 steps",
            }
        )
    problems = schema.empty(schema.PROBLEMS)
    if pathology == "restarts":
        meta["restarts"] = 1
        meta["resume_steps"] = [1250]
        events.append(
            {
                "line_no": 200,
                "step": 1250,
                "kind": "resume",
                "text": "⏩ Resuming from step 1250 (loss: 3.1)",
            }
        )
    if pathology == "problems":
        problems = pl.DataFrame(
            {
                "line_no": [17, 18],
                "text": ["garbage", "STEP: 12 | TOT"],
                "reason": ["unrecognized line", "malformed step line"],
            },
            schema=schema.PROBLEMS,
        )
    return Run(
        name=name,
        steps=steps_df,
        layers=layers_df,
        traces=traces_df,
        quality=quality_df,
        lr_checks=lr_df,
        events=schema.conform(
            pl.DataFrame(events, schema_overrides={"step": pl.Int64}), schema.EVENTS
        ),
        problems=problems,
        meta=meta,
    )


def steps_run(name: str = "r", **columns: Sequence[Any]) -> Run:
    """A run with only a steps table, from column lists (step defaults to 0..n-1)."""
    n = max(len(v) for v in columns.values()) if columns else 0
    data: dict[str, Any] = {"step": list(range(n))} | {k: list(v) for k, v in columns.items()}
    return Run(name=name, steps=schema.conform(pl.DataFrame(data), schema.STEPS))


def traces_frame(rows: Sequence[tuple[int, int, Sequence[float] | None]]) -> pl.DataFrame:
    """Traces table from (step, layer, s_trace) tuples."""
    return pl.DataFrame(
        {
            "step": [r[0] for r in rows],
            "layer": [r[1] for r in rows],
            "s_trace": [
                None if r[2] is None else [None if v is None else float(v) for v in r[2]]
                for r in rows
            ],
        },
        schema=schema.TRACES,
    )


def is_nan(x: float | None) -> bool:
    return x is not None and math.isnan(x)


# ---- runs of the realistic simulator, written and read back

FORCED_TRACE = [1.00, 1.00]
"""What force-2 warmup and audit steps print: the gate forced to 1 at k=1, 0 at k=2."""
FROZEN_TRACE = [1.00, 0.50, 0.25, 0.12]
"""A gate frozen at 0.5: survival 0.5^k, every token running all four passes."""

_SIM_DIR: Path | None = None


def _sim_dir() -> Path:
    global _SIM_DIR
    if _SIM_DIR is None:
        _SIM_DIR = Path(tempfile.mkdtemp(prefix="ponder-sim-"))
        atexit.register(shutil.rmtree, _SIM_DIR, True)
    return _SIM_DIR


def real_config(**changes: Any) -> SimConfig:
    """The realistic regime's settings (`sim.real.sample_base`: 8 layers, halt_thr 0.10,
    TARGET_K 2.40, 3 700 steps) with `changes`; the quick default is 2 000 steps of 4 layers."""
    base = dataclasses.replace(real_regime.sample_base(), steps=2000, n_layers=4)
    return dataclasses.replace(base, **changes)


@functools.cache
def _written(cfg: SimConfig, name: str) -> Path:
    return write_run(cfg, _sim_dir() / f"{len(list(_sim_dir().iterdir()))}", name=name)


def simulated_run(cfg: SimConfig, name: str | None = None) -> Run:
    """`cfg` simulated, written as the trainer writes it (log, stats.json, config.json)
    and read back with `load_run`: what the app sees. Each config is simulated once per
    test process; every call returns a fresh `Run` (tests may change its tables)."""
    return load_run(_written(cfg, name or run_name(cfg)))


def real_run(name: str = "real", **changes: Any) -> Run:
    """A run of the realistic regime (`real_config(**changes)`), named `name`."""
    return simulated_run(real_config(**changes), name)
