"""The realistic regime reproduces the figures measured on the trainer's real runs: each
test reads one row of those figures off the simulated tables, with a tolerance."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

import ponder_parse
from ponder_parse.sim import real
from ponder_parse.sim.simulate import SAMPLE_BASELINE, SimConfig, SimResult, simulate

HIGH, LOW, WIDE = (c for c, _ in real.sample_sweep())  # TARGET_K 2.4, 1.3, D=768


@pytest.fixture(scope="module")
def high() -> SimResult:
    return simulate(HIGH)


@pytest.fixture(scope="module")
def low() -> SimResult:
    return simulate(LOW)


@pytest.fixture(scope="module")
def wide() -> SimResult:
    return simulate(WIDE)


def _phase(df: pl.DataFrame, lo: int, hi: int | None = None) -> pl.DataFrame:
    keep = pl.col("step") >= lo
    if hi is not None:
        keep &= pl.col("step") < hi
    return df.filter(keep)


def _policy(res: SimResult, df: pl.DataFrame) -> pl.DataFrame:
    """Economic-phase rows of steps that are not audits."""
    audits = res.steps.filter(pl.col("audit"))["step"]
    return _phase(df, res.config.ponder_start).filter(~pl.col("step").is_in(audits.implode()))


def test_traces_are_cut_short_in_the_economic_phase(high: SimResult, low: SimResult) -> None:
    shares = {}
    for res in (high, low):
        tr = _policy(res, res.traces)
        n = tr["s_trace"].list.len()
        shares[res.config.target_k] = {k: float((n == k).mean()) for k in (2, 3, 4)}
        assert set(n.unique()) == {2, 3, 4}
    s = shares[2.4]
    assert 0.44 <= s[3] <= 0.54 and 0.18 <= s[2] <= 0.31 and 0.2 <= s[4] <= 0.33
    # The higher price of TARGET_K 1.30 shortens the traces.
    assert shares[1.3][2] > s[2]


def test_survival_falls_by_a_constant_factor(high: SimResult, low: SimResult) -> None:
    tr = _policy(high, high.traces).filter(pl.col("s_trace").list.len() >= 3)
    s = np.array([t[:3] for t in tr["s_trace"].to_list()])
    ratio = s[:, 2] / s[:, 1]
    assert np.allclose(ratio, s[:, 1], atol=0.02)  # s_{k+1} = s_k · p
    early = _phase(high.traces, 1300, 1500).filter(pl.col("s_trace").list.len() > 2)
    p_early = early["s_trace"].list.get(1).median()
    assert 0.4 <= p_early <= 0.55
    late = _phase(low.traces, 1900)["s_trace"].list.get(1)
    assert 0.15 <= late.median() <= 0.32


def test_a_trace_stops_where_no_token_is_alive(high: SimResult) -> None:
    """The ponder loop stops once at most 2% of tokens survive at s ≥ halt_thr: a trace's
    values run while tokens are alive, and every layer line agrees with its trace."""
    tr = _policy(high, high.traces)
    lay = tr.join(high.layers, on=["step", "layer"])
    assert (lay["s_trace"].list.len() == lay["k_exec"]).all()
    last = lay["s_trace"].list.last()
    full = lay["s_trace"].list.len() == high.config.kmax
    # Stopped early: the next pass would have entered below the threshold.
    nxt = (last * lay["p_mean"]).filter(~full)
    assert (nxt < high.config.halt_thr + 0.02).all()
    assert (last >= high.config.halt_thr - 0.02).all()


def test_forced_steps_print_two_passes_at_one(high: SimResult) -> None:
    forced = high.steps.filter((pl.col("step") < high.config.force_end) | pl.col("audit"))
    tr = high.traces.filter(pl.col("step").is_in(forced["step"].implode()))
    assert tr.height and all(t == [1.0, 1.0] for t in tr["s_trace"].to_list())
    assert (forced["p_near_clamp"] == 0.5).all()
    others = high.steps.filter(~pl.col("step").is_in(forced["step"].implode()))
    assert (others["p_near_clamp"] == 0.0).all()
    audits = _phase(high.steps, high.config.ponder_start)["audit"].mean()
    assert 0.035 <= audits <= 0.06
    lay = high.layers.filter(pl.col("step").is_in(forced["step"].implode()))
    assert (lay["p_mean"] == 1.0).all() and (lay["p_std"] == 0.5).all()


def test_gate_learning_is_a_gate_frozen_at_one_half(high: SimResult) -> None:
    c = high.config
    lay = _phase(high.layers, c.force_end, c.ponder_start)
    assert lay["p_mean"].round(2).eq(0.5).all() and (lay["p_std"] < 0.0005).all()
    assert (lay["k_exec"] == 4).all() and (lay["avg_exec_token"] == 4.0).all()
    assert (lay["frac_ge4"] == 1.0).all()
    tr = _phase(high.traces, c.force_end, c.ponder_start)
    printed = {tuple(round(v, 2) for v in t) for t in tr["s_trace"].to_list()}
    assert printed == {(1.0, 0.5, 0.25, 0.12)}
    st = _phase(high.steps, c.force_end, c.ponder_start)
    assert f"{st['avg_exec'].mean():.2f}" == "4.00"
    assert f"{st['avg_k'].mean():.2f}" == "1.87"
    assert f"{st['avg_gap'].mean():.2f}" == "2.13"


def test_the_gate_treats_every_token_alike(high: SimResult, low: SimResult) -> None:
    for res in (high, low):
        lay = _policy(res, res.layers)
        assert 0.84 <= (lay["p_std"] < 0.02).mean() <= 0.92
        assert lay["p_std"].max() <= 0.026
        uniform = (lay["avg_exec_token"].round(2) == lay["p95_exec_token"]) & (
            lay["p95_exec_token"] == lay["k_exec"].cast(pl.Float64)
        )
        assert 0.85 <= uniform.mean() <= 0.97
        assert (lay["frac_ge2"] == 1.0).all()
        ge3 = lay["frac_ge3"].round(4)
        assert ((ge3 == 1.0) | (ge3 == 0.0)).mean() > 0.9


def test_unmeasured_metrics_print_zero(high: SimResult) -> None:
    text = high.log_text
    layer_lines = [ln for ln in text.split("\n") if re.match(r"^ L\d+: ", ln)]
    step_lines = [ln for ln in text.split("\n") if ln.startswith("STEP: ")]
    assert layer_lines and step_lines
    assert all("ent=0.0000 |" in ln and "d_rel=0.000 |" in ln for ln in layer_lines)
    assert all("Δp=0.00 |" in ln for ln in layer_lines)
    assert all("| MTP: 0.0000 |" in ln for ln in step_lines)


def test_gradient_and_aux_scales(high: SimResult, low: SimResult, wide: SimResult) -> None:
    for res in (high, low):
        g = res.steps["grad_norm"]
        assert 2.3 <= g.median() <= 2.8
        assert 2.9 <= _phase(res.steps, 0, 800)["grad_norm"].quantile(0.95) <= 3.6
        assert 8.0 <= g.max() <= 20.0
    assert 1.4 <= wide.steps["grad_norm"].median() <= 1.8
    st = high.steps
    for (lo, hi), (a, b) in {
        (0, 800): (0.39, 0.46),
        (800, 1200): (0.65, 0.80),
        (1200, None): (0.29, 0.51),
    }.items():
        aux = _phase(st, lo, hi)["aux_loss"]
        assert a <= aux.quantile(0.05) and aux.quantile(0.95) <= b, (lo, aux.describe())


def test_lm_scale_per_phase(high: SimResult) -> None:
    st = high.steps
    assert 11.0 <= st["lm_loss"][0] <= 12.0
    assert 5.8 <= _phase(st, 700, 800)["lm_loss"].mean() <= 6.2
    assert 5.6 <= _phase(st, 800, 850)["lm_loss"].mean() <= 6.0
    assert 6.2 <= _phase(st, 1150, 1200)["lm_loss"].mean() <= 6.6  # rises as gating starts
    assert 5.4 <= _phase(st, 3600)["lm_loss"].mean() <= 5.7
    jitter = st["lm_loss"].diff().drop_nulls().abs().median()
    assert 0.08 <= jitter <= 0.3  # a single batch jitters by tenths


def test_step_time_per_phase(high: SimResult, wide: SimResult) -> None:
    for res, bounds in (
        (high, ((1100, 1350), (2200, 2500), (1450, 2600))),
        (wide, ((4500, 5100), (10_800, 12_000), None)),
    ):
        for (lo, hi), b in zip(((0, 800), (800, 1200), (1200, None)), bounds, strict=True):
            if b is None:
                continue
            dt = _phase(res.steps, lo, hi)["dt_ms"]
            assert b[0] <= dt.quantile(0.05) and dt.quantile(0.95) <= b[1], (lo, dt.describe())


def test_avgs_per_phase(high: SimResult, low: SimResult) -> None:
    warm = _phase(high.steps, 0, 800)
    assert (warm["avg_exec"] == 2.0).all() and (warm["avg_k"] == 2.0).all()
    assert (warm["avg_gap"] == 0.0).all()
    econ = _policy(low, low.steps)
    first, last = econ.head(50), econ.tail(50)
    assert first["avg_exec"].mean() > 3.2 and last["avg_exec"].mean() < 2.6
    assert 1.75 <= first["avg_k"].mean() <= 1.95 and 1.2 <= last["avg_k"].mean() <= 1.4
    assert (econ["avg_gap"] - (econ["avg_exec"] - econ["avg_k"])).abs().max() < 1e-9


def test_ponder_net_is_never_negative(high: SimResult) -> None:
    st = _phase(high.steps, high.config.ponder_start)
    assert (st["total_ponder"] >= 0).all()
    covered = st["reward"] >= st["ponder_raw"]
    assert covered.mean() > 0.3 and (st.filter(covered)["total_ponder"] == 0).all()
    lines = [ln for ln in high.log_text.split("\n") if ln.startswith("STEP: ")]
    assert any("PONDER: 0.000000 (RAW: 0.0002" in ln for ln in lines)
    assert not any("PONDER: -" in ln for ln in lines)
    assert (high.quality["delta_ce"] < 0).any()  # ΔCE itself can be negative


def test_controller_under_a_high_target_stays_at_its_floor(high: SimResult) -> None:
    econ = _phase(high.steps, high.config.ponder_start)
    assert (econ["lambda_p"] == high.config.lambda_min).all()
    assert not high.steps["deadband_active"].any() and high.meta["deadband_step"] is None
    pol = _policy(high, high.steps)
    assert 1.4 <= pol["avg_k"].mean() <= 1.8
    assert -0.6 <= pol.head(100)["ctrl_err"].mean() <= -0.35
    assert -1.0 <= pol.tail(100)["ctrl_err"].mean() <= -0.8
    assert (_phase(high.steps, 0, 800)["ctrl_err"].round(3) == -0.4).all()


def test_controller_under_a_low_target_raises_the_price(low: SimResult) -> None:
    st = low.steps
    at = dict(zip(st["step"].to_list(), st["lambda_p"].to_list(), strict=True))
    assert at[1200] == pytest.approx(1e-4)
    assert 0.008 <= at[1750] <= 0.013
    pol = _policy(low, st)
    assert 1.75 <= pol.head(30)["avg_k"].mean() <= 1.95
    assert abs(_phase(pol, 1950)["ctrl_err"].mean()) < 0.1  # CTRL_ERR reaches 0 near 2000
    assert _phase(pol, 1200, 1700)["ctrl_err"].min() > 0
    assert not st["deadband_active"].any()


def test_recurrence_quality_rates(high: SimResult, low: SimResult) -> None:
    for res in (high, low):
        q = res.quality
        policy = q.filter(pl.col("status").is_in(["ECONOMIC WIN", "TAX ONLY"]))
        audits = q.filter(pl.col("status").is_in(["AUDIT-POS", "AUDIT-NEG"]))
        win = (policy["status"] == "ECONOMIC WIN").mean()
        assert 0.55 <= win <= 0.67
        assert 0.54 <= policy["confidence"].mean() <= 0.64
        assert 0.0006 <= policy["delta_ce"].median() <= 0.0026
        assert 0.5 <= (audits["status"] == "AUDIT-POS").mean() <= 0.8


def test_resume_prints_as_real_logs_do(high: SimResult) -> None:
    lines = high.log_text.split("\n")
    assert lines[1] == "🚀 Starting Training Loop..."
    sig = lines.index("[PAUSE] Received signal 2. Pausing after current step...")
    assert lines[sig + 1].startswith("STEP: 2345 ")
    save = lines.index("[PAUSE] Saving checkpoint at step 2345 and exiting...")
    ckpt = lines[save + 1]
    assert ckpt.startswith("💾 Checkpoint saved: checkpoints/kronecker_latest.pt (step=2345, λ_p=")
    assert lines[save + 2].startswith("INIT | PARAMS: ")
    assert lines[save + 3] == "⏩ Instant Jump: Slicing dataset from row 2345 to 50000"
    assert lines[save + 4] == "📈 Restored compute price λ_p = 1.0000e-04"
    assert lines[save + 5] == "🚀 Starting Training Loop..."
    assert lines[save + 6].startswith("STEP: 2345 | TOT: ")
    assert not any("Loading checkpoint" in ln or "Resuming from step" in ln for ln in lines)
    assert high.steps["step"].to_list() == list(range(HIGH.steps))
    assert high.meta["resume_step"] == 2345 and high.meta["restarts"] == 1
    restored = re.search(r"λ_p = (\S+)", lines[save + 4])
    assert restored is not None
    assert float(restored.group(1)) == pytest.approx(float(ckpt.split("λ_p=")[1].rstrip(")")))


def test_both_checkpoint_forms(high: SimResult) -> None:
    lines = high.log_text.split("\n")
    milestone = [ln for ln in lines if "_checkpoint_step_" in ln]
    assert milestone == [
        f"💾 Checkpoint saved: checkpoints/kronecker_checkpoint_step_{s}.pt (λ_p=1.00e-04)"
        for s in (1000, 2000, 3000)
    ]
    latest = [ln for ln in lines if "kronecker_latest.pt (step=" in ln]
    assert len(latest) == len(range(250, HIGH.steps, 250)) + 1  # and the pause's


def test_generations_look_like_a_chat_model(high: SimResult, wide: SimResult) -> None:
    gens = high.generations
    assert gens["step"].unique().sort().to_list() == list(range(500, HIGH.steps, 500))
    assert all(p.startswith("<|im_start|>user\n") for p in gens["prompt"].to_list())
    assert all(p.endswith("<|im_end|>\n<|im_start|>assistant") for p in gens["prompt"])
    text = "\n".join(gens["output"].to_list())
    for mark in ("`", "**", "###", "→", "│", "┌", "天", "\ufffd"):
        assert mark in text, mark
    assert b"\xe6\x97x" in high.log_bytes  # a character cut short: not UTF-8
    with pytest.raises(UnicodeDecodeError):
        high.log_bytes.decode("utf-8")
    lines = wide.log_text.split("\n")
    fail = lines.index("Generation failed: index 65535 is out of bounds: 65535, range 0 to 65535")
    assert lines[fail - 1] == "=" * 20 + " GENERATION STEP 500 " + "=" * 20
    assert wide.generations.is_empty()


def test_the_wider_model_ends_paused(wide: SimResult) -> None:
    lines = wide.log_text.rstrip("\n").split("\n")
    assert lines[-2] == "[PAUSE] Saving checkpoint at step 933 and exiting..."
    assert lines[-1].startswith("💾 Checkpoint saved: checkpoints/kronecker_latest.pt (step=933,")
    assert wide.steps.height == 934 and wide.meta["restarts"] == 0
    assert "D=768" in lines[0]


def test_parser_reads_the_realistic_runs_back(high: SimResult, tmp_path) -> None:
    from ponder_parse.sim.simulate import write_run

    run = ponder_parse.load_run(write_run(HIGH, tmp_path))
    assert run.steps["step"].to_list() == high.steps["step"].to_list()
    assert np.allclose(run.steps["lm_loss"], high.steps["lm_loss"], atol=5e-5)
    assert run.steps["segment"].to_list() == high.steps["segment"].to_list()
    j = high.traces.join(run.traces, on=["step", "layer"], suffix="_p", validate="1:1")
    assert j.height == high.traces.height
    assert (j["s_trace"].list.len() == j["s_trace_p"].list.len()).all()
    assert run.meta["resume_steps"] == [2345] and run.meta["restarts"] == 1
    gens = run.generations.sort("step", "sample")
    assert gens.equals(high.generations.sort("step", "sample"))
    assert run.meta["last_checkpoint_step"] == 3500


def test_textbook_configs_are_written_as_before() -> None:
    """Settings added with the realistic regime stay out of a textbook run's config (and
    so out of its noise), so the committed textbook samples keep their bytes."""
    assert set(SAMPLE_BASELINE.to_json()) == {
        f for f in SimConfig.__dataclass_fields__ if f not in real_fields()
    }
    cfg = replace(SAMPLE_BASELINE, regime="real")
    assert cfg.to_json()["regime"] == "real"
    assert SimConfig.from_json(cfg.to_json()) == cfg


def real_fields() -> set[str]:
    return {"regime", "d_model", "pause_at", "gen_fail_at"}


def test_realistic_configs_are_checked() -> None:
    for bad in (
        {"regime": "dreamy"},
        {"regime": "real", "variant": "smollm"},
        {"d_model": 640},
        {"pause_at": 10_000},
        {"pause_at": 900, "crash_at": 1000},
    ):
        with pytest.raises(ValueError):
            SimConfig(**bad)


# ---- the real log lines, read back from the written files


@pytest.fixture(scope="module")
def resumed() -> ponder_parse.Run:
    from analysis_helpers import real_run

    return real_run("resumed", pause_at=1500, gen_fail_at=1000)


def test_a_real_resume_is_read_as_a_resume(resumed: ponder_parse.Run) -> None:
    """No `Resuming from step` line: the loop starts again, the dataset is fast-forwarded,
    the price restored, and the step numbers restart at the checkpoint."""
    assert resumed.meta["resume_steps"] == [1500] and resumed.meta["restarts"] == 1
    kinds = resumed.events["kind"].to_list()
    assert kinds.count("resume") >= 2 and "restored_lambda" in kinds
    # the 'Instant Jump' and 'Restored compute price' lines are understood
    assert not resumed.problems.filter(pl.col("reason").str.contains("unrecognized")).height
    assert resumed.steps["step"].is_unique().all() and resumed.steps["step"].max() == 1999
    assert resumed.steps.filter(pl.col("step") > 1500)["segment"].unique().to_list() == [1]
    from ponder_parse.analysis import red_flags

    f = red_flags.red_flags(resumed).filter(pl.col("rule") == "restarts").row(0, named=True)
    assert (f["evidence"], f["first_step"]) == ("resumed 1 time from step 1500", 1500)


def test_both_checkpoint_forms_are_checkpoints(resumed: ponder_parse.Run) -> None:
    ck = resumed.events.filter(pl.col("kind") == "checkpoint")
    text = dict(zip(ck["step"].to_list(), ck["text"].to_list(), strict=False))
    milestone = ck.filter(pl.col("text").str.contains("_checkpoint_step_"))
    assert milestone["step"].to_list() == [1000]  # its step is in the file name only
    assert "(step=" not in milestone["text"][0]
    assert "(step=1500, λ_p=" in text[1500]  # the pause's checkpoint
    assert set(range(250, 2000, 250)) <= set(ck["step"].to_list())
    assert resumed.meta["last_checkpoint_step"] == 1750


def test_a_failed_generation_is_an_event_of_its_run(resumed: ponder_parse.Run) -> None:
    failed = resumed.events.filter(pl.col("kind") == "generation_failed")
    assert failed.select("step", "text").rows() == [
        (1000, f"Generation failed: {real.GEN_FAILURE}")
    ]
    assert 1000 not in set(resumed.generations["step"])  # training went on, samples at 500
    assert set(resumed.generations["step"]) == {500, 1500}
    from ponder_parse.analysis import red_flags

    f = red_flags.red_flags(resumed).filter(pl.col("rule") == "trainer_errors").row(0, named=True)
    assert f["evidence"] == "generation failed ×1" and f["first_step"] == 1000


def test_a_frozen_gate_stays_at_one_half_through_the_economic_phase() -> None:
    cfg = replace(HIGH, gate="stuck", steps=1600, pause_at=None)
    res = simulate(cfg)
    lay = _policy(res, res.layers)
    assert lay.height and lay["p_mean"].round(2).eq(0.5).all() and (lay["p_std"] < 0.0005).all()
    assert (lay["avg_exec_token"] == 4.0).all()  # every token runs every pass
    printed = {tuple(round(v, 2) for v in t) for t in _policy(res, res.traces)["s_trace"]}
    assert printed == {(1.0, 0.5, 0.25, 0.12)}
    # the textbook settings of the learned gate are untouched by the knob
    assert simulate(replace(cfg, gate="learned")).log_bytes != res.log_bytes


def test_a_diverging_run_climbs_then_prints_nan() -> None:
    res = simulate(replace(HIGH, diverge_at=1500, steps=1600, pause_at=None))
    st = res.steps
    before = _phase(st, 1200, 1300)["grad_norm"].median()
    assert _phase(st, 1450, 1500)["grad_norm"].median() > 20 * before
    at = st.filter(pl.col("step") == 1500).row(0, named=True)
    assert at["grad_norm"] == float("inf") and at["lm_loss"] != at["lm_loss"]
    assert _phase(st, 1501)["lm_loss"].is_nan().all()
    lines = [ln for ln in res.log_text.split("\n") if ln.startswith("STEP: 1501 ")]
    assert lines and "LM: nan" in lines[0] and "GRAD: nan" in lines[0]
