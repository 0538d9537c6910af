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

from dataclasses import dataclass

import polars as pl

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
    Registry,
    Scope,
    Sustain,
    as_float,
    episodes_text,
    step_span,
    sustained,
    threshold_findings,
    warn_above,
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
class ThroughputSettings:
    low_frac: float = 0.5
    """tok/sec below half the run's own median counts as "very low"; hardware differs, so
    no absolute number would be right, and a run that is slow throughout is not flagged."""
    sustain: Sustain = Sustain(window=20, share=0.5)


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


# ---------------------------------------------------------------- the guide's table


@RULES.rule(
    name="grad_sustained",
    title="GRAD > 2.0 sustained",
    severity=CRITICAL,
    scope="all steps",
    value="highest GRAD in the flagged steps",
    action="Exploding gradients / LR too high: check the LR schedule; reduce it if needed.",
    settings=Above(warn_above("grad_norm")),
    metrics=("steps.grad_norm",),
)
def grad_sustained(scope: Scope, s: Above) -> list[Finding]:
    return threshold_findings(scope.steps, "grad_norm", s, "GRAD", ".2f")


def _trace_shape(scope: Scope, s: TraceSettings, pattern: str) -> list[Finding]:
    """A layer shows the shape at N consecutive checkpoints."""
    t = scope.judged_traces(s.grace_steps, s.patterns)
    if t.is_empty():
        return []
    hit = pl.col("pattern") == pattern
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
    settings=Above(warn_above("p_near_clamp")),
    metrics=("steps.p_near_clamp", "steps.lambda_p"),
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
    title="AUX > 0.1 sustained",
    severity=WARNING,
    scope="all steps",
    value="highest AUX in the flagged steps",
    action="MoE router unbalanced (one expert dominating): check num_real_experts / aux loss weight.",
    settings=Above(warn_above("aux_loss")),
    metrics=("steps.aux_loss",),
)
def aux_high(scope: Scope, s: Above) -> list[Finding]:
    return threshold_findings(scope.steps, "aux_loss", s, "AUX", ".4f")


@RULES.rule(
    name="gap_high",
    title="gap (exec − k) > 0.5 sustained",
    severity=WARNING,
    scope="after the force warmup",
    value="highest gap in the flagged steps",
    action="Hard vs soft execution mismatch: halt_thr too low; soft survival not tracking hard stop.",
    settings=Above(warn_above("avg_gap")),
    metrics=("steps.avg_gap",),
)
def gap_high(scope: Scope, s: Above) -> list[Finding]:
    return threshold_findings(scope.after_force, "avg_gap", s, "gap", ".2f")


@RULES.rule(
    name="lm_not_decreasing",
    title="LM not decreasing after step 500",
    severity=WARNING,
    scope="steps from 500",
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
    change = m1 / m0 - 1.0
    evidence = (
        f"median LM {m0:.4f} over steps {first['step'][0]}–{first['step'][-1]} vs "
        f"{m1:.4f} over steps {last['step'][0]}–{last['step'][-1]} ({change:+.1%}; "
        f"needs ≤ −{s.min_rel_drop:.0%})"
    )
    return [Finding(evidence, change, int(first["step"][0]), int(last["step"][-1]), n)]


@RULES.rule(
    name="throughput_low",
    title="tok/sec very low (vs this run's median)",
    severity=WARNING,
    scope="all steps",
    value="median tok/sec of the flagged steps divided by the run's median",
    action="Memory pressure causing swaps: reduce seq_len or batch_size.",
    settings=ThroughputSettings(),
    metrics=("steps.tok_per_sec", "steps.dt_ms"),
)
def throughput_low(scope: Scope, s: ThroughputSettings) -> list[Finding]:
    steps = scope.steps
    if steps.is_empty():
        return []
    tps = steps.filter(pl.col("tok_per_sec").is_finite().fill_null(False))["tok_per_sec"]
    tps = tps.filter(tps > 0)
    if tps.len() < s.sustain.min_rows:
        return []
    med = as_float(tps.median())
    limit = s.low_frac * med
    c = pl.col("tok_per_sec")
    flagged = sustained(steps, c.is_finite().fill_null(False) & (c < limit), s.sustain)
    if flagged.is_empty():
        return []
    ratio = as_float(flagged["tok_per_sec"].median()) / med
    evidence = (
        f"tok/sec below {s.low_frac:.0%} of the run's median ({med:.1f}) on "
        f"{flagged.height} logged steps ({episodes_text(flagged)}); "
        f"median there {ratio:.0%} of normal"
    )
    return [Finding.over(flagged, evidence, ratio)]


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
    action="At the max: the controller wants a higher price; raise LAMBDA_MAX or check "
    "TARGET_K. At the min: the model under-ponders even at the lowest price; lower "
    "LAMBDA_MIN or check whether recurrence helps (ΔCE).",
    settings=LambdaSettings(),
    metrics=("steps.lambda_p",),
    from_guide=False,
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
        evidence = (
            f"λ_p at {where} {bound:.2e} ({source} bound) on {flagged.height} "
            f"economic-phase steps ({episodes_text(flagged)}){push}"
        )
        found.append(Finding.over(flagged, evidence, bound))
    return found


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
