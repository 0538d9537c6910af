"""The simulator: exact trainer format, honest mechanics, reproducible sample sweep, and
agreement between what it prints and what the parser reads back."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import ponder_parse
from ponder_parse import schema
from ponder_parse.sim.simulate import (
    SAMPLE_BASELINE,
    SimConfig,
    SimResult,
    lr_at,
    run_name,
    sample_configs,
    simulate,
    write_run,
    write_sample_sweep,
)

ROOT = Path(__file__).resolve().parents[2]

# Small but complete: force warmup, gate learning, economics, deadband, audits, checkpoints
# and generation blocks all occur.
SMALL = SimConfig(steps=2000, n_layers=3, lr_total_steps=1800, seed=7)
RESUMED = replace(SMALL, crash_at=1377, truncate_last_line=True)

STEP_RE = re.compile(r"^STEP: (\d+) (\[AUDIT\] )?\| TOT: ")
LAYER_RE = re.compile(r"^ L(\d+): k_exec=")
TRACE_RE = re.compile(r"^  L(\d+) s_trace: \[([^\]]*)\]$")
LR_RE = re.compile(r"^LR CHECK: \((\d+), (\S+), phase=(\w+)\)$")
QUALITY_RE = re.compile(r"^  RECURRENCE QUALITY: ΔCE=")
GEN_HEADER_RE = re.compile(r"^={20} GENERATION STEP (\d+) ={20}$")


@pytest.fixture(scope="module")
def small() -> SimResult:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def resumed() -> SimResult:
    return simulate(RESUMED)


@pytest.fixture(scope="module")
def samples() -> dict[str, SimResult]:
    return {name: simulate(cfg) for name, cfg in sample_configs().items()}


def _data_lines(text: str) -> list[str]:
    """The log's lines with generation blocks removed (model output is never data)."""
    out: list[str] = []
    inside = False
    for line in text.split("\n"):
        if GEN_HEADER_RE.match(line):
            inside = True
        elif inside and line == "=" * 60:
            inside = False
        elif not inside:
            out.append(line)
    return out


# ----------------------------------------------------------------------------- determinism


def test_same_config_same_bytes(tmp_path: Path) -> None:
    a = write_run(SMALL, tmp_path / "a")
    b = write_run(SMALL, tmp_path / "b")
    assert a.name == b.name == run_name(SMALL)
    names = sorted(p.name for p in a.iterdir())
    assert names == ["config.json", "log_kronecker_adaptive.txt", "stats.json"]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert simulate(replace(SMALL, seed=8)).log_text != simulate(SMALL).log_text


def test_config_json_reproduces_the_run(tmp_path: Path) -> None:
    run_dir = write_run(RESUMED, tmp_path)
    cfg = SimConfig.from_json(json.loads((run_dir / "config.json").read_text()))
    assert cfg == RESUMED


def test_runs_share_history_until_they_diverge() -> None:
    """Same seed, same data order: a longer run, a crashed run's first process and a run
    with another price setting all repeat the baseline's steps until they differ."""
    short = simulate(replace(SMALL, steps=1500))
    assert simulate(SMALL).log_text.startswith(short.log_text)
    crashed = simulate(replace(SMALL, crash_at=1400)).log_text
    first = crashed[: crashed.index("Traceback")]
    assert short.log_text.startswith(first)
    other = simulate(replace(SMALL, lambda_max=0.0005)).steps
    base = simulate(SMALL).steps
    early = pl.col("step") < SMALL.force_end
    assert base.filter(early)["lm_loss"].equals(other.filter(early)["lm_loss"])
    late = pl.col("step") >= SMALL.ponder_start
    assert (base.filter(late)["lm_loss"] != other.filter(late)["lm_loss"]).all()


def test_diverged_run_prints_non_finite_values() -> None:
    res = simulate(replace(SMALL, steps=1300, diverge_at=1250))
    line = next(ln for ln in res.log_text.split("\n") if ln.startswith("STEP: 1250 "))
    assert "| TOT: nan | LM: nan |" in line and "| GRAD: inf |" in line
    assert "| MTP: nan |" in line and "| PL/LM: nan% |" in line
    gone = res.steps.filter(pl.col("step") >= 1250)
    assert gone["lm_loss"].is_nan().all() and gone["lm_loss"].null_count() == 0
    assert math.isnan(res.stats["lm_loss"])
    assert res.steps.filter(pl.col("step") < 1250)["lm_loss"].is_finite().all()


def test_truth_converts_to_a_run(small: SimResult) -> None:
    run = small.to_run()
    assert isinstance(run, ponder_parse.Run)
    assert run.name == run_name(SMALL)
    assert run.last_step == SMALL.steps - 1
    assert run.snapshot_layers.height == SMALL.n_layers
    assert run.snapshot_layers.columns == list(schema.SNAPSHOT_LAYERS)
    for name, df in run.tables().items():
        expected = schema.SNAPSHOT_LAYERS if name == "snapshot_layers" else schema.TABLES[name]
        assert df.schema == pl.Schema(expected), name


def test_run_name_lists_what_differs() -> None:
    assert run_name(SimConfig()) == "baseline,seed=0"
    assert run_name(SimConfig(lambda_max=0.0005)) == "lambda_max=0.0005,seed=0"
    cfg = SimConfig(target_k=2.4, reward_eta=2.0, seed=1)
    assert run_name(cfg) == "target_k=2.4,reward_eta=2,seed=1"
    assert run_name(replace(SAMPLE_BASELINE, seed=3), SAMPLE_BASELINE) == "baseline,seed=3"


def test_invalid_configs_are_refused() -> None:
    for bad in (
        {"kmax": 2},
        {"kmax": 7},
        {"variant": "gpt"},
        {"gate": "sticky"},
        {"lambda_min": 0.1, "lambda_max": 0.05},
        {"force_end": 1300, "ponder_start": 1200},
        {"crash_at": 100},
    ):
        with pytest.raises(ValueError):
            SimConfig(**bad)


# ------------------------------------------------------------------- exact trainer format


def test_every_line_kind_in_its_place(small: SimResult) -> None:
    """Per step: step line; every 10 steps the layer block (trace after each layer line
    every 50); every 50 the LR check; from PONDER_START the quality line."""
    cfg = small.config
    lines = _data_lines(small.log_text)
    assert lines[0].startswith("INIT | PARAMS: ")
    assert lines[-1] == ""  # the file ends with a newline
    blocks: list[tuple[int, list[str]]] = []
    for line in lines[1:-1]:
        m = STEP_RE.match(line)
        if m:
            blocks.append((int(m.group(1)), []))
        else:
            blocks[-1][1].append(line)
    assert [s for s, _ in blocks] == list(range(cfg.steps))
    for step, body in blocks:
        expected: list[str] = []
        if step % 10 == 0:
            for i in range(cfg.n_layers):
                expected.append(f"layer{i}")
                if step % 50 == 0:
                    expected.append(f"trace{i}")
        if step % 50 == 0:
            expected.append("lr")
        if step >= cfg.ponder_start:
            expected.append("quality")
        kinds = []
        for line in body:
            if m := LAYER_RE.match(line):
                kinds.append(f"layer{m.group(1)}")
            elif m := TRACE_RE.match(line):
                kinds.append(f"trace{m.group(1)}")
            elif LR_RE.match(line):
                kinds.append("lr")
            elif QUALITY_RE.match(line):
                kinds.append("quality")
        assert kinds == expected, step
        others = [
            ln
            for ln in body
            if not (
                LAYER_RE.match(ln) or TRACE_RE.match(ln) or LR_RE.match(ln) or QUALITY_RE.match(ln)
            )
        ]
        if step > 0 and step % cfg.checkpoint_every == 0:
            assert others[-1] == (
                f"💾 Checkpoint saved: checkpoints/kronecker_latest.pt (step={step}, "
                f"λ_p={small.steps['lambda_p'][step + 1]:.2e})"
            )
        elif step != small.meta["deadband_step"]:
            assert others == []


def test_audit_flag_sits_after_the_step_number(small: SimResult) -> None:
    text = small.log_text
    assert not re.search(r"^\[AUDIT\]", text, re.M)
    audited = [int(s) for s in re.findall(r"^STEP: (\d+) \[AUDIT\] \| TOT:", text, re.M)]
    truth = small.steps.filter("audit")["step"].to_list()
    assert audited == truth
    assert min(truth) >= SMALL.ponder_start
    share = len(truth) / (SMALL.steps - SMALL.ponder_start)
    assert 0.02 < share < 0.09
    statuses = small.quality.filter(pl.col("step").is_in(truth))["status"].unique().to_list()
    assert set(statuses) <= {"AUDIT-POS", "AUDIT-NEG"}
    assert not small.quality.filter(pl.col("step").is_in(truth))["confidence"].any()


def test_padding_percentages_and_numbers_follow_the_f_strings(small: SimResult) -> None:
    step_lines = [ln for ln in small.log_text.split("\n") if STEP_RE.match(ln)]
    rows = small.steps.to_dicts()
    for line, row in zip(step_lines, rows, strict=True):
        assert line.endswith(f" | dt: {row['dt_ms']:7.2f}ms | tok/sec: {row['tok_per_sec']:9.2f}")
        assert re.search(r"\| dt: [ \d]{3}\d\.\d\dms \| tok/sec: [ \d]{5}\d\.\d\d$", line)
        assert f" | P_NR: {row['p_near_clamp']:.1%} | " in line
        assert f" | LR: {row['lr']:.4e} | " in line
        assert f" | CTRL_ERR: {row['ctrl_err']:+.3f} | " in line
        assert f" | PL/LM: {100 * row['pl_lm']:.2f}% | " in line
        assert ("[DB] | CTRL_ERR" in line) == row["deadband_active"]
    layer_lines = [ln for ln in small.log_text.split("\n") if LAYER_RE.match(ln)]
    for line, row in zip(layer_lines, small.layers.to_dicts(), strict=True):
        assert line.startswith(f" L{row['layer']}: k_exec={row['k_exec']}, ")
        assert (
            f"tail: ≥2:{row['frac_ge2']:.2%}, ≥3:{row['frac_ge3']:.2%}, ≥4:{row['frac_ge4']:.2%} |"
            in line
        )
        assert line.endswith(f"λ_p={row['lambda_p']:.2e}")
    trace_lines = [ln for ln in small.log_text.split("\n") if TRACE_RE.match(ln)]
    assert len(trace_lines) == small.traces.height
    for line, row in zip(trace_lines, small.traces.to_dicts(), strict=True):
        assert (
            line
            == f"  L{row['layer']} s_trace: [" + ", ".join(f"{v:.2f}" for v in row["s_trace"]) + "]"
        )
        assert line.split("[")[1].startswith("1.00, ")


def test_deadband_engages_once_with_its_message_block(small: SimResult) -> None:
    lines = small.log_text.split("\n")
    idx = [i for i, ln in enumerate(lines) if ln.startswith("🔒 [DEADBAND ENGAGED] λ_p=")]
    assert len(idx) == 1
    i = idx[0]
    assert lines[i - 1] == ""
    assert re.fullmatch(r"🔒 \[DEADBAND ENGAGED\] λ_p=\d\.\d\de-0\d stable for 100 steps", lines[i])
    assert lines[i + 1] == "   Asymmetric bounds: TARGET_K=1.30 ± [-2.0%, +5.0%]"
    engaged = small.meta["deadband_step"]
    db = small.steps.select("step", "deadband_active")
    assert not db.filter(pl.col("step") <= engaged)["deadband_active"].any()
    assert db.filter(pl.col("step") > engaged)["deadband_active"].all()
    assert small.stats["deadband_active"] is True
    assert small.stats["deadband_steps_since_trigger"] == SMALL.steps - 1 - engaged


def test_generation_blocks_hold_log_like_model_output(small: SimResult) -> None:
    text = small.log_text
    headers = [int(s) for s in re.findall(r"^={20} GENERATION STEP (\d+) ={20}$", text, re.M)]
    assert headers == list(range(500, SMALL.steps, 500))
    assert text.count("\n" + "=" * 60 + "\n") == len(headers)
    block = text.split("==================== GENERATION STEP 500 ====================\n")[1]
    block = block.split("\n" + "=" * 60 + "\n")[0].split("\n")
    assert block[0] == "[GEN 1]"
    assert re.fullmatch(r"  Prompt \(\d+ tokens\):", block[1])
    assert "  Output (128 tokens):" in block
    for line in block:
        assert re.match(r"\[GEN \d\]$|  (Prompt|Output) \(\d+ tokens\):$|    \S", line), line
    # Model output that looks exactly like a step line, indented as output is.
    assert any(re.match(r"^    STEP: 99 \| TOT: ", ln) for ln in block)
    assert re.search(r"^      RECURRENCE QUALITY: ", text, re.M)
    assert small.generations.height == 2 * len(headers)
    assert (small.generations["output_tokens"] == 128).all()


def test_smollm_variant_has_its_own_lines() -> None:
    res = simulate(replace(SMALL, variant="smollm", kmax=6))
    assert res.log_name == "log_fourier_adaptive.txt"
    assert res.log_text.startswith("INIT | PARAMS: 41123456 | K: 1536\n")
    assert "   Controller now uses asymmetric bounds: TARGET_K=1.30 ± [-2.0%, +5.0%]\n" in (
        res.log_text
    )
    assert "checkpoints/fourier_latest.pt" in res.log_text
    data = "\n".join(_data_lines(res.log_text))
    assert " | MTP: " not in data and " | AUX: " not in data
    assert data.count(" | BATON: ") == SMALL.steps
    assert "mtp_loss" not in res.stats and "aux_loss" not in res.stats
    assert res.steps["mtp_loss"].null_count() == res.steps.height
    assert res.traces["s_trace"].list.len().unique().to_list() == [6]
    no_baton = simulate(replace(SMALL, variant="smollm", baton=False, steps=300))
    assert "BATON" not in no_baton.log_text


@pytest.mark.parametrize("kmax", [3, 4, 5, 6])
def test_trace_length_is_kmax(kmax: int) -> None:
    res = simulate(replace(SMALL, kmax=kmax, steps=1300))
    lens = {
        len(m.group(2).split(", ")) for ln in res.log_text.split("\n") if (m := TRACE_RE.match(ln))
    }
    assert lens == {kmax}
    late = res.layers.filter(pl.col("step") >= SMALL.force_end)
    assert late["k_exec"].max() == kmax
    if kmax == 3:
        assert (res.layers["frac_ge4"] == 0).all()


def test_stats_json_is_the_last_step_unrounded(small: SimResult, tmp_path: Path) -> None:
    stats = json.loads((write_run(SMALL, tmp_path) / "stats.json").read_text())
    assert stats == small.stats
    assert list(stats) == [
        "step",
        "lm_loss",
        "mtp_loss",
        "aux_loss",
        "total_ponder",
        "delta_ce",
        "delta_h",
        "deadband_active",
        "deadband_steps_since_trigger",
        "layers",
    ]
    assert list(stats["layers"][0]) == [
        "k",
        "ent",
        "p_loss",
        "k_exec",
        "s_final",
        "s_trace",
        "p_mean",
        "p_std",
        "d_rel",
        "ponder_signal",
        "avg_exec_token",
        "p95_exec_token",
        "frac_ge2",
        "frac_ge3",
        "frac_ge4",
        "h_diff",
        "p_diff",
        "p_near_clamp",
        "wasted_compute",
    ]
    last = small.steps.row(-1, named=True)
    assert stats["step"] == last["step"] == SMALL.steps - 1
    assert stats["lm_loss"] == pytest.approx(last["lm_loss"], abs=1e-9)
    assert len(str(stats["lm_loss"])) > 8  # not rounded to print precision
    for layer in stats["layers"]:
        assert layer["k"] == pytest.approx(sum(layer["s_trace"]), abs=1e-9)


# ------------------------------------------------------------------------------ mechanics


def test_lr_schedule_and_phases(small: SimResult) -> None:
    cfg = SMALL
    assert lr_at(cfg, 0) == pytest.approx(3e-4 / 500)
    assert lr_at(cfg, 499) == pytest.approx(3e-4)
    assert lr_at(cfg, cfg.lr_total_steps) == pytest.approx(3e-5)
    assert lr_at(cfg, cfg.lr_total_steps + 50) == pytest.approx(3e-5)
    phases = dict(small.lr_checks.select("step", "phase").iter_rows())
    assert phases[450] == "warmup" and phases[500] == "cosine" and phases[1850] == "done"
    lr = small.steps["lr"].to_numpy()
    assert np.all(np.diff(lr[: cfg.warmup_steps]) > 0)
    assert np.all(np.diff(lr[cfg.warmup_steps : cfg.lr_total_steps + 1]) < 0)


def test_phases_force_gate_learning_economics(small: SimResult) -> None:
    cfg = SMALL
    layers, steps = small.layers, small.steps
    force = layers.filter(pl.col("step") < cfg.force_end)
    assert (force["k_exec"] == 2).all() and (force["k"] == 2.0).all()
    assert (force["frac_ge2"] == 1.0).all() and (force["frac_ge3"] == 0.0).all()
    pre = steps.filter(pl.col("step") < cfg.ponder_start)
    assert (pre["total_ponder"] == 0).all() and (pre["ponder_raw"] == 0).all()
    assert (layers.filter(pl.col("step") < cfg.ponder_start)["lambda_p"] == 0).all()
    assert (pre["lambda_p"] == cfg.lambda_min).all()
    assert small.quality["step"].min() == cfg.ponder_start
    assert small.quality.height == cfg.steps - cfg.ponder_start
    # Gate learning: with compute still free, the gates learn to keep going.
    gate = steps.filter(pl.col("step").is_between(cfg.ponder_start - 100, cfg.ponder_start - 1))
    assert gate["avg_k"].mean() > 3.0
    lm = steps["lm_loss"].to_numpy()
    assert 4.7 < lm[:20].mean() < 5.3 and lm[-200:].mean() < 2.9


def test_controller_is_dual_ascent_with_deadband(small: SimResult) -> None:
    cfg = SMALL
    s = small.steps
    assert np.allclose(s["ctrl_err"], s["avg_k"] - cfg.target_k)
    lam = s["lambda_p"].to_numpy()
    err = s["ctrl_err"].to_numpy()
    avg_k = s["avg_k"].to_numpy()
    audit = s["audit"].to_numpy()
    db = s["deadband_active"].to_numpy()
    lo, hi = cfg.target_k * 0.98, cfg.target_k * 1.05
    for t in range(cfg.ponder_start, cfg.steps - 1):
        if audit[t] or (db[t] and lo <= avg_k[t] <= hi):
            expected = lam[t]
        else:
            expected = min(cfg.lambda_max, max(cfg.lambda_min, lam[t] + cfg.lambda_lr * err[t]))
        assert lam[t + 1] == pytest.approx(expected, rel=1e-12), t
    # Audit steps run exactly two passes everywhere.
    aud = small.layers.filter(pl.col("step").is_in(s.filter("audit")["step"].implode()))
    assert (aud["k_exec"] == 2).all()


def test_quality_rules_and_layer_consistency(small: SimResult) -> None:
    q = small.quality
    assert np.allclose(q["coupon"], SMALL.reward_eta * q["delta_ce"])
    policy = q.filter(pl.col("status").is_in(["ECONOMIC WIN", "TAX ONLY"]))
    assert ((policy["status"] == "ECONOMIC WIN") == (policy["delta_ce"] > 0)).all()
    assert (policy["confidence"] == ((policy["delta_ce"] > 0) & (policy["delta_h"] < 0))).all()
    s = small.steps.filter(pl.col("step") >= SMALL.ponder_start)
    assert np.allclose(s["reward"], q["coupon"])
    assert np.allclose(s["total_ponder"], s["ponder_raw"] - s["reward"])
    assert np.allclose(
        small.steps["tot_loss"],
        small.steps["lm_loss"]
        + 0.3 * small.steps["mtp_loss"]
        + small.steps["aux_loss"]
        + small.steps["total_ponder"],
    )
    j = small.layers.join(small.traces, on=["step", "layer"])
    k_from_trace = j["s_trace"].list.sum()
    assert np.allclose(j["k"], k_from_trace)
    # Hard execution tracks soft survival up to batch noise and whole tokens (1/256).
    assert np.allclose(j["frac_ge2"], j["s_trace"].list.get(1), rtol=0.15, atol=1 / 256)
    # On policy steps the trace follows the gate: survival into pass 2 is p(continue).
    policy = j.join(small.steps.select("step", "audit"), on="step").filter(
        pl.col("step") >= SMALL.force_end, ~pl.col("audit")
    )
    assert policy.height > 0
    assert np.allclose(policy["p_mean"], policy["s_trace"].list.get(1))
    per_step = small.layers.group_by("step").agg(
        pl.col("k").mean(), pl.col("avg_exec_token").mean()
    )
    merged = per_step.join(small.steps, on="step")
    assert np.allclose(merged["k"], merged["avg_k"])
    assert np.allclose(merged["avg_exec_token"], merged["avg_exec"])


# ------------------------------------------------------------------------- resumed runs


def test_resumed_run_repeats_steps_and_truth_keeps_the_later(resumed: SimResult) -> None:
    cfg = RESUMED
    text = resumed.log_text
    lines = text.split("\n")
    start = lines.index("Traceback (most recent call last):")
    assert lines[start + 9].startswith("torch.OutOfMemoryError: CUDA out of memory.")
    resume = lines[start + 10 : start + 16]
    assert resume[0].startswith("INIT | PARAMS: ")
    assert resume[1] == "🔄 Loading checkpoint: checkpoints/kronecker_latest.pt"
    assert resume[2] == "✅ Loaded checkpoint from checkpoints/kronecker_latest.pt at step 1250"
    assert re.fullmatch(r"   📊 Restored λ_p = \d\.\d\de-0\d", resume[3])
    assert re.fullmatch(r"⏩ Resuming from step 1250 \(loss: \d\.\d{4}\)", resume[4])
    assert resume[5] == "🚀 Starting Training Loop..."
    assert lines[start + 16].startswith("STEP: 1250 | TOT: ")
    assert lines[start - 1].startswith("  RECURRENCE QUALITY:")
    assert re.match(r"STEP: 1377 ", [ln for ln in lines[:start] if STEP_RE.match(ln)][-1])
    printed = [int(m.group(1)) for ln in lines if (m := STEP_RE.match(ln))]
    assert printed.count(1300) == 2 and printed.count(1249) == 1 and printed.count(1378) == 1
    # The truth: every step once, the re-run steps from the second process.
    steps = resumed.steps
    assert steps["step"].to_list() == list(range(cfg.steps))
    assert (steps.filter(pl.col("step") < 1250)["segment"] == 0).all()
    assert (steps.filter(pl.col("step") >= 1250)["segment"] == 1).all()
    first_1300 = next(ln for ln in lines if ln.startswith("STEP: 1300 "))
    last_1300 = [ln for ln in lines if ln.startswith("STEP: 1300 ")][-1]
    assert first_1300 != last_1300
    assert f"LM: {steps['lm_loss'][1300]:.4f} " in last_1300
    # Restored λ_p is what the checkpoint line said.
    ckpt = next(ln for ln in lines if "(step=1250," in ln)
    assert ckpt.split("λ_p=")[1].rstrip(")") == resume[3].split("= ")[1]
    assert resumed.meta["restarts"] == 1 and resumed.meta["resume_step"] == 1250


def test_live_run_ends_in_a_partial_line(resumed: SimResult, small: SimResult) -> None:
    text = resumed.log_text
    assert not text.endswith("\n")
    tail = text.rsplit("\n", 1)[1]
    assert tail.startswith(f"STEP: {RESUMED.steps} ")
    assert " | tok/sec: " not in tail
    assert resumed.steps["step"].max() == RESUMED.steps - 1
    assert resumed.stats["step"] == RESUMED.steps - 1
    full = simulate(replace(RESUMED, truncate_last_line=False))
    assert text.startswith(full.log_text)
    assert small.log_text.endswith("\n")


# --------------------------------------------------------------------------- sample sweep


def test_sample_runs_on_disk_are_what_the_simulator_writes(tmp_path: Path) -> None:
    on_disk = ROOT / "sample_runs"
    written = write_sample_sweep(tmp_path)
    assert [p.name for p in written] == list(sample_configs())
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(on_disk) for p in on_disk.rglob("*") if p.is_file())
    assert committed == fresh
    for rel in fresh:
        assert (on_disk / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    readme = (on_disk / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in sample_configs())
    total = sum(f.stat().st_size for f in on_disk.rglob("*") if f.is_file())
    assert total < 15e6


def _econ(res: SimResult, last: int = 800) -> pl.DataFrame:
    return res.steps.filter(pl.col("step") >= res.config.steps - last, ~pl.col("audit"))


def _last_traces(res: SimResult) -> np.ndarray:
    step = res.traces["step"].max()
    return np.array(res.traces.filter(pl.col("step") == step)["s_trace"].to_list())


def test_sample_names_and_configs(samples: dict[str, SimResult]) -> None:
    assert set(samples) == {
        "baseline,seed=0",
        "baseline,seed=1",
        "crash_at=2377,seed=2",
        "lambda_max=0.0005,seed=0",
        "lambda_min=0.05,seed=0",
        "gate=stuck,seed=0",
        "halt_thr=0.1,seed=0",
        "variant=smollm,kmax=6,seed=0",
        "regime=real,target_k=2.4,seed=0",
        "regime=real,target_k=1.3,seed=0",
        "regime=real,target_k=2.4,d_model=768,seed=1",
    }
    a, b = samples["baseline,seed=0"].config, samples["baseline,seed=1"].config
    assert replace(a, seed=1) == b
    for name, res in samples.items():
        # The realistic runs are as long as the real ones (934 to 3 700 steps).
        low, high = (900, 3700) if res.config.regime == "real" else (3000, 10_000)
        assert low <= res.config.steps <= high, name
        for token in name.split(","):
            if "=" in token:
                key, value = token.split("=")
                assert str(getattr(res.config, key)).lower().rstrip("0") == value.rstrip("0")


@pytest.mark.parametrize(
    "name",
    ["baseline,seed=0", "baseline,seed=1", "crash_at=2377,seed=2", "variant=smollm,kmax=6,seed=0"],
)
def test_healthy_samples_look_healthy(samples: dict[str, SimResult], name: str) -> None:
    res = samples[name]
    s = _econ(res)
    # The deadband engages once, in the economic phase; the next step is the first to
    # print [DB].
    first_db = res.steps.filter(pl.col("deadband_active"))["step"].min()
    assert res.meta["deadband_step"] == first_db - 1 > res.config.ponder_start
    assert s["deadband_active"].all()
    assert abs(s["ctrl_err"].mean()) < 0.1
    assert s["p_near_clamp"].mean() < 0.06
    assert s["avg_gap"].abs().max() < 0.1
    assert 0.3 < res.steps["grad_norm"].median() < 0.9
    assert s["grad_norm"].is_between(0.3, 0.9).mean() > 0.85
    if res.config.variant == "model3b":
        assert s["aux_loss"].is_between(0.001, 0.05).mean() > 0.95
    q = res.quality.filter(pl.col("step") >= res.config.ponder_start + 300)
    assert (q["delta_ce"] > 0).mean() > 0.9
    assert (q["status"] == "ECONOMIC WIN").sum() > 5 * (q["status"] == "TAX ONLY").sum()
    trace = _last_traces(res)
    assert (trace[:, 1] < 0.4).all() and (trace[:, 2] < trace[:, 1]).all()
    assert 2.3 < s["lm_loss"].mean() < 2.7


def test_low_price_ceiling_never_stops(samples: dict[str, SimResult]) -> None:
    res = samples["lambda_max=0.0005,seed=0"]
    s = _econ(res)
    assert (s["lambda_p"] == 0.0005).all()
    assert s["avg_k"].min() > 3.3
    trace = _last_traces(res)
    assert (trace[:, 1] > 0.9).all() and (trace[:, 3] > 0.75).all()
    assert res.stats["layers"][0]["p_diff"] == pytest.approx(0, abs=0.05)


def test_high_price_floor_collapses_to_one_pass(samples: dict[str, SimResult]) -> None:
    res = samples["lambda_min=0.05,seed=0"]
    s = _econ(res)
    assert res.meta["deadband_step"] is None
    assert s["p_near_clamp"].min() > 0.2
    assert s["avg_k"].max() < 1.1
    trace = _last_traces(res)
    assert (trace[:, 1] < 0.05).all() and (trace[:, 2] < 0.005).all()
    q = res.quality.filter(pl.col("step") >= res.config.steps - 800)
    assert (q["status"] == "TAX ONLY").mean() > 0.2
    assert all(lay["p_near_clamp"] > 0.2 for lay in res.stats["layers"])


def test_stuck_gate_sits_at_one_half(samples: dict[str, SimResult]) -> None:
    res = samples["gate=stuck,seed=0"]
    trace = _last_traces(res)
    assert np.allclose(trace[:, 1:], 0.5, atol=0.03)
    lay = res.layers.filter(pl.col("step") >= res.config.steps - 800)
    assert lay["p_mean"].is_between(0.47, 0.53).all()
    assert lay["p_std"].max() < 0.02
    assert _econ(res)["ctrl_err"].min() > 1.0


def test_low_halting_threshold_opens_the_gap(samples: dict[str, SimResult]) -> None:
    res = samples["halt_thr=0.1,seed=0"]
    s = _econ(res)
    assert s["avg_gap"].min() > 0.5
    base = _econ(samples["baseline,seed=0"])
    assert np.allclose(s["avg_k"], base["avg_k"])


# ------------------------------------------------------------------ round trip via parser

# (how the column is printed, digits): "abs" = fixed decimals, "rel" = exponent mantissa
# decimals, "pct" = percent with that many decimals (the table holds fractions).
STEP_TOL = {
    "tot_loss": ("abs", 4),
    "lm_loss": ("abs", 4),
    "total_ponder": ("abs", 6),
    "ponder_raw": ("abs", 6),
    "reward": ("abs", 6),
    "lr": ("rel", 4),
    "grad_norm": ("abs", 4),
    "lambda_p": ("rel", 2),
    "ctrl_err": ("abs", 3),
    "p_near_clamp": ("pct", 1),
    "mtp_loss": ("abs", 4),
    "aux_loss": ("abs", 4),
    "baton": ("abs", 3),
    "baton_lam": ("abs", 3),
    "pl_lm": ("pct", 2),
    "avg_exec": ("abs", 2),
    "avg_k": ("abs", 2),
    "avg_gap": ("abs", 2),
    "dt_ms": ("abs", 2),
    "tok_per_sec": ("abs", 2),
}
LAYER_TOL = {
    "k": ("abs", 2),
    "s_final": ("abs", 3),
    "avg_exec_token": ("abs", 2),
    "p95_exec_token": ("abs", 2),
    "frac_ge2": ("pct", 2),
    "frac_ge3": ("pct", 2),
    "frac_ge4": ("pct", 2),
    "ent": ("abs", 4),
    "p_mean": ("abs", 2),
    "p_std": ("abs", 3),
    "d_rel": ("abs", 3),
    "h_diff": ("abs", 3),
    "p_diff": ("abs", 2),
    "ponder_signal": ("abs", 3),
    "lambda_p": ("rel", 2),
}
QUALITY_TOL = {"delta_ce": ("abs", 6), "delta_h": ("abs", 4), "coupon": ("abs", 6)}


def _assert_printed(
    truth: pl.DataFrame, parsed: pl.DataFrame, keys: list[str], tol: dict, exact: list[str]
) -> None:
    assert parsed.columns == truth.columns
    assert parsed.height == truth.height
    j = truth.join(parsed, on=keys, how="left", suffix="_p", validate="1:1")
    for col in exact:
        assert j[col].to_list() == j[f"{col}_p"].to_list(), col
    for col, (kind, digits) in tol.items():
        a, b = j[col], j[f"{col}_p"]
        assert (a.is_null() == b.is_null()).all(), col
        x = a.drop_nulls().to_numpy()
        y = b.drop_nulls().to_numpy()
        # Non-finite values are data: `nan` and `inf` must come back where they were.
        assert (np.isnan(x) == np.isnan(y)).all(), col
        assert (x[np.isinf(x)] == y[np.isinf(x)]).all() and (np.isinf(x) == np.isinf(y)).all()
        finite = np.isfinite(x)
        x, y = x[finite], y[finite]
        half = 0.5 * 10.0**-digits
        bound = {"abs": half, "pct": half / 100, "rel": half * np.abs(x)}[kind]
        bad = np.abs(x - y) > bound + 1e-12
        assert not bad.any(), f"{col}: truth {x[bad][:3]} parsed {y[bad][:3]}"


def _load(res: SimResult, tmp_path: Path) -> ponder_parse.Run:
    load_run = getattr(ponder_parse, "load_run", None)
    if load_run is None:
        pytest.fail("ponder_parse.load_run is not available yet")
    return load_run(write_run(res.config, tmp_path))


ROUND_TRIP = {
    "model3b": SMALL,
    "smollm-kmax6": replace(SMALL, variant="smollm", kmax=6, n_layers=12),
    "kmax3-collapse": replace(SMALL, kmax=3, lambda_min=0.05, lambda_max=0.05),
    "resumed-live": RESUMED,
    "resumed-no-traceback": replace(SMALL, crash_at=1500, crash_traceback=False, seed=3),
    "diverged": replace(SMALL, diverge_at=1700),
}


@pytest.mark.parametrize("case", list(ROUND_TRIP))
def test_parser_reads_back_what_was_printed(case: str, tmp_path: Path) -> None:
    res = simulate(ROUND_TRIP[case])
    run = _load(res, tmp_path)
    assert run.variant == res.config.variant
    # A live run's half-written last line is reported, never parsed as data.
    expected_problems = 1 if res.config.truncate_last_line else 0
    assert run.problems.height == expected_problems, run.problems
    _assert_printed(
        res.steps, run.steps, ["step"], STEP_TOL, ["audit", "deadband_active", "segment"]
    )
    _assert_printed(res.layers, run.layers, ["step", "layer"], LAYER_TOL, ["k_exec"])
    _assert_printed(res.quality, run.quality, ["step"], QUALITY_TOL, ["status", "confidence"])
    _assert_printed(res.lr_checks, run.lr_checks, ["step"], {"lr": ("rel", 2)}, ["phase"])
    assert run.traces.columns == list(schema.TRACES)
    j = res.traces.join(run.traces, on=["step", "layer"], suffix="_p", validate="1:1")
    assert j.height == res.traces.height
    for a, b in zip(j["s_trace"].to_list(), j["s_trace_p"].to_list(), strict=True):
        assert len(a) == len(b) == res.config.kmax
        assert all(abs(x - y) <= 0.005 + 1e-12 for x, y in zip(a, b, strict=True))
    assert json.dumps(run.snapshot) == json.dumps(res.stats)  # NaN-aware equality
    assert run.meta["n_layers"] == res.config.n_layers
    assert run.meta["kmax"] == res.config.kmax
    assert run.meta["restarts"] == res.meta["restarts"]
    assert run.meta.get("deadband_step") == res.meta["deadband_step"]
    assert math.isclose(run.meta["target_k"], res.config.target_k)
    gens = res.generations
    if res.config.crash_at is None:
        assert run.generations.sort("step", "sample").equals(gens.sort("step", "sample"))


def test_parser_reads_every_sample_run(samples: dict[str, SimResult]) -> None:
    load_run = getattr(ponder_parse, "load_run", None)
    if load_run is None:
        pytest.fail("ponder_parse.load_run is not available yet")
    for name, res in samples.items():
        run = load_run(ROOT / "sample_runs" / name)
        # Every line is understood; a log holding bytes that are not UTF-8 (a real model's
        # output) says so, once.
        invalid = b"\xe6\x97x" in res.log_bytes
        expected = ["invalid UTF-8 bytes in the log: shown as \ufffd"] if invalid else []
        assert run.problems["reason"].to_list() == expected, name
        assert run.steps["step"].to_list() == res.steps["step"].to_list(), name
        assert np.allclose(run.steps["lm_loss"], res.steps["lm_loss"], atol=5e-5), name
        assert run.quality["status"].to_list() == res.quality["status"].to_list(), name
