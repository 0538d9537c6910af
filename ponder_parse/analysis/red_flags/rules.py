"""The rules: the guide's symptom table plus a researcher's extras, each written once.

A rule is its metadata, its settings (a frozen dataclass whose defaults are the guide's
numbers), its check and the metrics that show its evidence, registered with
`@RULES.rule(...)`; the engine runs whatever is registered, so adding a rule touches
this module only. Registration order is the order the UI lists them.

Each rule looks only where it is meaningful (trace-shape and controller rules only in the
economic phase, the gap rule only once layers are no longer forced to 2 passes, the LM
rule only after step 500), and threshold rules fire on *sustained* trouble, never on one
spike. `value` says what each finding's headline number is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import polars as pl

from ponder_parse import schema
from ponder_parse.analysis import catalog
from ponder_parse.analysis.patterns import DEFAULT as DEFAULT_PATTERNS
from ponder_parse.analysis.patterns import (
    NOT_STOPPING,
    OVER_PENALIZED,
    STUCK_HALF,
    PatternThresholds,
)
from ponder_parse.analysis.red_flags.engine import (
    CRITICAL,
    INFO,
    WARNING,
    Above,
    Finding,
    Level,
    Measure,
    Outlier,
    RefLine,
    Registry,
    Scope,
    Sustain,
    as_float,
    episodes_text,
    level_findings,
    step_span,
    sustained,
    sustained_by,
    threshold_findings,
)
from ponder_parse.parse import meta as run_meta
from ponder_parse.run import Run

RULES = Registry()


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class NoSettings:
    """For rules that report what the log states, with nothing to tune."""


@dataclass(frozen=True)
class NonfiniteSettings:
    columns: tuple[str, ...] = ("tot_loss", "lm_loss", "mtp_loss", "grad_norm")
    """Step-line columns where NaN / inf means the run diverged."""


@dataclass(frozen=True)
class DeltaCeSettings:
    sustain: Sustain = Sustain(window=100, share=0.9, min_rows=20)
    """ΔCE < 0 on ≥ 90% of 100 consecutive quality lines counts as "always negative"."""


@dataclass(frozen=True)
class LmSettings:
    check_from: int = 500
    window: int = 200
    """Logged steps in each median window compared."""
    min_rel_drop: float = 0.02
    """The last window's median LM must be at least 2% below the first window's."""
    min_span: int = 500
    """Steps between the windows' starts before the rule judges at all."""


@dataclass(frozen=True)
class GradSettings(Level):
    """GRAD is the norm *before* clipping (what `clip_grad_norm_` returns): a median of 2.5
    is normal for real model3b runs (1.6 at D=768), so no fixed 2.0 can tell instability
    from a normal run; the level is the run's own."""

    clip: float = 1.0
    """The trainer's clipping norm: GRAD above it means that update was clipped."""


@dataclass(frozen=True)
class GapSettings:
    """When the passes that run carry too little soft survival (see `gap_high`)."""

    min_survival: float = 0.05
    """Mean survival per token running a pass below this: those tokens should have stopped.
    A hard stop at halting threshold h keeps it at or above h (real runs, h = 0.10: at
    least 0.09), so half the trainer's default threshold is a hard stop past the soft
    survival, or a threshold set too low."""
    min_share: float = 0.01
    """Passes run by fewer tokens than this share are not judged (a token or two)."""
    sustain: Sustain = Sustain(window=6, share=0.8, min_rows=3)
    """Per layer, over its trace checkpoints (every 50 steps: 6 ≈ 300 steps)."""


@dataclass(frozen=True)
class DepthFit:
    """When the passes run explain the time a step takes."""

    min_r2: float = 0.6
    """Time per token must follow AVGS exec this closely (R² of a straight-line fit)."""
    min_exec_span: float = 0.5
    """And AVGS exec must vary by at least this many passes (5th to 95th percentile)."""


@dataclass(frozen=True)
class ThroughputSettings:
    low_frac: float = 0.5
    """tok/sec below half the run's own median counts as "very low"; hardware differs, so
    no absolute number would be right, and a run that is slow throughout is not flagged."""
    sustain: Sustain = Sustain(window=20, share=0.5)
    depth: DepthFit = DepthFit()


@dataclass(frozen=True)
class UniformSettings:
    max_p_std: float = 0.02
    """p_std below this: the gate gives (nearly) every token the same halting probability
    (real runs: below 0.02 on 87–89% of economic layer lines, never above 0.026)."""
    tol: float = 0.005
    """tok avg, p95 and k_exec count as equal within this (they print with 2 decimals)."""
    min_share: float = 0.75
    """Share of the judged layer lines that must show it (real runs: 87–96%)."""
    min_lines: int = 20
    """Judged layer lines needed before the rule judges at all."""


@dataclass(frozen=True)
class FrozenSettings:
    center: float = 0.5
    """The halting probability of a gate that has not learnt anything (logits at 0)."""
    tol: float = DEFAULT_PATTERNS.frozen_p_tol
    """p_mu within this of `center` (it prints with 2 decimals); the trace classifier's
    frozen-gate bound, so a trace called frozen and this flag agree."""
    max_p_std: float = DEFAULT_PATTERNS.frozen_max_p_std
    """And p_std at most this: no token is treated differently (the classifier's bound)."""
    sustain: Sustain = Sustain(window=10, share=0.8, min_rows=5)
    """Per layer, over its layer lines (every 10 steps: 10 lines ≈ 100 steps)."""


@dataclass(frozen=True)
class FlatSettings:
    min_lines: int = catalog.FLAT_MIN_LINES
    """Lines a metric must be printed on before "0 on every line" means anything."""


@dataclass(frozen=True)
class LmOutlier(Outlier):
    min_rel_diff: float = 0.02
    min_length_share: float = 0.9
    window: int = 100
    """Logged steps at the end of the run averaged: one batch's LM jitters (±0.3 in
    real model3b runs), so a single last value would rank runs by noise."""


@dataclass(frozen=True)
class KOutlier(Outlier):
    min_rel_diff: float = 0.10
    same: tuple[str, ...] = ("variant", "params", "target_k")
    """Runs aiming at another TARGET_K differ in depth by design: they are no peers."""


@dataclass(frozen=True)
class RateOutlier(Outlier):
    min_rel_diff: float = 0.10


@dataclass(frozen=True)
class ThroughputOutlier(Outlier):
    min_rel_diff: float = 0.20


@dataclass(frozen=True)
class LambdaSettings:
    lambda_min: float | None = None
    lambda_max: float | None = None
    """λ_p clamp; None → the run's hparams (`lambda_min`/`lambda_max`), else the trainer
    defaults and the run's observed extremes (see `push_rel`)."""
    rel_tol: float = 0.01
    push_rel: float = 0.08
    """An observed (not configured) clamp counts only where |CTRL_ERR| exceeds this share
    of TARGET_K in the direction that would move λ_p past it: beyond the trainer's default
    deadband (−2% / +5% of TARGET_K), so a price that settled in the deadband is not a clamp."""
    sustain: Sustain = Sustain(window=200, share=0.95, min_rows=50)
    grace_steps: int = 500
    """Steps of the economic phase skipped: λ_p starts at its floor and needs time to rise."""


@dataclass(frozen=True)
class TraceSettings:
    min_consecutive: int = 3
    """A layer must show the shape at this many consecutive trace checkpoints (every 50
    steps by default, so 3 ≈ 150 steps). Critical if still present at the layer's last
    checkpoint, warning if it recovered."""
    grace_steps: int = 500
    """Steps of the economic phase skipped: λ_p starts at its floor and needs time to
    rise, so a gate that still runs every pass just after the ponder start is the guide's
    "or wait", not a finding."""
    patterns: PatternThresholds = DEFAULT_PATTERNS


@dataclass(frozen=True)
class DeadbandSettings:
    expect_within: int = 1000
    """Economic steps after which a missing deadband is worth an info note."""


# ---------------------------------------------------------------- lines on charts


def _finite_median(run: Run, column: str) -> float | None:
    """Median of a step-line column's finite values (None when it has none)."""
    steps = run.table("steps", [column])
    if column not in steps.columns:
        return None
    v = steps.filter(pl.col(column).is_finite().fill_null(False))[column]
    return as_float(v.median()) if v.len() else None


def _level_lines(metric: str, label: str) -> tuple[Any, Any]:
    """The lines of a `Level` rule on `metric`: its absolute level for every run, and
    `rel` × each run's median (the running level the rule compares with, taken over the
    whole run) in the run's colour."""

    def lines(s: Level) -> list[RefLine]:
        if s.abs_level is None:
            return []
        return [RefLine(metric, s.abs_level, f"red flag: {label} > {s.abs_level:g} sustained")]

    def run_lines(s: Level, run: Run) -> list[RefLine]:
        med = _finite_median(run, metric.split(".", 1)[1])
        if med is None or med <= 0:
            return []
        # two significant digits: the rule compares with a running median, so the line is
        # a guide, and runs at one level share one line (and one label)
        level = float(f"{s.rel * med:.2g}")
        return [RefLine(metric, level, f"red flag: ≈ {s.rel:g}× its median {label}")]

    return lines, run_lines


_GRAD_LINES, _GRAD_RUN_LINES = _level_lines("steps.grad_norm", "GRAD")
_AUX_LINES, _AUX_RUN_LINES = _level_lines("steps.aux_loss", "AUX")


def _grad_lines(s: GradSettings) -> list[RefLine]:
    clip = RefLine(
        "steps.grad_norm", s.clip, f"clip norm {s.clip:g}: above, the update was clipped"
    )
    return [clip, *_GRAD_LINES(s)]


# ---------------------------------------------------------------- the guide's table


@RULES.rule(
    name="grad_sustained",
    title="GRAD far above its running level, sustained",
    severity=CRITICAL,
    scope="all steps",
    value="highest GRAD in the flagged steps",
    action="Exploding gradients: the pre-clip norm left the run's normal level. Check the LR "
    "schedule (reduce it if needed) and what changed at the first flagged step.",
    settings=GradSettings(rel=4.0, abs_level=20.0),
    metrics=("steps.grad_norm",),
    lines=_grad_lines,
    run_lines=_GRAD_RUN_LINES,
)
def grad_sustained(scope: Scope, s: GradSettings) -> list[Finding]:
    """Relative to the run's own running level (4× by default; real runs' p95 is 1.2–3×
    their median and their largest spikes are single steps), or above 20 sustained."""
    steps = scope.steps
    _, found = level_findings(steps, "grad_norm", s, "GRAD", ".2f")
    if not found:
        return []
    g = steps.filter(pl.col("grad_norm").is_finite().fill_null(False))["grad_norm"]
    clipped = as_float((g > s.clip).mean())
    note = f"; {clipped:.0%} of all updates clipped (GRAD > {s.clip:g}: GRAD is printed before clipping)"
    return [dataclasses.replace(found[0], evidence=found[0].evidence + note)]


def _trace_shape(scope: Scope, s: TraceSettings, pattern: str) -> list[Finding]:
    """A layer shows the shape at N consecutive checkpoints."""
    t = scope.judged_traces(s.grace_steps, s.patterns)
    if t.is_empty():
        return []
    hit = pl.col("pattern") == pattern
    if (t["pattern"] == pattern).sum() < max(s.min_consecutive, 1):
        return []  # too few checkpoints show it for any streak: skip the streak passes
    streaks = (
        t.with_columns(_hit=hit, _grp=(~hit).cum_sum().over("layer"))
        .filter(pl.col("_hit"))
        .with_columns(_len=pl.len().over("layer", "_grp"))
        .filter(pl.col("_len") >= s.min_consecutive)
    )
    if streaks.is_empty():
        return []
    share = as_float((t["pattern"] == pattern).mean())
    layers = sorted(set(streaks["layer"].to_list()))
    ongoing = bool(streaks["_is_last"].any())
    example = streaks.sort("step").row(0, named=True)["s_trace"]
    ex = "[" + ", ".join(f"{v:.2f}" for v in example) + "]"
    first, last = step_span(streaks)
    evidence = (
        f"{'layers' if len(layers) > 1 else 'layer'} {', '.join(map(str, layers))} "
        f"{'show' if len(layers) > 1 else 'shows'} it at "
        f"≥ {s.min_consecutive} consecutive checkpoints, steps "
        f"{first}–{last} (e.g. {ex}); "
        f"{share:.0%} of judged economic-phase traces; "
        + ("still present at the last checkpoint" if ongoing else "recovered later")
    )
    return [
        Finding(
            evidence,
            share,
            first,
            last,
            streaks["step"].n_unique(),
            severity=CRITICAL if ongoing else WARNING,
        )
    ]


@RULES.rule(
    name="gate_not_stopping",
    title="s_trace: gate collapsed to always continue",
    severity=CRITICAL,
    scope="economic phase after a grace period, per layer",
    value="share of judged economic-phase traces with this shape",
    action="λ_p too low: increase LAMBDA_MIN, or wait for λ_p to rise.",
    settings=TraceSettings(),
    metrics=("steps.avg_k", "steps.lambda_p"),
)
def gate_not_stopping(scope: Scope, s: TraceSettings) -> list[Finding]:
    return _trace_shape(scope, s, NOT_STOPPING)


@RULES.rule(
    name="p_near_clamp_high",
    title="P_NR > 20% sustained",
    severity=CRITICAL,
    scope="economic phase",
    value="highest P_NR (fraction) in the flagged steps",
    action="Gate collapsing to always stop (absorbing state): model overtaxed; lower LAMBDA_MAX.",
    settings=Above(0.20),
    metrics=("steps.p_near_clamp", "steps.lambda_p"),
    lines=lambda s: [RefLine("steps.p_near_clamp", s.threshold, f"red flag: > {s.threshold:.0%}")],
)
def p_near_clamp_high(scope: Scope, s: Above) -> list[Finding]:
    return threshold_findings(scope.economic, "p_near_clamp", s, "P_NR", ".1%")


@RULES.rule(
    name="delta_ce_negative",
    title="ΔCE (nearly) always negative",
    severity=WARNING,
    scope="quality lines of the economic phase",
    value="share of quality lines with ΔCE < 0 in the economic phase",
    action="Recurrence is hurting: REWARD_ETA too low, or recurrence not learned yet.",
    settings=DeltaCeSettings(),
    metrics=("quality.delta_ce",),
)
def delta_ce_negative(scope: Scope, s: DeltaCeSettings) -> list[Finding]:
    if scope.economic_span is None:
        return []
    q = scope.economic_quality.filter(pl.col("delta_ce").is_finite().fill_null(False)).sort("step")
    if q.is_empty():
        return []
    flagged = sustained(q, pl.col("delta_ce") < 0, s.sustain)
    if flagged.is_empty():
        return []
    share = as_float((q["delta_ce"] < 0).mean())
    evidence = (
        f"ΔCE < 0 on ≥ {s.sustain.share:.0%} of quality lines over "
        f"{episodes_text(flagged)}; {share:.0%} negative over the whole economic phase"
    )
    return [Finding.over(flagged, evidence, share)]


@RULES.rule(
    name="aux_high",
    title="AUX far above its running level, sustained",
    severity=WARNING,
    scope="all steps",
    value="highest AUX in the flagged steps",
    action="MoE router unbalanced (one expert dominating): check num_real_experts / the aux "
    "loss weight. Compared against the run's own running level and an absolute ceiling "
    "(3× and 1.0 by default): real model3b runs sit at 0.3–0.8; the guide's 0.1 is for "
    "another MoE set-up.",
    settings=Level(rel=3.0, abs_level=1.0),
    metrics=("steps.aux_loss",),
    lines=_AUX_LINES,
    run_lines=_AUX_RUN_LINES,
)
def aux_high(scope: Scope, s: Level) -> list[Finding]:
    """Real runs step from 0.40 in the warmup to 0.79 when gating starts (under 2×)."""
    return level_findings(scope.steps, "aux_loss", s, "AUX", ".4f")[1]


@RULES.rule(
    name="gap_high",
    title="Passes run past the soft survival (exec − k mismatch)",
    severity=WARNING,
    scope="trace checkpoints after the force warmup, audit steps left out, per layer",
    value="lowest mean survival per token running a pass, in the flagged checkpoints",
    action="Hard vs soft execution mismatch: tokens keep running passes after their survival "
    "has decayed (halt_thr too low, or the hard stop not tracking the soft survival). A large "
    "AVGS gap alone is not this: with halt_thr 0.10 every pass that runs carries at least 10% "
    "survival and real runs show gaps of 0.7–2 passes.",
    settings=GapSettings(),
    metrics=("steps.avg_gap", "steps.avg_exec"),
)
def gap_high(scope: Scope, s: GapSettings) -> list[Finding]:
    """exec − k adds up (1 − s) over the passes that ran, so it is large whenever a pass
    runs at moderate survival, which a halting threshold of 0.10 allows by design. What
    the guide warns about is tokens running a pass their survival says they should have
    stopped before: the mean survival entering pass j divided by the share of tokens that
    ran it (`s_j / tail ≥j`) bounds from above the mean survival of those tokens, and a
    hard stop at threshold h keeps it at or above h."""
    found = _pass_survival(scope, s)
    if found is None:
        return []
    lines, flagged = found
    parts, ongoing = [], False
    for layer, hit in sustained_by(flagged, pl.col("_low"), s.sustain):
        parts.append(hit)
        ongoing = ongoing or bool(hit["step"].max() == layer["step"].max())
    if not parts:
        return []
    hit = pl.concat(parts)
    worst = hit.sort("_worst").row(0, named=True)
    first, last = step_span(hit)
    gap = scope.steps.filter(pl.col("step").is_between(first, last))["avg_gap"].drop_nulls()
    gap_text = f"; AVGS gap median {as_float(gap.median()):.2f} there" if gap.len() else ""
    share = hit.height / lines
    evidence = (
        f"the tokens running a pass carried a mean survival below {s.min_survival:g} on "
        f"{hit.height} trace checkpoints of {_layer_spans(hit)}, steps {first}–{last} "
        f"(worst: pass {worst['_pass']} at step {worst['step']}, survival "
        f"{worst['_s']:.2f} entering it with {worst['_frac']:.0%} of tokens running it); "
        f"{share:.0%} of the judged checkpoints{gap_text}; "
        + ("still so at the last checkpoint" if ongoing else "recovered later")
    )
    return [Finding(evidence, as_float(worst["_worst"]), first, last, hit["step"].n_unique())]


def _pass_survival(scope: Scope, s: GapSettings) -> tuple[int, pl.DataFrame] | None:
    """Trace checkpoints after the force warmup (audits out) joined to their layer lines,
    with `_worst` (the lowest `s_j / tail ≥j` over the passes j ≥ 2 that ran), the pass
    and values it was found at, and `_low` (`_worst` below `min_survival`); and how many
    checkpoints were judged."""
    run = scope.run
    tails = sorted(
        int(c[7:]) for c in run.layers.columns if c.startswith("frac_ge") and c[7:].isdigit()
    )
    if not tails or run.traces.is_empty():
        return None
    judged = scope.phased_traces.filter(pl.col("phase").is_in(["gate_learning", "economic"]))
    cols = ["step", "layer", *(f"frac_ge{j}" for j in tails)]
    d = judged.join(run.layers.select(cols), on=["step", "layer"], how="inner")
    if d.is_empty():
        return None
    ratio: dict[int, pl.Expr] = {}
    for j in tails:
        sj = pl.col("s_trace").list.get(j - 1, null_on_oob=True)
        frac = pl.col(f"frac_ge{j}")
        ran = frac.is_finite().fill_null(False) & (frac >= s.min_share) & sj.is_not_null()
        ratio[j] = pl.when(ran).then(sj / frac)
    d = d.with_columns(**{f"_r{j}": r for j, r in ratio.items()}).with_columns(
        _worst=pl.min_horizontal(*(pl.col(f"_r{j}") for j in tails))
    )
    d = d.filter(pl.col("_worst").is_not_null())
    worst_pass = pl.lit(None, dtype=pl.Int32)
    for j in reversed(tails):
        worst_pass = (
            pl.when(pl.col(f"_r{j}") == pl.col("_worst")).then(pl.lit(j)).otherwise(worst_pass)
        )
    d = (
        d.with_columns(_pass=worst_pass)
        .with_columns(
            _s=pl.col("s_trace").list.get(pl.col("_pass") - 1, null_on_oob=True),
            _frac=pl.coalesce(
                *(pl.when(pl.col("_pass") == j).then(pl.col(f"frac_ge{j}")) for j in tails)
            ),
            _low=pl.col("_worst") < s.min_survival,
        )
        .sort("layer", "step")
    )
    return (d.height, d) if d.height else None


@RULES.rule(
    name="lm_not_decreasing",
    title="LM not decreasing after step 500",
    severity=WARNING,
    scope="steps from 500 (and the economic phase on its own)",
    value="relative change of median LM, last window vs first window",
    action="Learning rate too low or data issue: check the LR CHECK output and dataset loading.",
    settings=LmSettings(),
    metrics=("steps.lm_loss", "steps.lr"),
)
def lm_not_decreasing(scope: Scope, s: LmSettings) -> list[Finding]:
    d = scope.steps.filter(
        (pl.col("step") >= s.check_from) & pl.col("lm_loss").is_finite().fill_null(False)
    )
    n = d.height
    if n < 4:
        return []
    w = min(s.window, n // 2)
    first, last = d.head(w), d.tail(w)
    if int(last["step"][0]) - int(first["step"][0]) < s.min_span:
        return []
    m0 = as_float(first["lm_loss"].median())
    m1 = as_float(last["lm_loss"].median())
    if m0 <= 0 or m1 < m0 * (1.0 - s.min_rel_drop):
        return []
    # LM rises for a while when the gate takes over (real runs: 5.7 → 6.4 through gate
    # learning): a run whose LM falls through the economic phase is learning.
    econ = d.filter(pl.col("step") >= scope.economic_span[0]) if scope.economic_span else d.clear()
    since = ""
    if econ.height >= 2 * w and int(last["step"][0]) - int(econ["step"][0]) >= s.min_span:
        e0 = as_float(econ.head(w)["lm_loss"].median())
        if e0 > 0 and m1 < e0 * (1.0 - s.min_rel_drop):
            return []
        since = f", nor below the {e0:.4f} the economic phase started at ({m1 / e0 - 1.0:+.1%})"
    change = m1 / m0 - 1.0
    evidence = (
        f"median LM {m0:.4f} over steps {first['step'][0]}–{first['step'][-1]} vs "
        f"{m1:.4f} over steps {last['step'][0]}–{last['step'][-1]} ({change:+.1%}{since}; "
        f"needs ≤ −{s.min_rel_drop:.0%})"
    )
    return [Finding(evidence, change, int(first["step"][0]), int(last["step"][-1]), n)]


@dataclass(frozen=True)
class DepthModel:
    """Seconds per token as a straight line in the passes run: `a + b × AVGS exec`."""

    a: float
    b: float
    r2: float

    def expected_tps(self) -> pl.Expr:
        """The tok/sec a step's depth alone predicts."""
        return 1.0 / (self.a + self.b * pl.col("avg_exec"))


def _depth_model(steps: pl.DataFrame, fit: DepthFit) -> DepthModel | None:
    """The fit, when time per token follows the passes run (more passes, slower steps)
    closely enough over a wide enough range of depths; None otherwise."""
    if "avg_exec" not in steps.columns:
        return None
    tps, ex = pl.col("tok_per_sec"), pl.col("avg_exec")
    d = steps.filter(tps.is_finite().fill_null(False) & (tps > 0) & ex.is_finite().fill_null(False))
    if d.height < 20:
        return None
    spt = 1.0 / tps
    row = d.select(
        lo=ex.quantile(0.05),
        hi=ex.quantile(0.95),
        cov=pl.cov(ex, spt),
        var=ex.var(),
        r=pl.corr(ex, spt),
        m_ex=ex.mean(),
        m_spt=spt.mean(),
    ).row(0, named=True)
    if None in row.values() or row["hi"] - row["lo"] < fit.min_exec_span or not row["var"]:
        return None
    b = row["cov"] / row["var"]
    r2 = row["r"] ** 2
    if b <= 0 or r2 < fit.min_r2:
        return None
    return DepthModel(row["m_spt"] - b * row["m_ex"], b, r2)


def _slow(steps: pl.DataFrame, s: ThroughputSettings) -> tuple[float, pl.Expr] | None:
    """The run's median tok/sec and the condition "below `low_frac` of it"."""
    tps = steps.filter(pl.col("tok_per_sec").is_finite().fill_null(False))["tok_per_sec"]
    tps = tps.filter(tps > 0)
    if tps.len() < s.sustain.min_rows:
        return None
    med = as_float(tps.median())
    c = pl.col("tok_per_sec")
    return med, c.is_finite().fill_null(False) & (c < s.low_frac * med)


def _throughput_lines(s: ThroughputSettings, run: Run) -> list[RefLine]:
    med = _finite_median(run, "tok_per_sec")
    if med is None or med <= 0:
        return []
    label = f"red flag: < {s.low_frac:.0%} of its median tok/sec"
    return [RefLine("steps.tok_per_sec", s.low_frac * med, label)]


@RULES.rule(
    name="throughput_low",
    title="tok/sec very low (vs this run's median)",
    severity=WARNING,
    scope="all steps",
    value="median tok/sec of the flagged steps divided by the run's median",
    action="Memory pressure causing swaps: reduce seq_len or batch_size.",
    settings=ThroughputSettings(),
    metrics=("steps.tok_per_sec", "steps.dt_ms"),
    run_lines=lambda s, run: _throughput_lines(s, run),
)
def throughput_low(scope: Scope, s: ThroughputSettings) -> list[Finding]:
    """Where the passes run explain the time per token (`throughput_depth`), a step is
    only slow if it is also slow for its depth: deeper steps are not memory pressure."""
    steps = scope.steps
    if steps.is_empty():
        return []
    slow = _slow(steps, s)
    if slow is None:
        return []
    med, cond = slow
    model = _depth_model(steps, s.depth)
    if model is not None:
        cond = cond & (pl.col("tok_per_sec") < s.low_frac * model.expected_tps()).fill_null(False)
    flagged = sustained(steps, cond, s.sustain)
    if flagged.is_empty():
        return []
    ratio = as_float(flagged["tok_per_sec"].median()) / med
    beyond = " and slower than its depth (AVGS exec) explains" if model is not None else ""
    evidence = (
        f"tok/sec below {s.low_frac:.0%} of the run's median ({med:.1f}){beyond} on "
        f"{flagged.height} logged steps ({episodes_text(flagged)}); "
        f"median there {ratio:.0%} of normal"
    )
    return [Finding.over(flagged, evidence, ratio)]


@RULES.rule(
    name="throughput_depth",
    title="tok/sec falls when passes rise (compute, not memory)",
    severity=INFO,
    scope="all steps",
    value="R² of time per token against the passes run (AVGS exec)",
    action="The slowdown is the ponder loop's compute: every extra pass costs a forward "
    "pass. Nothing to fix in memory; fewer passes (λ_p, TARGET_K) is what buys speed.",
    settings=ThroughputSettings(),
    metrics=("steps.tok_per_sec", "steps.avg_exec"),
    from_guide=False,
)
def throughput_depth(scope: Scope, s: ThroughputSettings) -> list[Finding]:
    """A sustained throughput drop (as `throughput_low` defines it) that the run's depth
    explains: tok/sec at or above `low_frac` of what its AVGS exec predicts."""
    steps = scope.steps
    slow = _slow(steps, s) if steps.height else None
    model = _depth_model(steps, s.depth) if slow is not None else None
    if slow is None or model is None:
        return []
    med, cond = slow
    explained = cond & (pl.col("tok_per_sec") >= s.low_frac * model.expected_tps()).fill_null(False)
    flagged = sustained(steps, explained, s.sustain)
    if flagged.is_empty():
        return []
    ex = pl.col("avg_exec")
    there = as_float(flagged.select(ex.median()).item())
    normal = as_float(steps.filter(~cond.fill_null(False)).select(ex.median()).item() or 0.0)
    per_pass = model.b * med
    evidence = (
        f"tok/sec below {s.low_frac:.0%} of the run's median ({med:.1f}) on {flagged.height} "
        f"logged steps ({episodes_text(flagged)}), where AVGS exec is {there:.2f} passes "
        f"(elsewhere {normal:.2f}); time per token follows the passes run (R² {model.r2:.2f}, "
        f"+{per_pass:.0%} of a median step's time per extra pass): the compute is the cause, "
        "not memory"
    )
    return [Finding.over(flagged, evidence, model.r2)]


# ---------------------------------------------------------------- beyond the guide


@RULES.rule(
    name="nonfinite",
    title="NaN / inf in losses or GRAD",
    severity=CRITICAL,
    scope="all steps",
    value="number of steps with a non-finite value",
    action="The run diverged: restart from the last good checkpoint with a lower LR "
    "or tighter clipping.",
    settings=NonfiniteSettings(),
    metrics=("steps.lm_loss", "steps.tot_loss"),
    from_guide=False,
)
def nonfinite(scope: Scope, s: NonfiniteSettings) -> list[Finding]:
    steps = scope.steps
    cols = [c for c in s.columns if c in steps.columns]
    if steps.is_empty() or not cols:
        return []
    bad = {c: pl.col(c).is_not_null() & ~pl.col(c).is_finite() for c in cols}
    rows = steps.with_columns(_bad=pl.any_horizontal(list(bad.values()))).filter(pl.col("_bad"))
    if rows.is_empty():
        return []
    which = [c for c in cols if rows.select(bad[c].any()).item()]
    labels = ", ".join(catalog.metric(c).label for c in which)
    first, last = step_span(rows)
    evidence = f"non-finite {labels} on {rows.height} steps, first at step {first}"
    return [Finding(evidence, rows.height, first, last, rows.height)]


def _target_k(run: Run) -> float | None:
    """TARGET_K as the run's meta states it; a run built without the parser (no meta)
    gets it the way the parser derives it."""
    value = run.meta.get("target_k")
    if value is None:
        derived = run_meta.target_k(run.events, run.steps)
        value = derived[0] if derived else None
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _lambda_candidates(
    run: Run, econ: pl.DataFrame, s: LambdaSettings
) -> list[tuple[str, float, str]]:
    """(side, bound, source) pairs to test; source is rules / config / default / observed.

    Without an explicit bound, the trainer default is tested unless λ_p went beyond it
    (then the clamp was evidently configured otherwise), and the observed extreme is
    tested too when it differs from the default, since a sweep may have narrowed the
    clamp. An observed bound only counts when CTRL_ERR shows the controller pushing past
    it, which tells a clamp from a price that simply settled there.
    """
    hp = {str(k).lower(): v for k, v in (run.hparams or {}).items()}
    lam = econ.filter(pl.col("lambda_p").is_finite().fill_null(False))["lambda_p"]
    tol = s.rel_tol
    out: list[tuple[str, float, str]] = []
    for side, given, key, default in (
        ("min", s.lambda_min, "lambda_min", catalog.LAMBDA_MIN_DEFAULT),
        ("max", s.lambda_max, "lambda_max", catalog.LAMBDA_MAX_DEFAULT),
    ):
        if given is not None:
            out.append((side, float(given), "rules"))
            continue
        try:
            configured = float(hp[key]) if hp.get(key) is not None else None
        except (TypeError, ValueError):
            configured = None
        if configured is not None:
            out.append((side, configured, "config"))
            continue
        if not lam.len():
            continue
        observed = as_float(lam.min() if side == "min" else lam.max())
        beyond = observed < default * (1 - tol) if side == "min" else observed > default * (1 + tol)
        if not beyond:
            out.append((side, default, "default"))
        if observed > 0 and abs(observed - default) > tol * default:
            out.append((side, observed, "observed"))
    return out


def _merge_equal_clamps(
    candidates: list[tuple[str, float, str]], s: LambdaSettings
) -> list[tuple[str, float, str]]:
    """A min and a max bound that are the same price (a sweep that fixed λ_p) are one
    clamp, reported once."""
    out: list[tuple[str, float, str]] = []
    for side, bound, source in candidates:
        same = next(
            (
                i
                for i, (sd, b, src) in enumerate(out)
                if sd in ("min", "max")
                and sd != side
                and "observed" not in (src, source)
                and abs(b - bound) <= s.rel_tol * max(abs(b), abs(bound))
            ),
            None,
        )
        if same is None:
            out.append((side, bound, source))
        else:
            out[same] = ("min = max", out[same][1], out[same][2])
    return out


@RULES.rule(
    name="lambda_pinned",
    title="λ_p pinned at its clamp",
    severity=WARNING,
    scope="economic phase after a grace period",
    value="the clamp value λ_p sits at",
    action="At the ceiling: the model over-ponders even at the highest price allowed (CTRL_ERR "
    "> 0), so the controller wants more; raise LAMBDA_MAX, or raise TARGET_K if the depth "
    "the model chooses is right.",
    settings=LambdaSettings(),
    metrics=("steps.lambda_p",),
    from_guide=False,
    lines=lambda s: [
        RefLine("steps.lambda_p", v, f"λ_p clamp {side} {v:.2e} (red-flag setting)")
        for side, v in (("min", s.lambda_min), ("max", s.lambda_max))
        if v is not None and v > 0
    ],
)
def lambda_pinned(scope: Scope, s: LambdaSettings) -> list[Finding]:
    """Candidates come from the whole economic phase (λ_p's full range), judgement only
    after the grace period; the lower and the upper clamp are separate findings."""
    span = scope.economic_span
    if span is None:
        return []
    econ = scope.economic
    judged = econ.filter(pl.col("step") >= span[0] + s.grace_steps)
    if judged.is_empty():
        return []
    run = scope.run
    target = _target_k(run)
    found = []
    for side, bound, source in _merge_equal_clamps(_lambda_candidates(run, econ, s), s):
        if bound <= 0:
            continue
        c = pl.col("lambda_p")
        cond = c.is_finite().fill_null(False) & ((c - bound).abs() <= s.rel_tol * bound)
        push = ""
        if source == "observed":
            if target is None:
                continue
            limit = s.push_rel * target
            err = pl.col("ctrl_err")
            cond = cond & (err > limit if side == "max" else err < -limit).fill_null(False)
            push = (
                f"; CTRL_ERR {'>' if side == 'max' else '<'} {'+' if side == 'max' else '−'}"
                f"{limit:.2f} there, so the controller is pushing against it"
            )
        flagged = sustained(judged, cond, s.sustain)
        if flagged.is_empty():
            continue
        where = "its min and max clamp (the same)" if side == "min = max" else f"its {side} clamp"
        state, action = _clamp_advice(side, flagged, target)
        evidence = (
            f"λ_p at {where} {bound:.2e} ({source} bound) on {flagged.height} "
            f"economic-phase steps ({episodes_text(flagged)}){push}{state}"
        )
        found.append(dataclasses.replace(Finding.over(flagged, evidence, bound), action=action))
    return found


def _median(df: pl.DataFrame, column: str) -> float | None:
    """Median of the finite values of `column` (None when there are none)."""
    if column not in df.columns:
        return None
    v = df.filter(pl.col(column).is_finite().fill_null(False))[column]
    return as_float(v.median()) if v.len() else None


def _clamp_advice(side: str, flagged: pl.DataFrame, target: float | None) -> tuple[str, str | None]:
    """What the pinned steps show (avg k against TARGET_K, the ponder cost's share of LM)
    and the advice for this clamp; None keeps the rule's own (the ceiling's) advice.

    At the floor the price is already as low as it goes: a model still below TARGET_K
    there under-ponders although compute is nearly free, and a lower floor would change
    nothing; TARGET_K is above the depth it reaches."""
    k, err, cost = (_median(flagged, c) for c in ("avg_k", "ctrl_err", "pl_lm"))
    shown = []
    if k is not None:
        shown.append(f"avg k {k:.2f}" + (f" vs TARGET_K {target:.2f}" if target else ""))
    if err is not None:
        shown.append(f"CTRL_ERR {err:+.2f}")
    if cost is not None:
        shown.append(f"ponder cost {cost:.2%} of LM")
    state = f"; median there: {', '.join(shown)}" if shown else ""
    if side == "min = max":
        return state, (
            "LAMBDA_MIN = LAMBDA_MAX fixes the price: the controller cannot move it. Widen "
            "the range, unless a fixed price is what the run is for."
        )
    if side == "max":
        return state, None
    if err is not None and err >= 0:
        return state, (
            "λ_p rests at its floor although avg k is at or above TARGET_K: the controller "
            "should be raising it; check the dual-ascent step and the deadband."
        )
    free = f" (ponder cost ≈ {cost:.1%} of LM)" if cost is not None else ""
    reach = f"TARGET_K {target:.2f}" if target else "TARGET_K"
    return state, (
        f"The model under-ponders even when compute is nearly free{free}: {reach} is above "
        "the depth the model reaches. Lower TARGET_K; a lower LAMBDA_MIN would change nothing."
    )


@RULES.rule(
    name="gate_over_penalized",
    title="s_trace: stops after k=1 (over-penalized)",
    severity=WARNING,
    scope="economic phase after a grace period, per layer",
    value="share of judged economic-phase traces with this shape",
    action="Over-penalized: lower LAMBDA_MAX or the compute price, or raise TARGET_K.",
    settings=TraceSettings(),
    metrics=("steps.avg_k", "steps.p_near_clamp"),
    from_guide=False,
)
def gate_over_penalized(scope: Scope, s: TraceSettings) -> list[Finding]:
    return _trace_shape(scope, s, OVER_PENALIZED)


@RULES.rule(
    name="gate_stuck_half",
    title="s_trace: gate stuck at 0.5",
    severity=WARNING,
    scope="economic phase after a grace period, per layer",
    value="share of judged economic-phase traces with this shape",
    action="The gate is not learning when to stop: check the gate's gradient flow and "
    "learning rate.",
    settings=TraceSettings(),
    metrics=("steps.avg_k",),
    from_guide=False,
)
def gate_stuck_half(scope: Scope, s: TraceSettings) -> list[Finding]:
    return _trace_shape(scope, s, STUCK_HALF)


def _layer_spans(hit: pl.DataFrame) -> str:
    """`layers 0, 1, 3` / `layer 2` for the layers in `hit`."""
    layers = sorted(set(hit["layer"].to_list()))
    return f"{'layers' if len(layers) > 1 else 'layer'} {', '.join(map(str, layers))}"


@RULES.rule(
    name="gate_uniform",
    title="Gate not token-differentiated (every token runs the same passes)",
    severity=WARNING,
    scope="economic-phase layer lines, audit steps left out",
    value="share of judged layer lines with p_std small and tok avg = p95 = k_exec",
    action="The gate has learnt one global depth, not when each token should stop: adaptive "
    "depth buys nothing over a fixed depth. Check what the gate sees (its inputs, init, "
    "temperature) and whether the ponder cost leaves room for per-token decisions.",
    settings=UniformSettings(),
    metrics=("steps.avg_k", "steps.avg_exec"),
    from_guide=False,
)
def gate_uniform(scope: Scope, s: UniformSettings) -> list[Finding]:
    lines = scope.layer_lines(["economic"])
    if lines.height < s.min_lines:
        return []
    avg, p95, kx = (pl.col(c) for c in ("avg_exec_token", "p95_exec_token", "k_exec"))
    cond = (
        (pl.col("p_std") < s.max_p_std)
        & ((avg - p95).abs() <= s.tol)
        & ((p95 - kx.cast(pl.Float64)).abs() <= s.tol)
    ).fill_null(False)
    d = lines.with_columns(_u=cond)
    share = as_float(d["_u"].mean())
    if share < s.min_share:
        return []
    hit = d.filter(pl.col("_u"))
    by_layer = d.group_by("layer").agg(pl.col("_u").mean()).filter(pl.col("_u") >= s.min_share)
    depths = hit["k_exec"].value_counts(sort=True)
    common = int(depths["k_exec"][0])
    first, last = step_span(hit)
    evidence = (
        f"on {share:.0%} of {d.height} economic-phase layer lines (audit steps left out) "
        f"p_std < {s.max_p_std:g} and tok avg = p95 = k_exec: every token runs the same "
        f"number of passes (most often {common}); {_layer_spans(by_layer)} each ≥ "
        f"{s.min_share:.0%}, steps {first}–{last}"
    )
    return [Finding(evidence, share, first, last, hit["step"].n_unique())]


@RULES.rule(
    name="gate_frozen",
    title="Gate frozen at 0.5 (no spread)",
    severity=CRITICAL,
    scope="layer lines after the force warmup (gate learning included), audit steps left out",
    value="share of judged layer lines with p_mu ≈ 0.5 and no spread",
    action="The gate outputs 0.5 for every token at every pass (survival 0.5^k: [1.00, 0.50, "
    "0.25, 0.12]): it is not learning. Check that the gate receives gradient (detached "
    "input, zero-initialised or frozen weights, its learning rate). Warning when it moved "
    "later, critical while it is still frozen.",
    settings=FrozenSettings(),
    metrics=("steps.avg_k", "steps.avg_exec"),
    from_guide=False,
)
def gate_frozen(scope: Scope, s: FrozenSettings) -> list[Finding]:
    lines = scope.layer_lines(["gate_learning", "economic"])
    if lines.is_empty():
        return []
    cond = (
        ((pl.col("p_mean") - s.center).abs() <= s.tol) & (pl.col("p_std") <= s.max_p_std)
    ).fill_null(False)
    parts, ongoing = [], False
    for layer, flagged in sustained_by(lines, cond, s.sustain):
        parts.append(flagged)
        ongoing = ongoing or bool(flagged["step"].max() == layer["step"].max())
    if not parts:
        return []
    hit = pl.concat(parts)
    # Frozen while λ_p prices compute, to the end: the gate never learnt. A gate frozen only
    # in gate learning (the run ends there, or it moved once priced) is a warning.
    priced = bool((hit["phase"] == "economic").any())
    share = hit.height / lines.height
    first, last = step_span(hit)
    in_phases = " and ".join(
        p.replace("_", " ") for p in ("gate_learning", "economic") if p in set(hit["phase"])
    )
    evidence = (
        f"p_mu within {s.tol:g} of {s.center:g} and p_std ≤ {s.max_p_std:g} on {hit.height} "
        f"layer lines of {_layer_spans(hit)} ({in_phases}), steps {first}–{last}; "
        f"{share:.0%} of the judged layer lines; "
        + (
            "still frozen at the last layer line"
            if ongoing
            else "the gate moved later"
            + ("" if priced else " (once the economic phase priced compute)")
        )
        + ("" if priced or not ongoing else " (the run ends before the economic phase)")
    )
    severity = CRITICAL if ongoing and priced else WARNING
    return [Finding(evidence, share, first, last, hit["step"].n_unique(), severity=severity)]


@RULES.rule(
    name="metric_flat",
    title="A printed metric is 0 on every line (not computed by this build)",
    severity=INFO,
    scope="every step and layer line (ponder costs: once the run reached the ponder start)",
    value="number of metrics printed as 0 on every line",
    action="Not computed by this trainer build: it prints a value the model does not report "
    "as 0 (`s.get(name, 0)`). Read these metrics as missing, not as data.",
    settings=FlatSettings(),
    metrics=("steps.mtp_loss",),
    from_guide=False,
)
def metric_flat(scope: Scope, s: FlatSettings) -> list[Finding]:
    """The metrics of `catalog.flat_metrics`, the definition pickers and charts grey out."""
    flat = catalog.flat_metrics(scope.run, s.min_lines)
    if not flat:
        return []
    parts = []
    for table, kind in (("steps", "step"), ("layers", "layer")):
        ms = [m for m in catalog.metrics_for(table, numeric_only=True) if m.key in flat]
        if ms:
            df: pl.DataFrame = getattr(scope.run, table)
            lines = max(int(df[m.column].is_not_null().sum()) for m in ms)
            labels = ", ".join(m.label for m in ms)
            parts.append(f"{labels} (on all {lines} {kind} lines)")
    evidence = "printed as 0 on every line: " + "; ".join(parts)
    return [Finding(evidence, len(flat))]


# ---------------------------------------------------------------- what the log says


@RULES.rule(
    name="traceback",
    title="Python traceback in the log",
    severity=WARNING,
    scope="whole log (info when training continued after the last one)",
    value="number of tracebacks",
    action="Read the traceback: the run crashed or a component failed.",
    settings=NoSettings(),
    metrics=("steps.lm_loss",),
    from_guide=False,
)
def traceback(scope: Scope, s: NoSettings) -> list[Finding]:
    run, ev = scope.run, scope.run.events
    if not ev.height:
        return []
    tb = ev.filter(
        (pl.col("kind") == "traceback")
        & pl.col("text").str.starts_with("Traceback (most recent call last)")
    )
    if not tb.height:
        return []
    exc = ev.filter(
        (pl.col("kind") == "traceback")
        & pl.col("text").str.contains(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt)\b")
    )
    last_exc = f"; last: {exc['text'][-1].strip()[:120]}" if exc.height else ""
    steps = tb.filter(pl.col("step").is_not_null())
    span = step_span(steps) if steps.height else None
    # Training that went on past the last traceback recovered (a resume): info.
    last = run.last_step
    recovered = span is not None and last is not None and span[1] < last
    evidence = f"{tb.height} traceback{'s' if tb.height > 1 else ''} in the log{last_exc}" + (
        "; training continued afterwards" if recovered else ""
    )
    first_step, last_step = span if span is not None else (None, None)
    return [
        Finding(
            evidence,
            tb.height,
            first_step,
            last_step,
            tb.height,
            severity=INFO if recovered else None,
        )
    ]


@RULES.rule(
    name="restarts",
    title="Run was resumed",
    severity=INFO,
    scope="whole log",
    value="number of restarts",
    action="Steps between a checkpoint and a crash were re-run; the later lines count. "
    "Check that λ_p was restored as expected.",
    settings=NoSettings(),
    metrics=("steps.lm_loss",),
    from_guide=False,
)
def restarts(scope: Scope, s: NoSettings) -> list[Finding]:
    run = scope.run
    meta = run.meta or {}
    resume_steps = [int(x) for x in (meta.get("resume_steps") or []) if x is not None]
    count = int(meta.get("restarts") or 0)
    if not count and not resume_steps and run.events.height:
        # a run built without the parser: read the resumes the way the parser does
        resume_steps = run_meta.resume_steps(run.events)
    count = max(count, len(resume_steps))
    if not count:
        return []
    where = ""
    if resume_steps:
        plural = "s" if len(resume_steps) > 1 else ""
        where = f" from step{plural} " + ", ".join(map(str, resume_steps))
    return [
        Finding(
            f"resumed {count} time{'s' if count > 1 else ''}{where}",
            count,
            min(resume_steps) if resume_steps else None,
            max(resume_steps) if resume_steps else None,
            count,
        )
    ]


@RULES.rule(
    name="log_problems",
    title="Lines that did not parse",
    severity=INFO,
    scope="whole log",
    value="number of unparsed lines",
    action="Open the Problems list: stray output, or a trainer format this tool does not know.",
    settings=NoSettings(),
    from_guide=False,
)
def log_problems(scope: Scope, s: NoSettings) -> list[Finding]:
    problems = scope.run.problems
    if not problems.height:
        return []
    reasons = problems["reason"].fill_null("unknown").value_counts(sort=True)
    what = ", ".join(f"{r} ×{n}" for r, n in reasons.iter_rows())
    first_line = problems.select(pl.col("line_no").min()).item()
    return [
        Finding(
            f"{problems.height} lines did not parse ({what}); first at line {first_line}",
            problems.height,
            None,
            None,
            problems.height,
        )
    ]


@RULES.rule(
    name="trainer_errors",
    title="JSON dump / generation failed",
    severity=INFO,
    scope="whole log",
    value="number of failure lines",
    action="Side tasks failed (stats.json or sample generation); training itself continued.",
    settings=NoSettings(),
    from_guide=False,
)
def trainer_errors(scope: Scope, s: NoSettings) -> list[Finding]:
    ev = scope.run.events
    if not ev.height:
        return []
    fails = ev.filter(pl.col("kind").is_in(["json_dump_failed", "generation_failed"]))
    if not fails.height:
        return []
    kinds = fails["kind"].value_counts(sort=True)
    what = ", ".join(f"{k.replace('_', ' ')} ×{n}" for k, n in kinds.iter_rows())
    steps = fails.filter(pl.col("step").is_not_null())
    first_step, last_step = step_span(steps) if steps.height else (None, None)
    return [Finding(what, fails.height, first_step, last_step, fails.height)]


@RULES.rule(
    name="log_truncated",
    title="Log ends mid-line",
    severity=INFO,
    scope="whole log",
    value="1",
    action="The run is live or was killed mid-write; the last line was not read.",
    settings=NoSettings(),
    from_guide=False,
)
def log_truncated(scope: Scope, s: NoSettings) -> list[Finding]:
    if not (scope.run.meta or {}).get("truncated"):
        return []
    return [Finding("the last line has no line ending", 1.0, scope.run.last_step)]


@RULES.rule(
    name="no_deadband",
    title="Deadband never engaged",
    severity=INFO,
    scope="economic phase",
    value="length of the economic phase in steps",
    action="λ_p has not stabilised: the controller may still be searching, or the price "
    "never sat above the middle of its range for 100 steps.",
    settings=DeadbandSettings(),
    metrics=("steps.lambda_p", "steps.ctrl_err"),
    from_guide=False,
)
def no_deadband(scope: Scope, s: DeadbandSettings) -> list[Finding]:
    span = scope.economic_span
    if span is None:
        return []
    start, end = span
    length = end - start + 1
    if length < s.expect_within:
        return []
    run, steps = scope.run, scope.steps
    engaged = (run.meta or {}).get("deadband_step") is not None
    engaged = engaged or bool(run.events.height and (run.events["kind"] == "deadband").any())
    engaged = engaged or bool(steps.height and steps["deadband_active"].fill_null(False).any())
    if engaged:
        return []
    evidence = f"no [DB] in {length} economic-phase steps ({start}–{end})"
    return [Finding(evidence, length, start, end, length)]


# ---------------------------------------------------------------- relative to the sweep


@RULES.sweep_rule(
    name="sweep_lm",
    title="Final LM far from the sweep's",
    severity=WARNING,
    scope="the shown runs of the same trainer and model size; the last logged steps of each",
    value="robust z-score of the run's final LM among its peers",
    action="This run ends far from its peers: compare its settings and its LM curve with "
    "theirs (Step line, runs overlaid), and check its other findings.",
    settings=LmOutlier(),
    label="final LM",
    worse="higher",
    metrics=("steps.lm_loss",),
)
def sweep_lm(scope: Scope, s: LmOutlier) -> Measure | None:
    lm = scope.steps.filter(pl.col("lm_loss").is_finite().fill_null(False)).tail(s.window)
    if lm.is_empty():
        return None
    first, last = step_span(lm)
    return Measure(as_float(lm["lm_loss"].mean()), first, last, lm.height)


@RULES.sweep_rule(
    name="sweep_k",
    title="Mean k (economic) far from the sweep's",
    severity=WARNING,
    scope="the shown runs of the same trainer, model size and TARGET_K; the economic phase, audits left out",
    value="robust z-score of the run's mean k among its peers",
    action="Runs aiming at the same TARGET_K settle at different depths: compare λ_p and "
    "CTRL_ERR (Recurrence economics) and the gate's findings.",
    settings=KOutlier(),
    label="mean k (economic)",
    fmt=".3f",
    metrics=("steps.avg_k", "steps.ctrl_err"),
)
def sweep_k(scope: Scope, s: KOutlier) -> Measure | None:
    econ = scope.economic.filter(
        ~pl.col("audit").fill_null(False) & pl.col("avg_k").is_finite().fill_null(False)
    )
    if econ.is_empty():
        return None
    first, last = step_span(econ)
    return Measure(as_float(econ["avg_k"].mean()), first, last, econ.height)


@RULES.sweep_rule(
    name="sweep_win_rate",
    title="Win rate far from the sweep's",
    severity=WARNING,
    scope="the shown runs of the same trainer and model size; policy quality lines of the economic phase",
    value="robust z-score of the run's ECONOMIC WIN share among its peers",
    action="Recurrence pays off on far fewer (or more) policy steps than in the other runs: "
    "compare ΔCE and the coupon (REWARD_ETA) with theirs.",
    settings=RateOutlier(),
    label="win rate",
    fmt=".1%",
    worse="lower",
    metrics=("quality.delta_ce", "quality.coupon"),
)
def sweep_win_rate(scope: Scope, s: RateOutlier) -> Measure | None:
    q = scope.economic_quality
    if q.is_empty():
        return None
    policy = q.filter(pl.col("status").is_in(schema.POLICY_STATUSES))
    if policy.is_empty():
        return None
    first, last = step_span(policy)
    rate = as_float((policy["status"] == schema.ECONOMIC_WIN).mean())
    return Measure(rate, first, last, policy.height)


@RULES.sweep_rule(
    name="sweep_throughput",
    title="tok/sec far from the sweep's",
    severity=INFO,
    scope="the shown runs of the same trainer and model size; every step",
    value="robust z-score of the run's median tok/sec among its peers",
    action="Much slower (or faster) than its peers: another machine or GPU, another model "
    "size, or more passes per token (AVGS exec).",
    settings=ThroughputOutlier(),
    label="median tok/sec",
    fmt=".1f",
    worse="lower",
    metrics=("steps.tok_per_sec", "steps.avg_exec"),
)
def sweep_throughput(scope: Scope, s: ThroughputOutlier) -> Measure | None:
    tps = scope.steps.filter(
        pl.col("tok_per_sec").is_finite().fill_null(False) & (pl.col("tok_per_sec") > 0)
    )
    if tps.height < 3:
        return None
    first, last = step_span(tps)
    return Measure(as_float(tps["tok_per_sec"].median()), first, last, tps.height)
