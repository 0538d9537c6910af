"""The realistic regime: what the model3b trainer's real runs print, as measured on them.

The textbook regime follows the guide; real logs do not (see the notes on real runs
beside the log format). Their gate learns one global depth instead of deciding per
token, so every token of a layer survives by the same factor each pass; the ponder loop
stops as soon as at most 2% of tokens are still alive (survival at or above
`halt_thr`), so traces are cut short at 2, 3 or 4 values; force-2 warmup and audit steps
print `[1.00, 1.00]`; the gradient norm is printed before clipping; the entropy,
relative-delta, Δp and MTP fields print as zero because that build does not report them;
and a resume names no checkpoint or step.

The mechanics mirror the textbook simulator's (the same controller, audit draws, noise
streams and segment bookkeeping, from `ponder_parse.sim.simulate`); only the gate, the
execution rule and the scales differ. The constants below are the real runs' figures.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from ponder_parse.format import writer
from ponder_parse.sim import simulate as core

# Gate learning: the gate sits just under 0.5 for every token, so survival is 0.5^k and
# (with halt_thr 0.10) every token runs all passes: [1.00, 0.50, 0.25, 0.12], k = 1.87.
FROZEN_P = 0.4985
# Economic phase: the unpriced continue probability each layer drifts to (it falls as the
# model finds the later passes worth less), and the price at which the price's push
# becomes strong: the gate barely notices a small price, then gives way
# (p = free · exp(−(λ_p / PRICE_SCALE)²)).
FREE_P_START = 0.465
FREE_P_DRIFT = 0.15
FREE_P_TAU = 1400.0
PRICE_SCALE = 0.0148
GATE_TAU = 160.0
P_FLOOR, P_CEIL = 0.12, 0.62
# At most this share of tokens alive ends the ponder loop.
ALIVE_STOP = 0.02
# Spread of the continue probability across tokens, as printed (`p_std`); the gate
# differentiates tokens this little, so almost every token runs the same passes.
P_STD_MEDIAN, P_STD_SIGMA, P_STD_MAX = 0.012, 0.43, 0.0259
TOKEN_SPREAD = 0.22  # the per-token spread of p that decides execution, per unit of p_std
TOKENS_PER_STEP = 8192
# Pre-clip gradient norm: the median by model width, log-normal jitter, rare spikes.
GRAD_MEDIAN = {512: 2.5, 768: 1.6}
# Step time in ms: at two passes per layer, and the exponent of its growth with passes.
DT_TWO_PASSES = {512: 1220.0, 768: 4800.0}
DT_EXPONENT = {512: 0.94, 768: 1.25}
DT_ECONOMIC_EXTRA = {512: 250.0, 768: 900.0}  # the recurrence-quality forward pass
TOTAL_ROWS = 50_000  # the dataset the trainer slices when it resumes
DIVERGE_RAMP = 200  # steps of rising GRAD before a diverging run prints nan
GEN_FAILURE = "index 65535 is out of bounds: 65535, range 0 to 65535"
# A token cut in the middle of a multi-byte character: raw bytes in the log (held as
# surrogate escapes in the text until it is encoded).
INVALID_BYTES = "\udce6\udc97"


def _layer_offsets(cfg: core.SimConfig) -> np.ndarray:
    """How far each layer's continue probability sits from the mean: layers differ, which
    is what mixes 2-, 3- and 4-value traces within one step."""
    rng = np.random.default_rng([cfg.seed, 10])
    base = np.linspace(-0.12, 0.12, cfg.n_layers) if cfg.n_layers > 1 else np.zeros(1)
    return rng.permutation(base) + 0.01 * rng.standard_normal(cfg.n_layers)


def _free_p(cfg: core.SimConfig, t: int, offsets: np.ndarray) -> np.ndarray:
    since = max(0, t - cfg.ponder_start)
    return FREE_P_START + offsets - FREE_P_DRIFT * (1.0 - math.exp(-since / FREE_P_TAU))


def _thresholds(cfg: core.SimConfig) -> np.ndarray:
    """The continue probability a token needs to be alive entering pass j = 2..Kmax:
    survival p^(j-1) at or above halt_thr."""
    return cfg.halt_thr ** (1.0 / np.arange(1, cfg.kmax, dtype=np.float64))


def run_segment(
    cfg: core.SimConfig,
    start: int,
    end: int,
    state: core._State,
    stream: int,
    keep_state_at: int | None = None,
) -> core._Segment:
    """Step the controller and gates from `start` to `end` (exclusive).

    The controller is the textbook's (dual ascent, clamped, frozen on audit steps, the
    same deadband rule). The gate's continue probability per layer relaxes toward its
    unpriced value times exp(−(λ_p / scale)²); the passes that run follow from it by the
    trainer's stopping rule, and the controller sees their expected k.
    """
    n, nl, nk = end - start, cfg.n_layers, cfg.kmax
    steps = np.arange(start, end, dtype=np.int64)
    key = [cfg.seed, 11, stream]
    draws = [
        core._block_draw([cfg.seed, 1, stream, 1], start, n, lambda g, sh: g.random(sh), ()),
        core._block_draw([*key, 2], start, n, lambda g, sh: g.standard_normal(sh), (nl,)),
        core._block_draw([*key, 3], start, n, lambda g, sh: g.standard_normal(sh), (nl,)),
        core._block_draw([*key, 4], start, n, lambda g, sh: g.standard_normal(sh), (nl,)),
    ]
    audit = (steps >= cfg.ponder_start) & (draws[0] < cfg.audit_frac)
    offsets = _layer_offsets(cfg)
    thr = _thresholds(cfg)
    frozen = cfg.gate == "stuck"  # never leaves the untrained 0.5, whatever the price
    mid = 0.5 * (cfg.lambda_min + cfg.lambda_max)
    lo_band = cfg.target_k * (1 - cfg.deadband_lower)
    hi_band = cfg.target_k * (1 + cfg.deadband_upper)
    ntok = TOKENS_PER_STEP

    out_lam = np.empty(n)
    out_lam_after = np.empty(n)
    out_db = np.zeros(n, dtype=bool)
    out_since = np.zeros(n, dtype=np.int64)
    out_engaged = np.zeros(n, dtype=bool)
    out_p = np.empty((n, nl))
    out_std = np.empty((n, nl))
    out_frac = np.zeros((n, nl, nk - 1))
    out_len = np.empty((n, nl), dtype=np.int64)
    out_s = np.full((n, nl, nk), np.nan)
    st = state.copy()
    kept: core._State | None = None

    for i in range(n):
        t = start + i
        econ = t >= cfg.ponder_start
        forced = t < cfg.force_end or bool(audit[i])
        if st.db_active:
            st.db_since += 1
        out_lam[i] = st.lam
        out_db[i] = st.db_active
        out_since[i] = st.db_since
        if t < cfg.ponder_start or frozen:
            st.a1 = np.full(nl, FROZEN_P)
        else:
            target = _free_p(cfg, t, offsets) * math.exp(-((st.lam / PRICE_SCALE) ** 2))
            st.a1 = st.a1 + (target - st.a1) / GATE_TAU + 0.003 * draws[1][i]
            st.a1 = np.clip(st.a1, P_FLOOR, P_CEIL)
        if forced:
            p = np.ones(nl)
            p_std = np.full(nl, 0.5)
            frac = np.zeros((nl, nk - 1))
            frac[:, 0] = 1.0
            length = np.full(nl, 2, dtype=np.int64)
            s = np.full((nl, nk), np.nan)
            s[:, :2] = 1.0
        else:
            if econ and not frozen:
                p = st.a1 + 0.006 * draws[2][i]
                p_std = np.minimum(P_STD_MAX, P_STD_MEDIAN * np.exp(P_STD_SIGMA * draws[3][i]))
            else:
                p = st.a1 + 0.0002 * draws[2][i]
                p_std = np.minimum(0.00049, 0.00015 * np.abs(draws[3][i]))  # prints 0.000
            spread = np.maximum(TOKEN_SPREAD * p_std, 1e-6)
            alive = core._norm_cdf((p[:, None] - thr[None, :]) / spread[:, None])
            alive = np.minimum.accumulate(np.round(alive * ntok) / ntok, axis=1)
            ran = np.logical_and.accumulate(alive > ALIVE_STOP, axis=1)
            frac = np.where(ran, alive, 0.0)
            length = 1 + ran.sum(axis=1)
            powers = np.arange(nk, dtype=np.float64)
            s = p[:, None] ** powers[None, :]
            s = np.where(powers[None, :] < length[:, None], s, np.nan)
        avg_k = float(np.nansum(s, axis=1).mean())
        if econ and not audit[i]:
            in_band = lo_band <= avg_k <= hi_band
            if not (st.db_active and in_band):
                new = st.lam + cfg.lambda_lr * (avg_k - cfg.target_k)
                st.lam = min(cfg.lambda_max, max(cfg.lambda_min, new))
        if econ and not st.db_active:
            st.db_count = st.db_count + 1 if st.lam > mid else 0
            if st.db_count >= cfg.deadband_patience:
                st.db_active = True
                out_engaged[i] = True
        out_lam_after[i] = st.lam
        out_p[i], out_std[i], out_frac[i], out_len[i], out_s[i] = p, p_std, frac, length, s
        if keep_state_at == t:
            kept = st.copy()

    forced_rows = (steps < cfg.force_end) | audit
    seg = core._Segment(
        start=start,
        steps=steps,
        audit=audit,
        lam=out_lam,
        lam_after=out_lam_after,
        db=out_db,
        db_since=out_since,
        engaged=out_engaged,
        p1=out_p,
        q=out_p,
        sig=out_std,
        pnr=np.where(forced_rows[:, None], 0.5, 0.0) * np.ones((1, nl)),
        s=out_s,
        use=np.ones(n),
        checkpoint_state=kept,
        trace_len=out_len,
    )
    seg.cols = {"_frac": out_frac}
    return seg


def observe(cfg: core.SimConfig, seg: core._Segment, stream: int) -> None:
    """Everything else the trainer prints, drawn vectorized after the control loop."""
    rnd = core._Noise(cfg, stream, seg.steps)
    n, nl, nk = seg.steps.size, cfg.n_layers, cfg.kmax
    steps = seg.steps
    t = steps.astype(np.float64)
    warm = steps < cfg.force_end
    learning = (steps >= cfg.force_end) & (steps < cfg.ponder_start)
    econ = steps >= cfg.ponder_start
    forced = warm | seg.audit
    frac = seg.cols.pop("_frac")
    length = seg.trace_len
    assert length is not None
    s = seg.s
    k = np.nansum(s, axis=2)
    last = np.take_along_axis(s, (length - 1)[:, :, None], axis=2)[:, :, 0]
    p = seg.p1
    s_final = np.where(forced[:, None], 0.0, last * p)
    avg_exec_token = 1.0 + frac.sum(axis=2)
    p95 = 1.0 + (frac > 0.05).sum(axis=2)
    frac4 = np.zeros((n, nl, 3))
    frac4[:, :, : min(3, nk - 1)] = frac[:, :, :3]
    p_mean = np.where(forced[:, None], 1.0, p)
    zeros = np.zeros((n, nl))
    h_diff = 0.012 * (k - 1.0) * np.exp(0.2 * rnd.normal(n, nl))
    ponder_signal = (k - 1.0) / (nk - 1)
    lam_applied = np.where(econ, seg.lam, 0.0)
    p_loss = lam_applied[:, None] * ponder_signal

    avg_k = k.mean(axis=1)
    avg_exec = avg_exec_token.mean(axis=1)
    p_nr = seg.pnr.mean(axis=1)

    # Recurrence quality: a small, noisy gain from the passes that ran; audits (k = 2
    # forced) gain a little more often.
    ce = np.where(seg.audit, 0.003 + 0.007 * rnd.normal(n), 0.0016 + 0.0056 * rnd.normal(n))
    ce = core._away_from_zero(ce, 1e-6)
    dh = core._away_from_zero(-2.5 * ce + 0.0012 * rnd.normal(n), 1e-4)
    ce = np.where(econ, ce, 0.0)
    dh = np.where(econ, dh, 0.0)
    coupon = cfg.reward_eta * ce
    raw = p_loss.sum(axis=1)
    net = np.maximum(0.0, raw - coupon)  # relu(RAW − η·ΔCE): never negative

    # LM: the warmup descent, a rise once the gate takes over, then a slow descent; a
    # single batch jitters by a few tenths.
    since = np.maximum(0.0, t - cfg.ponder_start)
    learn = np.clip((t - cfg.force_end) / max(1, cfg.ponder_start - cfg.force_end), 0, 1)
    lm = np.where(
        warm,
        5.9 + 5.6 * np.exp(-t / 140.0),
        np.where(learning, 5.85 + 0.55 * learn**1.5, 5.5 + 0.95 * np.exp(-since / 900.0)),
    )
    lm = lm + 0.13 * rnd.normal(n)
    aux = np.where(
        warm,
        0.425 + 0.008 * rnd.normal(n),
        np.where(
            learning,
            0.725 + 0.02 * rnd.normal(n),
            0.32 + 0.15 * np.exp(-since / 700.0) + 0.015 * rnd.normal(n),
        ),
    )
    spikes = rnd.random() < 0.004
    grad = GRAD_MEDIAN[cfg.d_model] * np.exp(0.16 * rnd.normal(n))
    grad = grad * np.where(spikes, rnd.uniform(2.0, 6.5), 1.0)
    grad = np.where(learning, grad * 1.04, grad)
    if cfg.diverge_at is not None:
        # Blowing up: GRAD climbs steeply and LM with it for the steps before
        # `diverge_at`; from there the losses print nan and GRAD inf, then nan.
        d = cfg.diverge_at
        ramp = np.clip((t - (d - DIVERGE_RAMP)) / DIVERGE_RAMP, 0.0, None)
        grad = grad * np.exp(4.0 * ramp)
        lm = lm + 1.5 * ramp
        gone = steps >= d
        lm = np.where(gone, np.nan, lm)
        grad = np.where(steps == d, np.inf, np.where(gone, np.nan, grad))
    lr = np.array([core.lr_at(cfg, int(x)) for x in steps])
    dt = DT_TWO_PASSES[cfg.d_model] * (avg_exec / 2.0) ** DT_EXPONENT[cfg.d_model]
    dt = dt + np.where(econ, DT_ECONOMIC_EXTRA[cfg.d_model], 0.0)
    dt = dt * np.exp(0.02 * rnd.normal(n))
    tps = TOKENS_PER_STEP * 1000.0 / dt
    tot = lm + aux + net

    seg.cols = {
        "tot_loss": tot,
        "lm_loss": lm,
        "total_ponder": net,
        "ponder_raw": raw,
        "reward": coupon,
        "lr": lr,
        "grad_norm": grad,
        "lambda_p": seg.lam,
        "ctrl_err": avg_k - cfg.target_k,
        "p_near_clamp": p_nr,
        "mtp_loss": np.zeros(n),  # not reported by this build: printed as 0
        "aux_loss": aux,
        "baton": np.full(n, np.nan),
        "baton_lam": np.full(n, np.nan),
        "pl_lm": net / lm,
        "avg_exec": avg_exec,
        "avg_k": avg_k,
        "avg_gap": avg_exec - avg_k,
        "dt_ms": dt,
        "tok_per_sec": tps,
        "delta_ce": ce,
        "delta_h": dh,
        "L_k": k,
        "L_k_exec": length,
        "L_s_final": s_final,
        "L_avg_exec_token": avg_exec_token,
        "L_p95_exec_token": p95,
        "L_frac_ge2": frac4[:, :, 0],
        "L_frac_ge3": frac4[:, :, 1],
        "L_frac_ge4": frac4[:, :, 2],
        "L_ent": zeros,
        "L_p_mean": p_mean,
        "L_p_std": seg.sig,
        "L_d_rel": zeros,
        "L_h_diff": h_diff,
        "L_p_diff": zeros,
        "L_ponder_signal": ponder_signal,
        "L_lambda_p": np.broadcast_to(lam_applied[:, None], (n, nl)),
        "L_p_loss": p_loss,
        "L_p_near_clamp": seg.pnr,
    }


def resume_lines(cfg: core.SimConfig, step: int, lam: float) -> list[str]:
    """A restart as the real logs print it: the model is built again (INIT), the dataset
    fast-forwarded to the checkpoint's row, the price restored; no step is named."""
    return [core._init_line(cfg), *writer.format_instant_resume_lines(step, TOTAL_ROWS, lam)]


_PROMPTS = (
    "Write a Python function that reverses a linked list.",
    "Explain the difference between a process and a thread.",
    "What is the capital of Australia? Answer briefly.",
    "Summarize the plot of Hamlet in three sentences.",
    "Translate to Chinese: The weather is nice today.",
    "Draw a table comparing TCP and UDP.",
)
_FRAGMENTS_EARLY = (
    "the the the",
    "of of ,",
    "and and and",
    ". . .",
    "**",
    "###",
    "`",
    "→ →",
    "的 的",
    "is is a",
    "in the in",
)
_FRAGMENTS_LATE = (
    "### Answer",
    "**Step 1:** start at the head of the list",
    "use `prev`, `curr` and `next` pointers",
    "each node → its predecessor",
    "┌──────┬──────┐",
    "│ TCP  │ UDP  │",
    "└──────┴──────┘",
    "the capital is **Canberra**",
    "今天天气很好。",
    "```python",
    "def reverse(head):",
    "```",
    "a thread shares memory with its process",
    "In short → the prince hesitates, and everyone dies.",
    "**Note:** this runs in O(n) time",
)


def generation_block(
    cfg: core.SimConfig, step: int, stream: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """A generation block of the real logs: chat-formatted prompts, outputs with markdown,
    arrows, box drawing and CJK text, and once a character cut by its token boundary
    (raw bytes that are not UTF-8). A failed generation prints only its header and the
    error. The rows are the samples as a reader sees them (invalid bytes as U+FFFD)."""
    header = writer.format_generation_block(step, [])[:1]
    if step == cfg.gen_fail_at:
        return [*header, writer.format_generation_failed_line(GEN_FAILURE)], []
    rng = np.random.default_rng([cfg.seed, 12, stream, step])
    quality = min(1.0, step / 3000.0)
    samples: list[tuple[int, list[str], int, list[str]]] = []
    rows: list[dict[str, Any]] = []
    for sample in range(1, cfg.gen_samples + 1):
        question = _PROMPTS[int(rng.integers(len(_PROMPTS)))]
        prompt = ["<|im_start|>user", question + "<|im_end|>", "<|im_start|>assistant"]
        prompt_tokens = len(question.split()) + 9
        pool = _FRAGMENTS_LATE if rng.random() < 0.4 + 0.6 * quality else _FRAGMENTS_EARLY
        parts = [str(pool[int(rng.integers(len(pool)))]) for _ in range(14)]
        out_lines = core._wrap(" ".join(parts), 76)
        if step == 2 * cfg.generate_every and sample == 1:
            out_lines[0] = out_lines[0] + " 模" + INVALID_BYTES + "x"
        output_tokens = 128
        samples.append((prompt_tokens, prompt, output_tokens, out_lines))
        rows.append(
            {
                "step": step,
                "sample": sample,
                "prompt_tokens": prompt_tokens,
                "prompt": "\n".join(prompt),
                "output_tokens": output_tokens,
                "output": "\n".join(out_lines).replace(INVALID_BYTES, "\ufffd"),
            }
        )
    block = writer.format_generation_block(step, samples)
    return block, rows


def sample_base() -> core.SimConfig:
    """The settings of the real runs: 8 layers, halting threshold 0.10, the LR schedule
    over 10 000 steps (they were stopped long before), TARGET_K 2.40."""
    return core.SimConfig(
        regime="real",
        steps=3700,
        n_layers=8,
        target_k=2.4,
        halt_thr=0.1,
        lr_total_steps=10_000,
        audit_frac=0.045,
    )


# What a realistic sample's name leaves out: how long it ran and what happened to it
# (the sample README says), so that names stay the sweep's hyperparameters.
_UNNAMED = ("steps", "pause_at", "gen_fail_at")


def sample_name(cfg: core.SimConfig) -> str:
    """`regime=real,target_k=…`, then the other hyperparameters that differ from
    `sample_base()`, seed last."""
    base = sample_base()
    same = {name: getattr(base, name) for name in _UNNAMED}
    rest = core.run_name(replace(cfg, target_k=base.target_k, **same), base)
    rest = rest.removeprefix("baseline,")
    return f"regime=real,target_k={cfg.target_k:g},{rest}"


def sample_sweep() -> list[tuple[core.SimConfig, str]]:
    """Runs like the three real ones, with their notes for the sample README."""
    b = sample_base()
    return [
        (
            replace(b, pause_at=2345),
            "Realistic, TARGET_K=2.40 above what the model reaches: avg k 1.9 → 1.5, "
            "CTRL_ERR −0.5 → −0.9, λ_p at its floor 1e-4 throughout, no deadband. Traces cut "
            "short ([1.00, 0.46, 0.21], [1.00, 0.30]); a uniform gate (p_std < 0.02, tok "
            "avg = p95 = k_exec); pre-clip GRAD about 2.5; ent, d_rel, Δp and MTP print 0. "
            "Paused at step 2345 and resumed (steps restart there); one generated "
            "character is cut into invalid UTF-8.",
        ),
        (
            replace(b, target_k=1.3, steps=2001, pause_at=1907),
            "Realistic, TARGET_K=1.30: λ_p climbs from 1e-4 to about 1e-2 by step 1750, "
            "avg k falls from 1.86 towards 1.3 and traces shorten; no deadband. Paused at "
            "step 1907 and resumed with the price restored.",
        ),
        (
            replace(b, d_model=768, steps=934, pause_at=933, gen_fail_at=500, seed=1),
            "Realistic, the wider model (D=768): GRAD about 1.6, steps about 4× slower; its "
            "one generation (step 500) failed; paused at step 933 and not resumed.",
        ),
    ]
