"""A small, deterministic stand-in for the ponder trainer, writing its exact log format.

The app must open on something meaningful before anyone uploads a log, and the parser's
tests need runs whose truth is known. Real training logs give neither: they are large,
private and their "right answer" is unknowable. This module simulates the trainer's
control loop (LR schedule, force-2 warmup, gate learning, the λ_p dual-ascent price with
its deadband, audit steps, survival traces, the ΔCE coupon) closely enough that every
number a user reads in the log follows from the same mechanics, and prints it with the
trainer's own f-strings. Alongside the text it returns the values it printed as Polars
frames named after `ponder_parse.schema`, so a parse of the text can be checked exactly.

It is not a model: losses follow a noisy curve and the gate follows a price-response rule
(see `_run_segment`). Pathologies are produced by the hyperparameters a researcher would
blame for them (a price ceiling too low, a price floor too high, a halting threshold too
low) plus one gate-behaviour knob (`gate="stuck"`) for a gate that never learns.

`python -m ponder_parse.sim OUT_DIR` regenerates the committed `sample_runs/`
byte for byte.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ponder_parse import schema
from ponder_parse.format import writer
from ponder_parse.run import Run, RunMeta
from ponder_parse.sim import real as real_regime

# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Variant:
    """What differs between the two trainer scripts besides their hyperparameters."""

    log_name: str
    checkpoint: str
    script: str
    dt_ms: float
    tokens_per_step: int

    @property
    def checkpoint_stem(self) -> str:
        """`kronecker` of `checkpoints/kronecker_latest.pt`: milestones are named after it."""
        return self.checkpoint.rsplit("/", 1)[-1].removesuffix("_latest.pt")


VARIANTS: dict[str, _Variant] = {
    "model3b": _Variant(
        log_name="log_kronecker_adaptive.txt",
        checkpoint="checkpoints/kronecker_latest.pt",
        script="new-fourier-test-new.py",
        dt_ms=420.0,
        tokens_per_step=256,
    ),
    "smollm": _Variant(
        log_name="log_fourier_adaptive.txt",
        checkpoint="checkpoints/fourier_latest.pt",
        script="new-fourier-test.py",
        dt_ms=350.0,
        tokens_per_step=1024,
    ),
}

GATES = ("learned", "stuck")
# "textbook": the guide's picture. "real": what the trainer's real runs print (see
# `ponder_parse.sim.real`): cut-short traces, a gate that treats every token alike,
# pre-clip gradient norms, metrics printed as zero, resumes without naming a step.
REGIMES = ("textbook", "real")


@dataclass(frozen=True)
class SimConfig:
    """Everything that determines a simulated run; equal configs give identical bytes.

    The first group mirrors the trainer's hyperparameters (names as in `config.json`);
    the rest only shape the simulation (how long, which noise, whether it crashed).
    """

    variant: str = "model3b"
    seed: int = 0
    steps: int = 10_000
    n_layers: int = 8
    kmax: int = 4
    target_k: float = 1.30
    lambda_min: float = 1e-4
    lambda_max: float = 5e-2
    lambda_lr: float = 5e-5
    reward_eta: float = 0.4
    halt_thr: float = 0.5
    force_end: int = 800
    ponder_start: int = 1200
    lr_max: float = 3e-4
    lr_min: float = 3e-5
    warmup_steps: int = 500
    lr_total_steps: int = 10_000
    deadband_patience: int = 100
    deadband_lower: float = 0.02
    deadband_upper: float = 0.05
    audit_frac: float = 0.05
    # Gate behaviour: "learned" responds to the price; "stuck" sits at 0.5 whatever it costs
    # (in the real regime: frozen at 0.5 for every token, as in gate learning, to the end).
    gate: str = "learned"
    # How strongly the gate's continue-logit falls per unit of λ_p (first decision, later ones).
    gate_price_slope: float = 130.0
    gate_price_slope_late: float = 150.0
    # Log cadence.
    checkpoint_every: int = 250
    generate_every: int = 500
    gen_samples: int = 2
    # smollm only: print the BATON block on step lines.
    baton: bool = True
    # Crash after this step, then resume from the last checkpoint (None: no crash).
    crash_at: int | None = None
    crash_traceback: bool = True
    # Leave the log as a live run looks: the next step line half written, no newline.
    truncate_last_line: bool = False
    # From this step on the run has diverged: losses print `nan`, the gradient `inf`.
    diverge_at: int | None = None
    # Settings added with the realistic regime. `to_json` leaves them out while they hold
    # their defaults, so the configs (and noise) of textbook runs stay what they were.
    regime: str = "textbook"
    d_model: int = 512
    # Paused (signal 2) after this step, checkpointed there, and resumed from it unless it
    # is the last step (None: never paused).
    pause_at: int | None = None
    # The generation block at this step fails (`Generation failed: …`); training goes on.
    gen_fail_at: int | None = None

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, not {self.variant!r}")
        if self.regime not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, not {self.regime!r}")
        if self.regime == "real" and self.variant != "model3b":
            raise ValueError("the real regime simulates the model3b trainer")
        if self.d_model not in (512, 768):
            raise ValueError("d_model must be 512 or 768")
        if self.pause_at is not None and not 0 <= self.pause_at < self.steps:
            raise ValueError("pause_at must be a step of the run")
        if self.pause_at is not None and self.crash_at is not None:
            raise ValueError("a run either crashes or is paused, not both")
        if self.gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, not {self.gate!r}")
        if not 3 <= self.kmax <= 6:
            raise ValueError("kmax must be between 3 and 6")
        if not 1 <= self.n_layers <= 64:
            raise ValueError("n_layers must be between 1 and 64")
        if self.steps < 1:
            raise ValueError("steps must be positive")
        if self.checkpoint_every < 1 or self.generate_every < 0 or self.gen_samples < 0:
            raise ValueError("need checkpoint_every >= 1, generate_every >= 0, gen_samples >= 0")
        if not 0 <= self.force_end <= self.ponder_start:
            raise ValueError("need 0 <= force_end <= ponder_start")
        if not 0 < self.lambda_min <= self.lambda_max:
            raise ValueError("need 0 < lambda_min <= lambda_max")
        if not 0 < self.halt_thr < 1:
            raise ValueError("halt_thr must be in (0, 1)")
        if self.crash_at is not None and not (
            self.checkpoint_every <= self.crash_at < self.steps - 1
        ):
            raise ValueError("crash_at must lie between the first checkpoint and the last step")

    @property
    def variant_info(self) -> _Variant:
        return VARIANTS[self.variant]

    @property
    def resume_step(self) -> int | None:
        """The checkpoint step a crashed or paused run restarts from (None: it does not)."""
        if self.pause_at is not None:
            return self.pause_at if self.pause_at < self.steps - 1 else None
        if self.crash_at is None:
            return None
        return (self.crash_at // self.checkpoint_every) * self.checkpoint_every

    @property
    def last_logged(self) -> int:
        """The last step the first process prints: a crash's or pause's, else the last."""
        if self.crash_at is not None:
            return self.crash_at
        if self.pause_at is not None:
            return self.pause_at
        return self.steps - 1

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in _LATER_FIELDS:
            if data[name] == _DEFAULTS[name]:
                del data[name]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


_LATER_FIELDS = ("regime", "d_model", "pause_at", "gen_fail_at")
_DEFAULTS = {f.name: f.default for f in fields(SimConfig)}


def run_name(config: SimConfig, baseline: SimConfig | None = None) -> str:
    """Folder name saying what differs from `baseline`, as `key=value` tokens.

    Keys are `config.json` keys, so a name can be read back into hyperparameters; the seed
    always comes last so runs that differ only by seed sort and group together.
    """
    base = baseline or SimConfig()
    tokens = [
        f"{f.name}={_name_value(getattr(config, f.name))}"
        for f in fields(SimConfig)
        if f.name != "seed" and getattr(config, f.name) != getattr(base, f.name)
    ]
    return ",".join((tokens or ["baseline"]) + [f"seed={config.seed}"])


def _name_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class SimResult:
    """The log as written plus the truth it was written from.

    Tables use `ponder_parse.schema` names and hold unrounded values; percentages are
    fractions (the log's `41.20%` is `0.412`), as the parser reports them. For a resumed
    run they hold what counts: the re-run steps replace the ones before the crash.
    """

    config: SimConfig
    log_name: str
    log_text: str
    stats: dict[str, Any]
    steps: pl.DataFrame
    layers: pl.DataFrame
    traces: pl.DataFrame
    quality: pl.DataFrame
    lr_checks: pl.DataFrame
    generations: pl.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def run_meta(self) -> RunMeta:
        """The run facts a parse of this log derives, taken from the truth (which also
        holds facts no log states, such as the crash step)."""
        truth = self.meta
        meta = RunMeta(
            params=truth["params"],
            n_layers=truth["n_layers"],
            kmax=truth["kmax"],
            target_k=truth["target_k"],
            restarts=truth["restarts"],
            deadband_step=truth["deadband_step"],
        )
        if truth.get("resume_step") is not None:
            meta["resume_steps"] = [truth["resume_step"]]
        return meta

    @property
    def log_bytes(self) -> bytes:
        """The log as written to disk. Raw bytes that are not UTF-8 (a real model's output
        can hold them) are carried in the text as surrogate escapes."""
        return self.log_text.encode("utf-8", errors="surrogateescape")

    def to_run(self, name: str | None = None) -> Run:
        """The truth as a `ponder_parse.run.Run`, e.g. to test analyses without parsing."""
        snap_rows = [{"layer": i, **lay} for i, lay in enumerate(self.stats.get("layers", []))]
        snapshot_layers = (
            schema.conform(
                pl.from_dicts(snap_rows, infer_schema_length=None), schema.SNAPSHOT_LAYERS
            )
            if snap_rows
            else schema.empty(schema.SNAPSHOT_LAYERS)
        )
        return Run(
            name=name or run_name(self.config),
            variant=self.config.variant,
            steps=self.steps,
            layers=self.layers,
            traces=self.traces,
            quality=self.quality,
            lr_checks=self.lr_checks,
            generations=self.generations,
            snapshot=self.stats,
            snapshot_layers=snapshot_layers,
            meta=self.run_meta(),
            hparams=self.config.to_json(),
        )


# --------------------------------------------------------------------------------------
# Dynamics
# --------------------------------------------------------------------------------------

_LOGIT_CLAMP = math.log(0.05 / 0.95)  # gate values at or below 0.05 count as "near clamp"
_STUCK_LATE_LOGIT = math.log(0.998 / 0.002)


@dataclass
class _State:
    """Controller and gate state carried across steps (and through a checkpoint)."""

    a1: np.ndarray  # per-layer logit of the first continue decision
    a2: np.ndarray  # per-layer logit of the later continue decisions
    sig: np.ndarray  # per-layer spread of gate logits across tokens
    pnr: np.ndarray  # per-layer fraction of gates near the lower clamp
    lam: float
    db_active: bool = False
    db_count: int = 0
    db_since: int = 0
    use: float = 1.0  # EMA of how much recurrence is exercised: what keeps it trained

    def copy(self) -> _State:
        return replace(
            self, a1=self.a1.copy(), a2=self.a2.copy(), sig=self.sig.copy(), pnr=self.pnr.copy()
        )


@dataclass(frozen=True)
class _Constants:
    """Per-run, per-layer traits drawn once from the seed."""

    free1: np.ndarray  # unpriced continue-logit the gate drifts to (recurrence is free)
    free2: np.ndarray
    sig_target: np.ndarray
    ent0: np.ndarray
    d0: np.ndarray
    a1_init: np.ndarray
    a2_init: np.ndarray


def _constants(cfg: SimConfig) -> _Constants:
    rng = np.random.default_rng([cfg.seed, 0])
    n = cfg.n_layers
    return _Constants(
        free1=2.9 + 0.15 * rng.standard_normal(n),
        free2=2.9 + 0.15 * rng.standard_normal(n),
        sig_target=0.9 + 0.1 * rng.standard_normal(n),
        ent0=3.0 + 0.35 * rng.random(n) + 0.05 * np.arange(n),
        d0=0.05 + 0.03 * rng.random(n),
        a1_init=0.1 * rng.standard_normal(n),
        a2_init=0.1 * rng.standard_normal(n),
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7): no SciPy needed."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def lr_at(cfg: SimConfig, step: int) -> float:
    """The trainer's schedule: linear warmup, cosine decay to `lr_min`, then flat."""
    if step < cfg.warmup_steps:
        return cfg.lr_max * (step + 1) / cfg.warmup_steps
    if step > cfg.lr_total_steps:
        return cfg.lr_min
    ratio = (step - cfg.warmup_steps) / max(1, cfg.lr_total_steps - cfg.warmup_steps)
    return cfg.lr_min + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr_max - cfg.lr_min)


def lr_phase(cfg: SimConfig, step: int) -> str:
    if step < cfg.warmup_steps:
        return "warmup"
    return "cosine" if step <= cfg.lr_total_steps else "done"


@dataclass
class _Segment:
    """One uninterrupted stretch of training (a process lifetime), as arrays by step."""

    start: int
    steps: np.ndarray
    audit: np.ndarray
    lam: np.ndarray  # controller state printed on the step line
    lam_after: np.ndarray  # after this step's update (what a checkpoint saves)
    db: np.ndarray
    db_since: np.ndarray
    engaged: np.ndarray  # deadband engaged at the end of this step
    p1: np.ndarray  # (n, L)
    q: np.ndarray
    sig: np.ndarray
    pnr: np.ndarray
    s: np.ndarray  # (n, L, K) survival entering each pass, as printed
    use: np.ndarray
    checkpoint_state: _State | None = None
    cols: dict[str, np.ndarray] = field(default_factory=dict)
    # (n, L) passes that ran when a trace can be cut short (the real regime): `s` holds
    # NaN after them. None: every trace has Kmax values.
    trace_len: np.ndarray | None = None

    def trace(self, i: int, j: int) -> list[float]:
        """The survival trace printed for row i, layer j."""
        values = self.s[i, j].tolist()
        return values if self.trace_len is None else values[: int(self.trace_len[i, j])]


def _run_segment(
    cfg: SimConfig,
    const: _Constants,
    start: int,
    end: int,
    state: _State,
    stream: int,
    keep_state_at: int | None = None,
) -> _Segment:
    """Step the controller and gates from `start` to `end` (exclusive).

    The gate's continue-logits relax toward an equilibrium that falls linearly with the
    applied price; while the price is zero (before PONDER_START) that equilibrium is
    "always continue", because recurrence is free and helps a little. The relaxation rate
    is scaled by the share of gates *not* near the clamp: gates at the clamp get no
    gradient, which is what makes over-pricing an absorbing state rather than a dip.
    The controller is the trainer's: λ += lambda_lr · (avg_k − TARGET_K), clamped, frozen
    on audit steps and, once the deadband is engaged, inside the asymmetric band.
    """
    n, nl, nk = end - start, cfg.n_layers, cfg.kmax
    steps = np.arange(start, end, dtype=np.int64)
    key = [cfg.seed, 1, stream]
    draws = [
        _block_draw([*key, 1], start, n, lambda g, sh: g.random(sh), ()),
        _block_draw([*key, 2], start, n, lambda g, sh: g.standard_normal(sh), (2, nl)),
        _block_draw([*key, 3], start, n, lambda g, sh: g.standard_normal(sh), (2, nl)),
    ]
    audit = (steps >= cfg.ponder_start) & (draws[0] < cfg.audit_frac)
    stuck = cfg.gate == "stuck"
    walk = (0.004 if stuck else 0.012) * draws[1]
    obs = (0.004 if stuck else 0.05) * draws[2]
    rate = 1.0 / 150.0
    mid = 0.5 * (cfg.lambda_min + cfg.lambda_max)
    lo_band, hi_band = (
        cfg.target_k * (1 - cfg.deadband_lower),
        cfg.target_k * (1 + cfg.deadband_upper),
    )
    powers = np.arange(nk - 1, dtype=np.float64)

    out_lam = np.empty(n)
    out_lam_after = np.empty(n)
    out_db = np.zeros(n, dtype=bool)
    out_since = np.zeros(n, dtype=np.int64)
    out_engaged = np.zeros(n, dtype=bool)
    out_p1 = np.empty((n, nl))
    out_q = np.empty((n, nl))
    out_sig = np.empty((n, nl))
    out_pnr = np.empty((n, nl))
    out_s = np.empty((n, nl, nk))
    out_use = np.empty(n)
    forced_s = np.zeros(nk)
    forced_s[:2] = 1.0
    st = state.copy()
    kept: _State | None = None

    for i in range(n):
        t = start + i
        econ = t >= cfg.ponder_start
        if st.db_active:
            st.db_since += 1
        out_lam[i] = st.lam
        out_db[i] = st.db_active
        out_since[i] = st.db_since
        lam_applied = st.lam if econ else 0.0
        if t >= cfg.force_end:
            if stuck:
                st.a1 += rate * (0.0 - st.a1) + walk[i, 0]
                st.a2 += rate * (_STUCK_LATE_LOGIT - st.a2) + walk[i, 1]
                st.sig += rate * (0.02 - st.sig)
            else:
                live = rate * (1.0 - st.pnr)
                st.a1 += live * (const.free1 - cfg.gate_price_slope * lam_applied - st.a1)
                st.a1 += walk[i, 0]
                st.a2 += live * (const.free2 - cfg.gate_price_slope_late * lam_applied - st.a2)
                st.a2 += walk[i, 1]
                st.sig += rate * (const.sig_target - st.sig)
        o1 = st.a1 + obs[i, 0]
        p1 = _sigmoid(o1)
        q = _sigmoid(st.a2 + obs[i, 1])
        st.pnr = _norm_cdf((_LOGIT_CLAMP - o1) / st.sig)
        if t < cfg.force_end or audit[i]:
            s = np.broadcast_to(forced_s, (nl, nk))
        else:
            s = np.empty((nl, nk))
            s[:, 0] = 1.0
            s[:, 1:] = p1[:, None] * q[:, None] ** powers
        avg_k = float(s.sum(axis=1).mean())
        if t >= cfg.force_end:
            exercised = min(1.0, max(0.0, (avg_k - 1.0) / 0.25)) if not audit[i] else st.use
            st.use += (exercised - st.use) / 300.0
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
        out_p1[i], out_q[i], out_sig[i], out_pnr[i] = p1, q, st.sig, st.pnr
        out_s[i] = s
        out_use[i] = st.use
        if keep_state_at == t:
            kept = st.copy()

    return _Segment(
        start=start,
        steps=steps,
        audit=audit,
        lam=out_lam,
        lam_after=out_lam_after,
        db=out_db,
        db_since=out_since,
        engaged=out_engaged,
        p1=out_p1,
        q=out_q,
        sig=out_sig,
        pnr=out_pnr,
        s=out_s,
        use=out_use,
        checkpoint_state=kept,
    )


_BLOCK = 1024


_Draw = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def _block_draw(
    key: list[int], start: int, n: int, draw: _Draw, tail: tuple[int, ...]
) -> np.ndarray:
    """Draws for absolute steps [start, start + n), identical for a step whichever segment
    or run length asks for it: the stream is cut into fixed blocks of steps, each block
    seeded by its index, so a crashed run's first process repeats the uncrashed run."""
    first, last = start // _BLOCK, (start + n - 1) // _BLOCK
    parts = [
        draw(np.random.default_rng([*key, c]), (_BLOCK, *tail)) for c in range(first, last + 1)
    ]
    off = start - first * _BLOCK
    return np.concatenate(parts)[off : off + n]


class _Noise:
    """Per-step noise shared by every config of a seed until the force warmup ends, then
    the config's own.

    Runs of one seed see the same data in the same order, so a real sweep's curves are
    identical until a hyperparameter first matters and then drift apart; drawing all
    noise from the seed alone would instead keep them in lockstep forever, which looks
    (and is) fake. Settings that only change what is printed, or how long the run is, do
    not enter the fingerprint.
    """

    _UNFINGERPRINTED = frozenset(
        {
            "seed",
            "steps",
            "crash_at",
            "crash_traceback",
            "truncate_last_line",
            "checkpoint_every",
            "generate_every",
            "gen_samples",
            "baton",
            "diverge_at",
            "pause_at",
            "gen_fail_at",
        }
    )

    def __init__(self, cfg: SimConfig, stream: int, steps: np.ndarray) -> None:
        hp = {k: v for k, v in cfg.to_json().items() if k not in self._UNFINGERPRINTED}
        self.fingerprint = zlib.crc32(json.dumps(hp, sort_keys=True).encode())
        self.key = [cfg.seed, 2, stream]
        self.start, self.n = int(steps[0]), steps.size
        self.early = steps < cfg.force_end
        self.calls = 0

    def _mix(self, draw: _Draw, tail: tuple[int, ...] = ()) -> np.ndarray:
        self.calls += 1
        shared = _block_draw([*self.key, 0, self.calls], self.start, self.n, draw, tail)
        own = _block_draw([*self.key, self.fingerprint, self.calls], self.start, self.n, draw, tail)
        return np.where(self.early.reshape((-1,) + (1,) * len(tail)), shared, own)

    def normal(self, *shape: int) -> np.ndarray:
        return self._mix(lambda g, sh: g.standard_normal(sh), tuple(shape[1:]))

    def random(self) -> np.ndarray:
        return self._mix(lambda g, sh: g.random(sh))

    def uniform(self, low: float, high: float) -> np.ndarray:
        return self._mix(lambda g, sh: g.uniform(low, high, sh))

    def t(self, df: float) -> np.ndarray:
        return self._mix(lambda g, sh: g.standard_t(df, sh))


def _observe(cfg: SimConfig, const: _Constants, seg: _Segment, stream: int) -> None:
    """Everything else the trainer prints, derived from the segment's gate trajectory.

    Drawn vectorized after the control loop because none of it feeds back into control.
    Hard execution follows soft survival; a halting threshold below 0.5 lets tokens run
    on after their survival has decayed (`frac = s ** (halt_thr / 0.5)`), which is what
    opens the exec-vs-k gap the guide warns about.
    """
    rnd = _Noise(cfg, stream, seg.steps)
    var = cfg.variant_info
    n, nl, nk = seg.steps.size, cfg.n_layers, cfg.kmax
    t = seg.steps.astype(np.float64)
    forced = (seg.steps < cfg.force_end) | seg.audit
    econ = seg.steps >= cfg.ponder_start
    s = seg.s
    k = s.sum(axis=2)
    s_final = np.where(forced[:, None], 0.0, s[:, :, -1] * seg.q)

    # Hard execution: fraction of the batch's tokens that ran at least j passes.
    ntok = var.tokens_per_step
    alpha = cfg.halt_thr / 0.5
    frac = np.clip(s[:, :, 1:] ** alpha * np.exp(0.03 * rnd.normal(n, nl, nk - 1)), 0, 1)
    frac = np.minimum.accumulate(np.round(frac * ntok) / ntok, axis=2)
    frac = np.where(forced[:, None, None], s[:, :, 1:], frac)
    avg_exec_token = 1.0 + frac.sum(axis=2)
    p95 = 1.0 + (frac > 0.05).sum(axis=2)
    k_exec = 1 + (frac > 0).sum(axis=2)
    frac4 = np.zeros((n, nl, 3))
    frac4[:, :, : min(3, nk - 1)] = frac[:, :, :3]

    p_std = seg.p1 * (1 - seg.p1) * seg.sig * np.exp(0.05 * rnd.normal(n, nl))
    progress = t / max(cfg.lr_total_steps, 1)
    ent = const.ent0 - 0.35 * (1 - np.exp(-progress / 0.3))[:, None]
    ent = ent + 0.015 * rnd.normal(n, nl)
    d_rel = const.d0 * (0.5 + 0.5 * np.exp(-progress / 0.4))[:, None]
    d_rel = d_rel * np.exp(0.08 * rnd.normal(n, nl))
    h_diff = d_rel * (k - 1.0)
    p_diff = seg.q - seg.p1
    ponder_signal = (k - 1.0) / (nk - 1)
    lam_applied = np.where(econ, seg.lam, 0.0)
    p_loss = lam_applied[:, None] * ponder_signal

    avg_k = k.mean(axis=1)
    avg_exec = avg_exec_token.mean(axis=1)
    p_nr = seg.pnr.mean(axis=1)

    # Recurrence quality: how much the extra passes help, given they get exercised.
    ramp = 1.0 - np.exp(-t / 600.0)
    ce_mean = 0.05 * ramp * seg.use - 0.004 * (1.0 - seg.use)
    ce = _away_from_zero(ce_mean + 0.018 * rnd.t(5), 1e-6)
    dh = _away_from_zero(-0.5 * ce + 0.012 * rnd.normal(n), 1e-4)
    ce = np.where(econ, ce, 0.0)
    dh = np.where(econ, dh, 0.0)
    coupon = cfg.reward_eta * ce
    raw = p_loss.sum(axis=1)
    net = raw - coupon

    # Losses: a noisy power-law descent, recurrence shaving a little off, rare grad spikes.
    tau = max(cfg.lr_total_steps, 1000) / 40.0
    spikes = rnd.random() < 0.003
    spike_size = np.where(spikes, rnd.uniform(3.0, 9.0), 1.0)
    bump = np.convolve(np.where(spikes, rnd.uniform(0.08, 0.3), 0.0), 0.7 ** np.arange(12))[:n]
    lm = 2.3 + 2.7 * (1.0 + t / tau) ** -0.6 - 0.06 * seg.use * ramp + bump
    lm = lm + 0.035 * rnd.normal(n)
    mtp = lm + 0.10 + 0.15 * np.exp(-t / 2000.0) + 0.03 * rnd.normal(n)
    aux = 0.004 * (1.0 + 5.0 * np.exp(-t / 700.0)) * np.exp(0.35 * rnd.normal(n))
    grad = 0.55 * (1.0 + 1.5 * np.exp(-t / 150.0)) * np.exp(0.22 * rnd.normal(n))
    grad = grad * spike_size
    lr = np.array([lr_at(cfg, int(x)) for x in seg.steps])
    stall = np.where(rnd.random() < 0.004, rnd.uniform(2.0, 4.0), 1.0)
    dt = var.dt_ms * (0.5 + 0.25 * avg_exec) * np.exp(0.04 * rnd.normal(n)) * stall
    tps = ntok * 1000.0 / dt
    if cfg.diverge_at is not None:
        # A blown-up run keeps printing: the gradient norm overflows, the losses are NaN.
        gone = seg.steps >= cfg.diverge_at
        lm = np.where(gone, np.nan, lm)
        mtp = np.where(gone, np.nan, mtp)
        grad = np.where(seg.steps == cfg.diverge_at, np.inf, np.where(gone, np.nan, grad))
    if cfg.variant == "model3b":
        tot = lm + 0.3 * mtp + aux + net
        mtp_col, aux_col = mtp, aux
        baton = baton_lam = np.full(n, np.nan)
    else:
        tot = lm + net
        mtp_col = aux_col = np.full(n, np.nan)
        baton = 0.35 + 0.15 * np.clip(progress, 0, 1) + 0.03 * rnd.normal(n)
        baton_lam = 0.02 + 0.5 * lam_applied + 0.002 * rnd.normal(n)
        if not cfg.baton:
            baton = baton_lam = np.full(n, np.nan)

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
        "mtp_loss": mtp_col,
        "aux_loss": aux_col,
        "baton": baton,
        "baton_lam": baton_lam,
        "pl_lm": net / lm,
        "avg_exec": avg_exec,
        "avg_k": avg_k,
        "avg_gap": avg_exec - avg_k,
        "dt_ms": dt,
        "tok_per_sec": tps,
        "delta_ce": ce,
        "delta_h": dh,
        # per layer (n, L)
        "L_k": k,
        "L_k_exec": k_exec,
        "L_s_final": s_final,
        "L_avg_exec_token": avg_exec_token,
        "L_p95_exec_token": p95,
        "L_frac_ge2": frac4[:, :, 0],
        "L_frac_ge3": frac4[:, :, 1],
        "L_frac_ge4": frac4[:, :, 2],
        "L_ent": ent,
        "L_p_mean": seg.p1,
        "L_p_std": p_std,
        "L_d_rel": d_rel,
        "L_h_diff": h_diff,
        "L_p_diff": p_diff,
        "L_ponder_signal": ponder_signal,
        "L_lambda_p": np.broadcast_to(lam_applied[:, None], (n, nl)),
        "L_p_loss": p_loss,
        "L_p_near_clamp": seg.pnr,
    }


def _away_from_zero(x: np.ndarray, eps: float) -> np.ndarray:
    """Keep sign-bearing values off zero so their printed sign matches their status label."""
    return np.where(np.abs(x) < eps, np.where(x < 0, -eps, eps), x)


# --------------------------------------------------------------------------------------
# Rendering (the trainer's own f-strings)
# --------------------------------------------------------------------------------------


def _init_params(cfg: SimConfig) -> int:
    if cfg.variant == "model3b":
        width = (cfg.d_model / 512) ** 2  # parameters grow with the square of the width
        return 51_234_567 + round(50_000_000 * width) * cfg.n_layers
    return 14_123_456 + 9_000_000 * cfg.n_layers


def _init_line(cfg: SimConfig) -> str:
    if cfg.variant == "model3b":
        return writer.format_init_line(
            "model3b",
            params=_init_params(cfg),
            emb="Kronecker(D=8192)+tok_embed",
            d_model=cfg.d_model,
            n_layers_cfg=cfg.n_layers,
            n_heads=16,
            experts="4r+4n",
            ponder="ON",
        )
    return writer.format_init_line("smollm", params=_init_params(cfg), K=1536)


def _step_values(cfg: SimConfig, row: dict[str, Any]) -> dict[str, Any]:
    """A step's values with the blocks this variant does not print left out."""
    if cfg.variant != "model3b":
        row["mtp_loss"] = None
    if cfg.variant == "model3b" or not cfg.baton:
        row["baton"] = None
    return row


_LAYER_ARGS = (
    "layer", "k_exec", "k", "s_final", "avg_exec_token", "p95_exec_token", "frac_ge2",
    "frac_ge3", "frac_ge4", "ent", "p_mean", "p_std", "d_rel", "h_diff", "p_diff",
    "ponder_signal", "lambda_p",
)  # fmt: skip


def _layer_line(*args: Any) -> str:
    """A per-layer line from positional values in print order."""
    return writer.format_layer_line(dict(zip(_LAYER_ARGS, args, strict=True)))


def _quality_line(ce: float, dh: float, coupon: float, audit: bool) -> str:
    status, confidence = writer.quality_status(ce, dh, audit)
    return writer.format_quality_line(ce, dh, coupon, status, confidence)


_PROMPTS = (
    "Once upon a time, in a small village at the edge of the forest, there lived",
    "def fibonacci(n):\n    if n < 2:",
    "The three most important causes of the French Revolution were",
    "Q: Why does a language model's loss spike right after warmup?\nA:",
    "In a shocking finding, scientists discovered a herd of unicorns living in",
    "The recipe calls for two cups of flour, one egg and",
)
_WORDS_EARLY = [
    "the",
    "the",
    ",",
    ",",
    ".",
    "of",
    "and",
    "a",
    "to",
    "in",
    "is",
    "was",
    "it",
    "that",
    "he",
    "she",
]
_WORDS_LATE = [
    "the",
    "old",
    "man",
    "walked",
    "slowly",
    "toward",
    "river",
    "where",
    "children",
    "were",
    "playing",
    ",",
    "and",
    "she",
    "said",
    "that",
    "nobody",
    "had",
    "ever",
    "seen",
    "such",
    "a",
    "thing",
    "before",
    ".",
    "it",
    "was",
    "late",
    "in",
    "evening",
    "when",
    "they",
    "finally",
    "returned",
    "to",
    "village",
    "with",
    "news",
    "of",
    "what",
    "happened",
    ";",
    "a",
    "small",
    "boat",
    "lay",
    "on",
    "shore",
    ",",
    "its",
    "sail",
    "torn",
    "by",
    "wind",
    ".",
    "we",
    "found",
]


def _fake_step_line(cfg: SimConfig) -> str:
    """A well-formed step line the *model* writes: text that must never become data."""
    return writer.format_step_line(
        _step_values(
            cfg,
            {
                "step": 99,
                "audit": False,
                "tot_loss": 4.1234,
                "lm_loss": 3.9876,
                "total_ponder": 0.0,
                "ponder_raw": 0.0,
                "reward": 0.0,
                "lr": 5.94e-5,
                "grad_norm": 0.8123,
                "lambda_p": cfg.lambda_min,
                "deadband_active": False,
                "ctrl_err": 0.7,
                "p_near_clamp": 0.0,
                "mtp_loss": 4.1,
                "aux_loss": 0.021,
                "baton": 0.4,
                "baton_lam": 0.02,
                "pl_lm": 0.0,
                "avg_exec": 2.0,
                "avg_k": 2.0,
                "avg_gap": 0.0,
                "dt_ms": 420.0,
                "tok_per_sec": 609.52,
            },
        )
    )


def _generation_block(
    cfg: SimConfig, step: int, stream: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """A sample block as the trainer prints it, and its samples as generation rows.

    Early samples are word salad and later ones read better, as a real model's do. Two
    blocks carry text shaped exactly like log lines, indented as output: a model trained
    on its own logs echoes them, and a parser must never take them for data.
    """
    rng = np.random.default_rng([cfg.seed, 3, stream, step])
    samples: list[tuple[int, list[str], int, list[str]]] = []
    rows: list[dict[str, Any]] = []
    quality = min(1.0, step / 3000.0)
    for sample in range(1, cfg.gen_samples + 1):
        prompt = _PROMPTS[int(rng.integers(len(_PROMPTS)))]
        prompt_tokens = max(1, round(len(prompt.split()) * 1.3))
        words = [
            str(rng.choice(_WORDS_LATE if rng.random() < quality else _WORDS_EARLY))
            for _ in range(96)
        ]
        out_lines = _wrap(" ".join(words), 76)
        if step == cfg.generate_every and sample == cfg.gen_samples:
            out_lines.insert(1, _fake_step_line(cfg))
        if step == 2 * cfg.generate_every and sample == 1:
            out_lines.insert(1, _quality_line(0.1, -0.1, 0.05, False))
            out_lines.insert(
                2,
                _layer_line(
                    0, 2, 2.0, 0.0, 2.0, 2.0, 1, 0, 0, 3.1, 0.5, 0.1, 0.04, 0.04, -0.1, 0.333, 0.0
                ),
            )
        samples.append((prompt_tokens, prompt.split("\n"), _GEN_TOKENS, out_lines))
        rows.append(
            {
                "step": step,
                "sample": sample,
                "prompt_tokens": prompt_tokens,
                "prompt": prompt,
                "output_tokens": _GEN_TOKENS,
                "output": "\n".join(out_lines),
            }
        )
    return writer.format_generation_block(step, samples), rows


_GEN_TOKENS = 128


def _wrap(text: str, width: int) -> list[str]:
    out: list[str] = []
    cur = ""
    for word in text.split(" "):
        if cur and len(cur) + 1 + len(word) > width:
            out.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        out.append(cur)
    return out


def _render_segment(
    cfg: SimConfig, seg: _Segment, stream: int
) -> tuple[list[str], list[dict[str, Any]]]:
    """The segment's log lines, and the generation samples it printed (for the truth)."""
    c = {name: v.tolist() for name, v in seg.cols.items() if not name.startswith("L_")}
    # Per-layer values are only printed every 10 steps: convert just those rows.
    rows = np.flatnonzero(seg.steps % 10 == 0)
    row_of = dict(zip(seg.steps[rows].tolist(), range(rows.size), strict=True))
    lay = {
        name: np.asarray(v)[rows].tolist() for name, v in seg.cols.items() if name.startswith("L_")
    }
    s_list = seg.s[rows].tolist()
    if seg.trace_len is not None:
        lens = seg.trace_len[rows].tolist()
        s_list = [
            [vals[:n] for vals, n in zip(row, ns, strict=True)]
            for row, ns in zip(s_list, lens, strict=True)
        ]
    real = cfg.regime == "real"
    pause = cfg.pause_at if stream == 0 else None
    steps = seg.steps.tolist()
    audit = seg.audit.tolist()
    lam = seg.lam.tolist()
    lam_after = seg.lam_after.tolist()
    db = seg.db.tolist()
    engaged = seg.engaged.tolist()
    out: list[str] = []
    gens: list[dict[str, Any]] = []
    step_cols = [name for name in c if name in schema.STEPS]
    layer_cols = [name for name in schema.LAYERS if f"L_{name}" in lay]
    for i, step in enumerate(steps):
        row = {name: c[name][i] for name in step_cols}
        row |= {"step": step, "audit": audit[i], "lambda_p": lam[i], "deadband_active": db[i]}
        if step == pause:  # the signal arrives during the step; it finishes first
            out.append(writer.format_pause_signal_line())
        out.append(writer.format_step_line(_step_values(cfg, row)))
        if step % 10 == 0:
            r = row_of[step]
            for j in range(cfg.n_layers):
                values = {name: lay[f"L_{name}"][r][j] for name in layer_cols}
                out.append(writer.format_layer_line(values | {"layer": j}))
                if step % 50 == 0:
                    out.append(writer.format_trace_line(j, s_list[r][j]))
        if step % 50 == 0:
            out.append(writer.format_lr_check_line(step, c["lr"][i], lr_phase(cfg, step)))
        if step >= cfg.ponder_start:
            ce = c["delta_ce"][i]
            out.append(_quality_line(ce, c["delta_h"][i], cfg.reward_eta * ce, audit[i]))
        if engaged[i]:
            out += writer.format_deadband_lines(
                cfg.variant,
                lam_after[i],
                cfg.deadband_patience,
                cfg.target_k,
                cfg.deadband_lower,
                cfg.deadband_upper,
            )
        checkpoint = writer.format_checkpoint_line(cfg.variant_info.checkpoint, step, lam_after[i])
        if step > 0 and step % cfg.checkpoint_every == 0 and step != pause:
            out.append(checkpoint)
            if real and step % _MILESTONE_EVERY == 0:
                out.append(
                    writer.format_milestone_checkpoint_line(
                        cfg.variant_info.checkpoint_stem, step, lam_after[i]
                    )
                )
        if step > 0 and cfg.generate_every > 0 and step % cfg.generate_every == 0:
            if real:
                block, gen_rows = real_regime.generation_block(cfg, step, stream)
            else:
                block, gen_rows = _generation_block(cfg, step, stream)
            out += block
            gens += gen_rows
        if step == pause:
            out += [writer.format_pause_saving_line(step), checkpoint]
    return out, gens


# The real runs also keep a checkpoint of their own every this many steps.
_MILESTONE_EVERY = 1000


def _traceback_lines(cfg: SimConfig) -> list[str]:
    script = cfg.variant_info.script
    site = ".venv/lib/python3.11/site-packages/torch"
    return [
        "Traceback (most recent call last):",
        f'  File "{script}", line 2011, in <module>',
        "    train()",
        f'  File "{script}", line 1788, in train',
        "    scaler.scale(loss).backward()",
        f'  File "{site}/_tensor.py", line 581, in backward',
        "    torch.autograd.backward(",
        f'  File "{site}/autograd/__init__.py", line 347, in backward',
        "    _engine_run_backward(",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. "
        "GPU 0 has a total capacity of 23.65 GiB of which 1.12 GiB is free.",
    ]


def _resume_lines(cfg: SimConfig, step: int, lam: float, loss: float) -> list[str]:
    return [
        _init_line(cfg),
        *writer.format_resume_lines(cfg.variant_info.checkpoint, step, lam, loss),
    ]


# --------------------------------------------------------------------------------------
# Truth tables and stats.json
# --------------------------------------------------------------------------------------

_STEP_COLS = [c for c in schema.STEPS if c not in ("step", "audit", "deadband_active", "segment")]
_LAYER_COLS = [c for c in schema.LAYERS if c not in ("step", "layer")]


def _tables(
    cfg: SimConfig, seg: _Segment, keep: np.ndarray, segment: int
) -> dict[str, pl.DataFrame]:
    steps = seg.steps[keep]
    nl = cfg.n_layers
    c = seg.cols
    # Blocks the variant does not print are nulls; NaN stays NaN (a diverged run printed it).
    unprinted = {"mtp_loss", "aux_loss"} if cfg.variant == "smollm" else set()
    if cfg.variant == "model3b" or not cfg.baton:
        unprinted |= {"baton", "baton_lam"}
    step_df = pl.DataFrame(
        {"step": steps, "audit": seg.audit[keep], "deadband_active": seg.db[keep]}
        | {name: c[name][keep] for name in _STEP_COLS if name not in unprinted}
        | {"segment": np.full(steps.size, segment, dtype=np.int32)}
    )
    step_df = schema.conform(step_df, schema.STEPS)

    lrows = keep & (seg.steps % 10 == 0)
    ls = seg.steps[lrows]
    layer_df = pl.DataFrame(
        {"step": np.repeat(ls, nl), "layer": np.tile(np.arange(nl, dtype=np.int32), ls.size)}
        | {name: np.asarray(c[f"L_{name}"])[lrows].reshape(-1) for name in _LAYER_COLS}
    )
    layer_df = schema.conform(layer_df, schema.LAYERS)

    trows = keep & (seg.steps % 50 == 0)
    ts = seg.steps[trows]
    trace_df = pl.DataFrame(
        {
            "step": np.repeat(ts, nl),
            "layer": np.tile(np.arange(nl, dtype=np.int32), ts.size),
            "s_trace": [seg.trace(int(i), j) for i in np.flatnonzero(trows) for j in range(nl)],
        },
        schema=schema.TRACES,
    )

    qrows = keep & (seg.steps >= cfg.ponder_start)
    ce = c["delta_ce"][qrows]
    dh = c["delta_h"][qrows]
    aud = seg.audit[qrows]
    status = np.where(
        aud,
        np.where(ce > 0, "AUDIT-POS", "AUDIT-NEG"),
        np.where(ce > 0, "ECONOMIC WIN", "TAX ONLY"),
    )
    quality_df = pl.DataFrame(
        {
            "step": seg.steps[qrows],
            "delta_ce": ce,
            "delta_h": dh,
            "coupon": cfg.reward_eta * ce,
            "status": status.tolist(),
            "confidence": (~aud) & (ce > 0) & (dh < 0),
        }
    )
    quality_df = schema.conform(quality_df, schema.QUALITY)

    crows = keep & (seg.steps % 50 == 0)
    lr_df = pl.DataFrame(
        {
            "step": seg.steps[crows],
            "lr": c["lr"][crows],
            "phase": [lr_phase(cfg, int(s)) for s in seg.steps[crows]],
        }
    )
    lr_df = schema.conform(lr_df, schema.LR_CHECKS)
    return {
        "steps": step_df,
        "layers": layer_df,
        "traces": trace_df,
        "quality": quality_df,
        "lr_checks": lr_df,
    }


def _json_float(x: float) -> float:
    """Unrounded for the eye, but cut at 12 significant digits: vectorized exp/log may
    differ in the last bit between CPUs, and the committed files must not."""
    return float(f"{x:.12g}")


def _stats_json(cfg: SimConfig, seg: _Segment, i: int) -> dict[str, Any]:
    c = seg.cols
    f = _json_float
    out: dict[str, Any] = {"step": int(seg.steps[i]), "lm_loss": f(c["lm_loss"][i])}
    if cfg.variant == "model3b":
        out["mtp_loss"] = f(c["mtp_loss"][i])
        out["aux_loss"] = f(c["aux_loss"][i])
    out |= {
        "total_ponder": f(c["total_ponder"][i]),
        "delta_ce": f(c["delta_ce"][i]),
        "delta_h": f(c["delta_h"][i]),
        "deadband_active": bool(seg.db[i]),
        "deadband_steps_since_trigger": int(seg.db_since[i]),
    }
    layers = []
    for j in range(cfg.n_layers):

        def g(name: str, j: int = j) -> float:
            return f(float(np.asarray(c[f"L_{name}"])[i, j]))

        layer: dict[str, Any] = {
            "k": g("k"),
            "ent": g("ent"),
            "p_loss": g("p_loss"),
            "k_exec": int(c["L_k_exec"][i, j]),
            "s_final": g("s_final"),
            "s_trace": [f(float(v)) for v in seg.trace(i, j)],
            "p_mean": g("p_mean"),
            "p_std": g("p_std"),
            "d_rel": g("d_rel"),
            "ponder_signal": g("ponder_signal"),
            "avg_exec_token": g("avg_exec_token"),
            "p95_exec_token": g("p95_exec_token"),
            "frac_ge2": g("frac_ge2"),
            "frac_ge3": g("frac_ge3"),
            "frac_ge4": g("frac_ge4"),
            "h_diff": g("h_diff"),
            "p_diff": g("p_diff"),
            "p_near_clamp": g("p_near_clamp"),
        }
        if cfg.variant == "model3b":
            layer["wasted_compute"] = f(max(0.0, g("avg_exec_token") - g("k")))
        layers.append(layer)
    out["layers"] = layers
    return out


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def _initial_state(cfg: SimConfig, const: _Constants) -> _State:
    return _State(
        a1=const.a1_init.copy(),
        a2=const.a2_init.copy(),
        sig=np.full(cfg.n_layers, 0.3),
        pnr=np.zeros(cfg.n_layers),
        lam=cfg.lambda_min,
    )


def _segment(
    cfg: SimConfig,
    const: _Constants,
    start: int,
    end: int,
    state: _State,
    stream: int,
    keep_state_at: int | None = None,
) -> _Segment:
    """One process lifetime of the run, in the config's regime, with everything printed."""
    if cfg.regime == "real":
        seg = real_regime.run_segment(cfg, start, end, state, stream, keep_state_at)
        real_regime.observe(cfg, seg, stream)
    else:
        seg = _run_segment(cfg, const, start, end, state, stream, keep_state_at)
        _observe(cfg, const, seg, stream)
    return seg


def simulate(config: SimConfig) -> SimResult:
    """Simulate one run in memory: the log text, stats.json and the truth tables."""
    cfg = config
    const = _constants(cfg)
    state = _initial_state(cfg, const)
    resume = cfg.resume_step
    first_end = cfg.last_logged + 1
    seg0 = _segment(cfg, const, 0, first_end, state, stream=0, keep_state_at=resume)
    lines = [_init_line(cfg)]
    if cfg.regime == "real":  # that build announces its loop on every start
        lines.append(writer.format_start_line())
    body, gens = _render_segment(cfg, seg0, stream=0)
    lines += body
    segs: list[tuple[_Segment, np.ndarray, int]] = []
    meta: dict[str, Any] = {
        "variant": cfg.variant,
        "log_name": cfg.variant_info.log_name,
        "n_layers": cfg.n_layers,
        "kmax": cfg.kmax,
        "target_k": cfg.target_k,
        "params": _init_params(cfg),
        "restarts": 0,
    }
    if resume is None:
        segs.append((seg0, np.ones(seg0.steps.size, dtype=bool), 0))
        all_gens = gens
        engaged_at = [int(s) for s in seg0.steps[seg0.engaged]]
    else:
        assert seg0.checkpoint_state is not None
        seg1 = _segment(cfg, const, resume, cfg.steps, seg0.checkpoint_state, stream=1)
        if cfg.crash_at is not None and cfg.crash_traceback:
            lines += _traceback_lines(cfg)
        k = int(np.searchsorted(seg0.steps, resume))
        if cfg.regime == "real":
            lines += real_regime.resume_lines(cfg, resume, float(seg0.lam_after[k]))
        else:
            lines += _resume_lines(
                cfg, resume, float(seg0.lam_after[k]), float(seg0.cols["tot_loss"][k])
            )
        body1, gens1 = _render_segment(cfg, seg1, stream=1)
        lines += body1
        segs.append((seg0, seg0.steps < resume, 0))
        segs.append((seg1, np.ones(seg1.steps.size, dtype=bool), 1))
        all_gens = [g for g in gens if g["step"] < resume] + gens1
        engaged_at = [int(s) for s in seg0.steps[seg0.engaged & (seg0.steps < resume)]]
        engaged_at += [int(s) for s in seg1.steps[seg1.engaged]]
        meta |= {"restarts": 1, "crash_at": cfg.crash_at, "resume_step": resume}
        if cfg.pause_at is not None:
            meta["pause_at"] = cfg.pause_at
    meta["deadband_step"] = engaged_at[0] if engaged_at else None
    if cfg.pause_at is not None:
        meta["pause_at"] = cfg.pause_at

    parts = [_tables(cfg, seg, keep, sid) for seg, keep, sid in segs]
    tables = {name: pl.concat([p[name] for p in parts]) for name in parts[0]}
    last_seg = segs[-1][0]
    stats = _stats_json(cfg, last_seg, last_seg.steps.size - 1)

    text = "\n".join(lines) + "\n"
    if cfg.truncate_last_line:
        # The trainer is mid-print of the next step: keep a prefix of a plausible line.
        nxt = _step_line_like_next(cfg, last_seg)
        text += nxt[: max(12, len(nxt) * 3 // 5)]
    gen_df = (
        schema.conform(pl.from_dicts(all_gens), schema.GENERATIONS)
        if all_gens
        else schema.empty(schema.GENERATIONS)
    )
    return SimResult(
        config=cfg,
        log_name=cfg.variant_info.log_name,
        log_text=text,
        stats=stats,
        generations=gen_df,
        meta=meta,
        **tables,
    )


def _step_line_like_next(cfg: SimConfig, seg: _Segment) -> str:
    """The line the trainer was printing when the file was read: the last step's values
    moved on by one step (its exact numbers do not matter, it is never complete)."""
    i = seg.steps.size - 1
    row = {name: seg.cols[name][i] for name in seg.cols if name in schema.STEPS}
    row |= {
        "step": int(seg.steps[i]) + 1,
        "audit": False,
        "lambda_p": seg.lam_after[i],
        "deadband_active": bool(seg.db[i] or seg.engaged[i]),
    }
    return writer.format_step_line(_step_values(cfg, row))


def write_run(config: SimConfig, out_dir: str | Path, name: str | None = None) -> Path:
    """Simulate and write a run directory `out_dir/name` (name from `run_name` by default).

    The directory holds the trainer's log, `stats.json` (last step) and `config.json`
    (every `SimConfig` field, so `SimConfig.from_json` reproduces the run). Returns the
    run directory.
    """
    result = simulate(config)
    run_dir = Path(out_dir) / (name if name is not None else run_name(config))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / result.log_name).write_bytes(result.log_bytes)
    (run_dir / "stats.json").write_bytes(json.dumps(result.stats, indent=2).encode("utf-8"))
    (run_dir / "config.json").write_bytes(
        (json.dumps(config.to_json(), indent=2) + "\n").encode("utf-8")
    )
    return run_dir


SAMPLE_BASELINE = SimConfig(steps=3000, n_layers=4, lr_total_steps=3000)


def _sample_sweep() -> list[tuple[SimConfig, str]]:
    b = SAMPLE_BASELINE
    return [
        (
            b,
            "Healthy: λ_p climbs to about 3e-2, the deadband engages, avg_k settles on "
            "TARGET_K=1.30, traces like [1.00, 0.24, 0.03, 0.00], ΔCE mostly positive.",
        ),
        (replace(b, seed=1), "The baseline again with another seed (group the two)."),
        (
            replace(b, seed=2, crash_at=2377),
            "The baseline with a third seed that crashed "
            "(CUDA OOM traceback) after step 2377 and resumed from the step-2250 checkpoint: "
            "steps 2250-2377 appear twice, the later ones count.",
        ),
        (
            replace(b, lambda_max=0.0005),
            "λ_p too low: pinned at its ceiling, the gates never "
            "stop ([1.00, 0.95, 0.89, 0.83]), avg_k about 3.7. The deadband still engages "
            "because λ_p sits above the middle of its range: [DB] alone proves nothing.",
        ),
        (
            replace(b, lambda_min=0.05),
            "Over-penalized: a price floor of 5e-2 drives the gates "
            "to the clamp and they stay there (absorbing state): [1.00, 0.02, 0.00, 0.00], "
            "P_NR above 20%, avg_k about 1.03, many [TAX ONLY]; no deadband.",
        ),
        (
            replace(b, gate="stuck"),
            "Gate stuck at 0.5: it never learns when to stop "
            "([1.00, 0.50, 0.50, 0.50], p_std near 0), ignores the price, λ_p hits its ceiling.",
        ),
        (
            replace(b, halt_thr=0.1),
            "Halting threshold too low: hard execution runs past the "
            "soft survival, AVGS gap above 1 while k looks on target.",
        ),
        (
            replace(b, variant="smollm", kmax=6),
            "The other trainer (log_fourier_adaptive.txt: "
            "no MTP/AUX, BATON block) with six passes per layer; healthy.",
        ),
    ]


def _sample_entries() -> list[tuple[str, SimConfig, str]]:
    textbook = [(run_name(c, SAMPLE_BASELINE), c, note) for c, note in _sample_sweep()]
    real = [(real_regime.sample_name(c), c, note) for c, note in real_regime.sample_sweep()]
    return textbook + real


def sample_configs() -> dict[str, SimConfig]:
    """The committed sweep: a healthy baseline (three seeds, one of which crashed and was
    resumed), the three classic gate failures, a halting threshold set too low, the
    other trainer, and runs of the realistic regime. Textbook names say what differs from
    `SAMPLE_BASELINE`, realistic ones from `real.sample_base()`."""
    return {name: c for name, c, _ in _sample_entries()}


def _sample_readme() -> str:
    rows = "\n".join(f"| `{name}` | {note} |" for name, _, note in _sample_entries())
    return (
        "# Sample runs\n\n"
        "A small simulated sweep, so the app has something to show before anything is\n"
        "uploaded. `python -m ponder_parse.sim sample_runs` rewrites these files byte for\n"
        "byte. Each folder holds the trainer's log, the last step's `stats.json` and a\n"
        "`config.json` with every setting; the folder name lists what differs from the\n"
        "baseline (4 layers, 3 000 steps, LR schedule over 3 000 steps, trainer defaults\n"
        "otherwise: TARGET_K=1.30, λ_p in [1e-4, 5e-2], force warmup to step 800, economic\n"
        "control from step 1200). The `regime=real` runs look instead like what the\n"
        "trainer really prints (8 layers, 3 700 steps unless named, halting threshold\n"
        "0.10, LR schedule over 10 000 steps, TARGET_K as named).\n\n"
        "| run | what it shows |\n|---|---|\n" + rows + "\n"
    )


def write_sample_sweep(out_dir: str | Path) -> list[Path]:
    """Write every sample run (and a README describing them) under `out_dir`; returns the
    run directories in order."""
    out = Path(out_dir)
    paths = [write_run(cfg, out, name) for name, cfg in sample_configs().items()]
    (out / "README.md").write_bytes(_sample_readme().encode("utf-8"))
    return paths


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ponder_parse.sim",
        description="Regenerate the sample sweep (byte-identical on rerun).",
    )
    parser.add_argument("out_dir", type=Path, help="directory to write the sample runs into")
    args = parser.parse_args(list(argv) if argv is not None else None)
    for path in write_sample_sweep(args.out_dir):
        size = sum(p.stat().st_size for p in path.iterdir())
        print(f"{path.name:40s} {size / 1e6:6.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
