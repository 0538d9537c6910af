"""A real-style run (`analysis_helpers.real_style_run`) printed as the trainer prints it,
so the app can be driven on it end to end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis_helpers import real_style_run
from trainer_lines import INIT_MODEL3B, layer_line, quality_line, step_line, trace_line


def _v(row: dict[str, Any], key: str, default: float) -> float:
    value = row.get(key)
    return default if value is None else float(value)


def real_style_log(name: str, target_k: float, seed: int = 0) -> list[str]:
    """The lines of `real_style_run`: step line, layer and trace lines every 10 steps, a
    quality line every economic step."""
    run = real_style_run(name=name, target_k=target_k, seed=seed)
    layers = {s: part for (s,), part in run.layers.group_by("step")}
    traces = {s: part.sort("layer") for (s,), part in run.traces.group_by("step")}
    quality = {r["step"]: r for r in run.quality.iter_rows(named=True)}
    lines = [INIT_MODEL3B, "🚀 Starting Training Loop..."]
    for row in run.steps.iter_rows(named=True):
        s = int(row["step"])
        k = _v(row, "avg_k", 2.0)
        e = _v(row, "avg_exec", 2.0)
        lines.append(
            step_line(
                s,
                tot=_v(row, "lm_loss", 6.0) + 0.4,
                lm=_v(row, "lm_loss", 6.0),
                grad=_v(row, "grad_norm", 2.5),
                lam=_v(row, "lambda_p", 1e-4),
                ctrl_err=_v(row, "ctrl_err", 0.0),
                p_near=_v(row, "p_near_clamp", 0.0),
                audit=bool(row["audit"]),
                mtp=0.0,
                aux=_v(row, "aux_loss", 0.4),
                avgs=(0.0 if s < 1200 else 0.0004, e, k, round(e - k, 2)),
                dt=1500.0,
                tps=_v(row, "tok_per_sec", 1800.0),
            )
        )
        if s in layers:
            for lr in layers[s].sort("layer").iter_rows(named=True):
                lines.append(
                    layer_line(
                        int(lr["layer"]),
                        k_exec=int(lr["k_exec"]),
                        k=_v(lr, "k", 1.5),
                        s_final=_v(lr, "s_final", 0.0),
                        avg_tok=_v(lr, "avg_exec_token", 2.0),
                        p95_tok=_v(lr, "p95_exec_token", 2.0),
                        ge2=1.0,
                        ge3=1.0 if int(lr["k_exec"]) >= 3 else 0.0,
                        ge4=1.0 if int(lr["k_exec"]) >= 4 else 0.0,
                        ent=0.0,
                        p_mean=_v(lr, "p_mean", 0.5),
                        p_std=_v(lr, "p_std", 0.0),
                        d_rel=0.0,
                        p_diff=0.0,
                        lambda_p=0.0 if s < 1200 else 1e-4,
                    )
                )
        if s in traces:
            for tr in traces[s].iter_rows(named=True):
                lines.append(trace_line(int(tr["layer"]), tr["s_trace"]))
        if s in quality:
            q = quality[s]
            lines.append(
                quality_line(q["delta_ce"], q["delta_h"], q["coupon"], q["status"], q["confidence"])
            )
    return lines


def write_real_sweep(root: Path, targets: dict[str, float]) -> Path:
    """A sweep folder with one real-style run per `name → TARGET_K`."""
    for i, (name, target) in enumerate(targets.items()):
        d = root / name
        d.mkdir(parents=True)
        text = "\n".join(real_style_log(name=name, target_k=target, seed=i)) + "\n"
        (d / "log_kronecker_adaptive.txt").write_text(text, encoding="utf-8")
    return root


__all__ = ["real_style_log", "write_real_sweep"]
