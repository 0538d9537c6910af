"""Red flags: the guide's symptom table, plus a researcher's extras, as rules over a run.

Each rule looks only where it is meaningful (trace-shape and controller rules only in the
economic phase, the gap rule only once layers are no longer forced to 2 passes, the LM
rule only after step 500), and threshold rules fire on *sustained* trouble, never on one
spike. Every finding says where it happened, what was seen, and the guide's action.

"Sustained" (`Sustain(window, share, min_rows)`): the condition holds on at least
`ceil(share × window)` (and at least `min_rows`) of some `window` consecutive *logged*
rows in scope; a scope with fewer rows than `window` is judged as one window of its own
length. The flagged steps are the rows meeting the condition inside such windows; rows
more than `window` apart start a new episode. Non-finite values never meet a threshold
condition (the `nonfinite` rule reports them instead).

Finding columns (`FINDINGS_SCHEMA`): `run, rule, severity, first_step, last_step, n_steps,
evidence, value, action`. `n_steps` counts flagged logged steps (trace checkpoints for
trace rules, events for event rules); `value` is the rule's headline number (documented
per rule in `RULES`). One row per rule and run at most, except `lambda_pinned`, which can
report the lower and the upper clamp separately.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from ponder_parse.analysis import catalog
from ponder_parse.analysis.patterns import DEFAULT as DEFAULT_PATTERNS
from ponder_parse.analysis.patterns import (
    NOT_STOPPING,
    OVER_PENALIZED,
    STUCK_HALF,
    PatternThresholds,
    classify_traces,
    policy_traces,
)
from ponder_parse.analysis.phases import assign_phase, phases
from ponder_parse.run import Run

CRITICAL, WARNING, INFO = "critical", "warning", "info"
SEVERITIES: tuple[str, ...] = (CRITICAL, WARNING, INFO)

FINDINGS_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.String,
    "rule": pl.String,
    "severity": pl.String,
    "first_step": pl.Int64,
    "last_step": pl.Int64,
    "n_steps": pl.Int64,
    "evidence": pl.String,
    "value": pl.Float64,
    "action": pl.String,
}


@dataclass(frozen=True)
class Rule:
    """What a rule checks, where, and what to do about it (help text for the UI)."""

    name: str
    title: str
    severity: str
    scope: str
    value: str
    action: str
    from_guide: bool = True


RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule(
            "grad_sustained",
            "GRAD > 2.0 sustained",
            CRITICAL,
            "all steps",
            "highest GRAD in the flagged steps",
            "Exploding gradients / LR too high: check the LR schedule; reduce it if needed.",
        ),
        Rule(
            "gate_not_stopping",
            "s_trace: gate collapsed to always continue",
            CRITICAL,
            "economic phase after a grace period, per layer",
            "share of judged economic-phase traces with this shape",
            "λ_p too low: increase LAMBDA_MIN, or wait for λ_p to rise.",
        ),
        Rule(
            "p_near_clamp_high",
            "P_NR > 20% sustained",
            CRITICAL,
            "economic phase",
            "highest P_NR (fraction) in the flagged steps",
            "Gate collapsing to always stop (absorbing state): model overtaxed; lower LAMBDA_MAX.",
        ),
        Rule(
            "delta_ce_negative",
            "ΔCE (nearly) always negative",
            WARNING,
            "quality lines of the economic phase",
            "share of quality lines with ΔCE < 0 in the economic phase",
            "Recurrence is hurting: REWARD_ETA too low, or recurrence not learned yet.",
        ),
        Rule(
            "aux_high",
            "AUX > 0.1 sustained",
            WARNING,
            "all steps",
            "highest AUX in the flagged steps",
            "MoE router unbalanced (one expert dominating): check num_real_experts / aux loss weight.",
        ),
        Rule(
            "gap_high",
            "gap (exec − k) > 0.5 sustained",
            WARNING,
            "after the force warmup",
            "highest gap in the flagged steps",
            "Hard vs soft execution mismatch: halt_thr too low; soft survival not tracking hard stop.",
        ),
        Rule(
            "lm_not_decreasing",
            "LM not decreasing after step 500",
            WARNING,
            "steps from 500",
            "relative change of median LM, last window vs first window",
            "Learning rate too low or data issue: check the LR CHECK output and dataset loading.",
        ),
        Rule(
            "throughput_low",
            "tok/sec very low (vs this run's median)",
            WARNING,
            "all steps",
            "median tok/sec of the flagged steps divided by the run's median",
            "Memory pressure causing swaps: reduce seq_len or batch_size.",
        ),
        Rule(
            "nonfinite",
            "NaN / inf in losses or GRAD",
            CRITICAL,
            "all steps",
            "number of steps with a non-finite value",
            "The run diverged: restart from the last good checkpoint with a lower LR "
            "or tighter clipping.",
            from_guide=False,
        ),
        Rule(
            "lambda_pinned",
            "λ_p pinned at its clamp",
            WARNING,
            "economic phase after a grace period",
            "the clamp value λ_p sits at",
            "At the max: the controller wants a higher price; raise LAMBDA_MAX or check "
            "TARGET_K. At the min: the model under-ponders even at the lowest price; lower "
            "LAMBDA_MIN or check whether recurrence helps (ΔCE).",
            from_guide=False,
        ),
        Rule(
            "gate_over_penalized",
            "s_trace: stops after k=1 (over-penalized)",
            WARNING,
            "economic phase after a grace period, per layer",
            "share of judged economic-phase traces with this shape",
            "Over-penalized: lower LAMBDA_MAX or the compute price, or raise TARGET_K.",
            from_guide=False,
        ),
        Rule(
            "gate_stuck_half",
            "s_trace: gate stuck at 0.5",
            WARNING,
            "economic phase after a grace period, per layer",
            "share of judged economic-phase traces with this shape",
            "The gate is not learning when to stop: check the gate's gradient flow and "
            "learning rate.",
            from_guide=False,
        ),
        Rule(
            "traceback",
            "Python traceback in the log",
            WARNING,
            "whole log (info when training continued after the last one)",
            "number of tracebacks",
            "Read the traceback: the run crashed or a component failed.",
            from_guide=False,
        ),
        Rule(
            "restarts",
            "Run was resumed",
            INFO,
            "whole log",
            "number of restarts",
            "Steps between a checkpoint and a crash were re-run; the later lines count. "
            "Check that λ_p was restored as expected.",
            from_guide=False,
        ),
        Rule(
            "log_problems",
            "Lines that did not parse",
            INFO,
            "whole log",
            "number of unparsed lines",
            "Open the Problems list: stray output, or a trainer format this tool does not know.",
            from_guide=False,
        ),
        Rule(
            "trainer_errors",
            "JSON dump / generation failed",
            INFO,
            "whole log",
            "number of failure lines",
            "Side tasks failed (stats.json or sample generation); training itself continued.",
            from_guide=False,
        ),
        Rule(
            "log_truncated",
            "Log ends mid-line",
            INFO,
            "whole log",
            "1",
            "The run is live or was killed mid-write; the last line was not read.",
            from_guide=False,
        ),
        Rule(
            "no_deadband",
            "Deadband never engaged",
            INFO,
            "economic phase",
            "length of the economic phase in steps",
            "λ_p has not stabilised: the controller may still be searching, or the price "
            "never sat above the middle of its range for 100 steps.",
            from_guide=False,
        ),
    )
}


@dataclass(frozen=True)
class Sustain:
    """What "sustained" means for one rule (see the module docstring)."""

    window: int = 20
    """Consecutive logged rows looked at together."""
    share: float = 0.5
    """Fraction of the window that must meet the condition."""
    min_rows: int = 3
    """Never fewer rows than this, so a short run cannot fire on one spike."""


def _warn_above(column: str, table: str = "steps") -> float:
    value = catalog.metric(column, table).warn_above
    assert value is not None, f"catalog has no threshold for {column}"
    return value


@dataclass(frozen=True)
class FlagRules:
    """Parameters of every rule. Thresholds default to the metric catalog (the guide)."""

    grad_max: float = _warn_above("grad_norm")
    grad_sustain: Sustain = Sustain(window=20, share=0.5)
    p_near_clamp_max: float = _warn_above("p_near_clamp")
    p_near_clamp_sustain: Sustain = Sustain(window=20, share=0.5)
    aux_max: float = _warn_above("aux_loss")
    aux_sustain: Sustain = Sustain(window=20, share=0.5)
    gap_max: float = _warn_above("avg_gap")
    gap_sustain: Sustain = Sustain(window=20, share=0.5)
    delta_ce_sustain: Sustain = Sustain(window=100, share=0.9, min_rows=20)
    """ΔCE < 0 on ≥ 90% of 100 consecutive quality lines counts as "always negative"."""
    lm_check_from: int = 500
    lm_window: int = 200
    """Logged steps in each median window compared by the LM rule."""
    lm_min_rel_drop: float = 0.02
    """The last window's median LM must be at least 2% below the first window's."""
    lm_min_span: int = 500
    """Steps between the windows' starts before the LM rule judges at all."""
    tps_low_frac: float = 0.5
    """tok/sec below half the run's own median counts as "very low"; hardware differs, so
    no absolute number would be right, and a run that is slow throughout is not flagged."""
    tps_sustain: Sustain = Sustain(window=20, share=0.5)
    lambda_min: float | None = None
    lambda_max: float | None = None
    """λ_p clamp; None → the run's hparams (`lambda_min`/`lambda_max`), else the trainer
    defaults and the run's observed extremes (see `lambda_push_rel`)."""
    lambda_rel_tol: float = 0.01
    lambda_push_rel: float = 0.08
    """An observed (not configured) clamp counts only where |CTRL_ERR| exceeds this share
    of TARGET_K in the direction that would move λ_p past it: beyond the trainer's default
    deadband (−2% / +5% of TARGET_K), so a price that settled in the deadband is not a clamp."""
    lambda_sustain: Sustain = Sustain(window=200, share=0.95, min_rows=50)
    trace_min_consecutive: int = 3
    """A layer must show the shape at this many consecutive trace checkpoints (every 50
    steps by default, so 3 ≈ 150 steps). Critical if still present at the layer's last
    checkpoint, warning if it recovered."""
    economic_grace_steps: int = 500
    """Trace-shape and λ_p-clamp rules skip the first steps of the economic phase: λ_p
    starts at its floor and needs time to rise, so a gate that still runs every pass just
    after the ponder start is the guide's "or wait", not a finding."""
    patterns: PatternThresholds = DEFAULT_PATTERNS
    deadband_expect_within: int = 1000
    """Economic steps after which a missing deadband is worth an info note."""
    loss_columns: tuple[str, ...] = ("tot_loss", "lm_loss", "mtp_loss", "grad_norm")


DEFAULT = FlagRules()


# ---------------------------------------------------------------- helpers


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDINGS_SCHEMA)


def _finding(
    run: Run,
    rule: str,
    evidence: str,
    value: float | None,
    first_step: int | None = None,
    last_step: int | None = None,
    n_steps: int | None = None,
    severity: str | None = None,
) -> dict[str, Any]:
    r = RULES[rule]
    return {
        "run": run.name,
        "rule": rule,
        "severity": severity or r.severity,
        "first_step": first_step,
        "last_step": last_step,
        "n_steps": n_steps,
        "evidence": evidence,
        "value": None if value is None else float(value),
        "action": r.action,
    }


def _above(column: str, threshold: float) -> pl.Expr:
    """`column > threshold` for finite values only (Polars orders NaN above everything)."""
    c = pl.col(column)
    return c.is_finite().fill_null(False) & (c > threshold)


def _sustained(df: pl.DataFrame, cond: pl.Expr, s: Sustain) -> pl.DataFrame:
    """Rows of `df` (sorted by step) inside a sustained stretch, with an `_episode` id."""
    n = df.height
    if n == 0:
        return df.with_columns(_episode=pl.lit(0, dtype=pl.Int64)).clear()
    w = min(s.window, n)
    need = max(s.min_rows, math.ceil(s.share * w - 1e-9))
    d = (
        df.with_columns(_c=cond.fill_null(False))
        .with_row_index("_i")
        .with_columns(
            _hot=(pl.col("_c").cast(pl.Int32).rolling_sum(w, min_samples=w) >= need)
            .fill_null(False)
            .cast(pl.Int32)
        )
        .with_columns(
            _cov=pl.col("_hot").reverse().rolling_max(w, min_samples=1).reverse().fill_null(0)
        )
        .filter(pl.col("_c") & (pl.col("_cov") > 0))
    )
    return d.with_columns(
        _episode=(pl.col("_i").diff().fill_null(0) > w).cum_sum().cast(pl.Int64)
    ).drop("_c", "_hot", "_cov", "_i")


def _episodes_text(flagged: pl.DataFrame) -> str:
    spans = (
        flagged.group_by("_episode", maintain_order=True)
        .agg(a=pl.col("step").min(), b=pl.col("step").max())
        .sort("a")
    )
    parts = [f"{a}–{b}" if a != b else f"{a}" for a, b in spans.select("a", "b").iter_rows()]
    shown = ", ".join(parts[:3]) + (f", … ({len(parts)} episodes)" if len(parts) > 3 else "")
    return f"step{'s' if len(parts) > 1 or '–' in parts[0] else ''} {shown}"


def _threshold_rule(
    run: Run,
    rule: str,
    df: pl.DataFrame,
    column: str,
    threshold: float,
    s: Sustain,
    label: str,
    fmt: str,
) -> list[dict[str, Any]]:
    if df.is_empty() or column not in df.columns:
        return []
    flagged = _sustained(df, _above(column, threshold), s)
    if flagged.is_empty():
        return []
    worst = float(flagged[column].max())  # type: ignore[arg-type]
    evidence = (
        f"{label} > {format(threshold, fmt)} on {flagged.height} logged steps "
        f"({_episodes_text(flagged)}); max {format(worst, fmt)}"
    )
    return [
        _finding(
            run,
            rule,
            evidence,
            worst,
            int(flagged["step"].min()),  # type: ignore[arg-type]
            int(flagged["step"].max()),  # type: ignore[arg-type]
            flagged.height,
        )
    ]


def _phase_steps(run: Run, phases_df: pl.DataFrame, names: Iterable[str]) -> pl.DataFrame:
    names = set(names)
    return (
        assign_phase(run.steps, phases_df).filter(pl.col("phase").is_in(list(names))).sort("step")
    )


# ---------------------------------------------------------------- rules


def _rule_nonfinite(run: Run, steps: pl.DataFrame, rules: FlagRules) -> list[dict[str, Any]]:
    cols = [c for c in rules.loss_columns if c in steps.columns]
    if steps.is_empty() or not cols:
        return []
    bad = {c: pl.col(c).is_not_null() & ~pl.col(c).is_finite() for c in cols}
    rows = steps.with_columns(_bad=pl.any_horizontal(list(bad.values()))).filter(pl.col("_bad"))
    if rows.is_empty():
        return []
    which = [c for c in cols if rows.select(bad[c].any()).item()]
    labels = ", ".join(catalog.metric(c).label for c in which)
    first, last = int(rows["step"].min()), int(rows["step"].max())  # type: ignore[arg-type]
    evidence = f"non-finite {labels} on {rows.height} steps, first at step {first}"
    return [_finding(run, "nonfinite", evidence, rows.height, first, last, rows.height)]


def _rule_lm(run: Run, steps: pl.DataFrame, rules: FlagRules) -> list[dict[str, Any]]:
    d = steps.filter(
        (pl.col("step") >= rules.lm_check_from) & pl.col("lm_loss").is_finite().fill_null(False)
    )
    n = d.height
    if n < 4:
        return []
    w = min(rules.lm_window, n // 2)
    first, last = d.head(w), d.tail(w)
    if int(last["step"][0]) - int(first["step"][0]) < rules.lm_min_span:
        return []
    m0 = float(first["lm_loss"].median())  # type: ignore[arg-type]
    m1 = float(last["lm_loss"].median())  # type: ignore[arg-type]
    if m0 <= 0 or m1 < m0 * (1.0 - rules.lm_min_rel_drop):
        return []
    change = m1 / m0 - 1.0
    evidence = (
        f"median LM {m0:.4f} over steps {first['step'][0]}–{first['step'][-1]} vs "
        f"{m1:.4f} over steps {last['step'][0]}–{last['step'][-1]} ({change:+.1%}; "
        f"needs ≤ −{rules.lm_min_rel_drop:.0%})"
    )
    return [
        _finding(
            run,
            "lm_not_decreasing",
            evidence,
            change,
            int(first["step"][0]),
            int(last["step"][-1]),
            n,
        )
    ]


def _rule_tps(run: Run, steps: pl.DataFrame, rules: FlagRules) -> list[dict[str, Any]]:
    if steps.is_empty():
        return []
    tps = steps.filter(pl.col("tok_per_sec").is_finite().fill_null(False))["tok_per_sec"]
    tps = tps.filter(tps > 0)
    if tps.len() < rules.tps_sustain.min_rows:
        return []
    med = float(tps.median())  # type: ignore[arg-type]
    limit = rules.tps_low_frac * med
    c = pl.col("tok_per_sec")
    flagged = _sustained(steps, c.is_finite().fill_null(False) & (c < limit), rules.tps_sustain)
    if flagged.is_empty():
        return []
    ratio = float(flagged["tok_per_sec"].median()) / med  # type: ignore[arg-type]
    evidence = (
        f"tok/sec below {rules.tps_low_frac:.0%} of the run's median ({med:.1f}) on "
        f"{flagged.height} logged steps ({_episodes_text(flagged)}); "
        f"median there {ratio:.0%} of normal"
    )
    return [
        _finding(
            run,
            "throughput_low",
            evidence,
            ratio,
            int(flagged["step"].min()),  # type: ignore[arg-type]
            int(flagged["step"].max()),  # type: ignore[arg-type]
            flagged.height,
        )
    ]


def _target_k(run: Run, steps: pl.DataFrame) -> float | None:
    """TARGET_K from the run's meta, else recovered as avg_k − CTRL_ERR (never assumed)."""
    value = (run.meta or {}).get("target_k")
    if value is not None:
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    t = steps.select((pl.col("avg_k") - pl.col("ctrl_err")).alias("t")).filter(
        pl.col("t").is_finite()
    )["t"]
    return float(t.median()) if t.len() else None  # type: ignore[arg-type]


def _lambda_candidates(
    run: Run, econ: pl.DataFrame, rules: FlagRules
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
    tol = rules.lambda_rel_tol
    out: list[tuple[str, float, str]] = []
    for side, given, key, default in (
        ("min", rules.lambda_min, "lambda_min", catalog.LAMBDA_MIN_DEFAULT),
        ("max", rules.lambda_max, "lambda_max", catalog.LAMBDA_MAX_DEFAULT),
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
        observed = float(lam.min() if side == "min" else lam.max())  # type: ignore[arg-type]
        beyond = observed < default * (1 - tol) if side == "min" else observed > default * (1 + tol)
        if not beyond:
            out.append((side, default, "default"))
        if observed > 0 and abs(observed - default) > tol * default:
            out.append((side, observed, "observed"))
    return out


def _merge_equal_clamps(
    candidates: list[tuple[str, float, str]], rules: FlagRules
) -> list[tuple[str, float, str]]:
    """A min and a max bound that are the same price (a sweep that fixed λ_p) are one
    clamp, reported once."""
    out: list[tuple[str, float, str]] = []
    for side, bound, source in candidates:
        same = next(
            (
                i
                for i, (s, b, src) in enumerate(out)
                if s in ("min", "max")
                and s != side
                and "observed" not in (src, source)
                and abs(b - bound) <= rules.lambda_rel_tol * max(abs(b), abs(bound))
            ),
            None,
        )
        if same is None:
            out.append((side, bound, source))
        else:
            out[same] = ("min = max", out[same][1], out[same][2])
    return out


def _rule_lambda(
    run: Run, econ: pl.DataFrame, judged_from: int, rules: FlagRules
) -> list[dict[str, Any]]:
    """Candidates come from the whole economic phase (λ_p's full range), judgement only
    from `judged_from` on (after the grace period)."""
    judged = econ.filter(pl.col("step") >= judged_from)
    if judged.is_empty():
        return []
    target = _target_k(run, econ)
    found = []
    for side, bound, source in _merge_equal_clamps(_lambda_candidates(run, econ, rules), rules):
        if bound <= 0:
            continue
        c = pl.col("lambda_p")
        cond = c.is_finite().fill_null(False) & ((c - bound).abs() <= rules.lambda_rel_tol * bound)
        push = ""
        if source == "observed":
            if target is None:
                continue
            limit = rules.lambda_push_rel * target
            err = pl.col("ctrl_err")
            cond = cond & (err > limit if side == "max" else err < -limit).fill_null(False)
            push = (
                f"; CTRL_ERR {'>' if side == 'max' else '<'} {'+' if side == 'max' else '−'}"
                f"{limit:.2f} there, so the controller is pushing against it"
            )
        flagged = _sustained(judged, cond, rules.lambda_sustain)
        if flagged.is_empty():
            continue
        where = "its min and max clamp (the same)" if side == "min = max" else f"its {side} clamp"
        evidence = (
            f"λ_p at {where} {bound:.2e} ({source} bound) on {flagged.height} "
            f"economic-phase steps ({_episodes_text(flagged)}){push}"
        )
        found.append(
            _finding(
                run,
                "lambda_pinned",
                evidence,
                bound,
                int(flagged["step"].min()),  # type: ignore[arg-type]
                int(flagged["step"].max()),  # type: ignore[arg-type]
                flagged.height,
            )
        )
    return found


def _rule_delta_ce(run: Run, quality: pl.DataFrame, rules: FlagRules) -> list[dict[str, Any]]:
    q = quality.filter(pl.col("delta_ce").is_finite().fill_null(False)).sort("step")
    if q.is_empty():
        return []
    flagged = _sustained(q, pl.col("delta_ce") < 0, rules.delta_ce_sustain)
    if flagged.is_empty():
        return []
    share = float((q["delta_ce"] < 0).mean())  # type: ignore[arg-type]
    evidence = (
        f"ΔCE < 0 on ≥ {rules.delta_ce_sustain.share:.0%} of quality lines over "
        f"{_episodes_text(flagged)}; {share:.0%} negative over the whole economic phase"
    )
    return [
        _finding(
            run,
            "delta_ce_negative",
            evidence,
            share,
            int(flagged["step"].min()),  # type: ignore[arg-type]
            int(flagged["step"].max()),  # type: ignore[arg-type]
            flagged.height,
        )
    ]


_TRACE_RULES = (
    ("gate_not_stopping", NOT_STOPPING),
    ("gate_over_penalized", OVER_PENALIZED),
    ("gate_stuck_half", STUCK_HALF),
)


def _rule_traces(run: Run, traces: pl.DataFrame, rules: FlagRules) -> list[dict[str, Any]]:
    """Trace-shape rules: a layer shows the shape at N consecutive checkpoints."""
    if traces.is_empty():
        return []
    t = classify_traces(traces, rules.patterns).filter(pl.col("pattern").is_not_null())
    if t.is_empty():
        return []
    t = t.sort("layer", "step").with_columns(
        _is_last=pl.col("step") == pl.col("step").max().over("layer")
    )
    found = []
    for rule, pattern in _TRACE_RULES:
        hit = pl.col("pattern") == pattern
        streaks = (
            t.with_columns(_hit=hit, _grp=(~hit).cum_sum().over("layer"))
            .filter(pl.col("_hit"))
            .with_columns(_len=pl.len().over("layer", "_grp"))
            .filter(pl.col("_len") >= rules.trace_min_consecutive)
        )
        if streaks.is_empty():
            continue
        share = float((t["pattern"] == pattern).mean())  # type: ignore[arg-type]
        layers = sorted(set(streaks["layer"].to_list()))
        ongoing = bool(streaks["_is_last"].any())
        example = streaks.sort("step").row(0, named=True)["s_trace"]
        ex = "[" + ", ".join(f"{v:.2f}" for v in example) + "]"
        evidence = (
            f"{'layers' if len(layers) > 1 else 'layer'} {', '.join(map(str, layers))} "
            f"{'show' if len(layers) > 1 else 'shows'} it at "
            f"≥ {rules.trace_min_consecutive} consecutive checkpoints, steps "
            f"{streaks['step'].min()}–{streaks['step'].max()} (e.g. {ex}); "
            f"{share:.0%} of judged economic-phase traces; "
            + ("still present at the last checkpoint" if ongoing else "recovered later")
        )
        found.append(
            _finding(
                run,
                rule,
                evidence,
                share,
                int(streaks["step"].min()),  # type: ignore[arg-type]
                int(streaks["step"].max()),  # type: ignore[arg-type]
                streaks["step"].n_unique(),
                severity=CRITICAL if ongoing else WARNING,
            )
        )
    return found


def _rule_events(run: Run) -> list[dict[str, Any]]:
    found = []
    ev = run.events
    meta = run.meta or {}
    resume_steps = [int(s) for s in (meta.get("resume_steps") or []) if s is not None]
    restarts = int(meta.get("restarts") or 0)
    if not restarts and not resume_steps and ev.height:
        resume_steps = [
            int(s)
            for s in ev.filter(
                (pl.col("kind") == "resume")
                & pl.col("text").str.contains("Resuming from step", literal=True)
            )["step"]
            .drop_nulls()
            .to_list()
        ]
    restarts = max(restarts, len(resume_steps))
    if restarts:
        where = ""
        if resume_steps:
            plural = "s" if len(resume_steps) > 1 else ""
            where = f" from step{plural} " + ", ".join(map(str, resume_steps))
        found.append(
            _finding(
                run,
                "restarts",
                f"resumed {restarts} time{'s' if restarts > 1 else ''}{where}",
                restarts,
                min(resume_steps) if resume_steps else None,
                max(resume_steps) if resume_steps else None,
                restarts,
            )
        )
    if ev.height:
        tb = ev.filter(
            (pl.col("kind") == "traceback")
            & pl.col("text").str.starts_with("Traceback (most recent call last)")
        )
        if tb.height:
            exc = ev.filter(
                (pl.col("kind") == "traceback")
                & pl.col("text").str.contains(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt)\b")
            )
            last_exc = f"; last: {exc['text'][-1].strip()[:120]}" if exc.height else ""
            steps = tb["step"].drop_nulls()
            # Training that went on past the last traceback recovered (a resume): info.
            last = run.last_step
            recovered = bool(steps.len()) and last is not None and int(steps.max()) < last  # type: ignore[arg-type]
            found.append(
                _finding(
                    run,
                    "traceback",
                    f"{tb.height} traceback{'s' if tb.height > 1 else ''} in the log{last_exc}"
                    + ("; training continued afterwards" if recovered else ""),
                    tb.height,
                    int(steps.min()) if steps.len() else None,  # type: ignore[arg-type]
                    int(steps.max()) if steps.len() else None,  # type: ignore[arg-type]
                    tb.height,
                    severity=INFO if recovered else None,
                )
            )
        fails = ev.filter(pl.col("kind").is_in(["json_dump_failed", "generation_failed"]))
        if fails.height:
            kinds = fails["kind"].value_counts(sort=True)
            what = ", ".join(f"{k.replace('_', ' ')} ×{n}" for k, n in kinds.iter_rows())
            steps = fails["step"].drop_nulls()
            found.append(
                _finding(
                    run,
                    "trainer_errors",
                    what,
                    fails.height,
                    int(steps.min()) if steps.len() else None,  # type: ignore[arg-type]
                    int(steps.max()) if steps.len() else None,  # type: ignore[arg-type]
                    fails.height,
                )
            )
    if run.problems.height:
        reasons = run.problems["reason"].fill_null("unknown").value_counts(sort=True)
        what = ", ".join(f"{r} ×{n}" for r, n in reasons.iter_rows())
        first_line = run.problems["line_no"].min()
        found.append(
            _finding(
                run,
                "log_problems",
                f"{run.problems.height} lines did not parse ({what}); first at line {first_line}",
                run.problems.height,
                None,
                None,
                run.problems.height,
            )
        )
    if meta.get("truncated"):
        found.append(
            _finding(run, "log_truncated", "the last line has no line ending", 1.0, run.last_step)
        )
    return found


def _rule_deadband(
    run: Run, steps: pl.DataFrame, econ_row: dict[str, Any] | None, rules: FlagRules
) -> list[dict[str, Any]]:
    if econ_row is None:
        return []
    length = int(econ_row["end"]) - int(econ_row["start"]) + 1
    if length < rules.deadband_expect_within:
        return []
    engaged = (run.meta or {}).get("deadband_step") is not None
    engaged = engaged or bool(run.events.height and (run.events["kind"] == "deadband").any())
    engaged = engaged or bool(steps.height and steps["deadband_active"].fill_null(False).any())
    if engaged:
        return []
    evidence = f"no [DB] in {length} economic-phase steps ({econ_row['start']}–{econ_row['end']})"
    return [
        _finding(
            run,
            "no_deadband",
            evidence,
            length,
            int(econ_row["start"]),
            int(econ_row["end"]),
            length,
        )
    ]


# ---------------------------------------------------------------- entry points


def _sort(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(
        pl.col("run"),
        pl.col("severity").replace_strict(SEVERITIES, [0, 1, 2], default=3),
        pl.col("first_step"),
        pl.col("rule"),
        nulls_last=True,
    )


def red_flags(
    run: Run, rules: FlagRules = DEFAULT, phases_df: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Every rule's finding for one run (typed; empty when nothing is wrong).

    `phases_df` lets the caller apply user phase overrides; by default phases are detected.
    Sorted by severity (critical first), then first step.
    """
    if phases_df is None:
        phases_df = phases(run)
    steps = run.steps.sort("step") if run.steps.height else run.steps
    econ = _phase_steps(run, phases_df, ["economic"])
    after_force = _phase_steps(run, phases_df, ["gate_learning", "economic"])
    econ_rows = phases_df.filter(pl.col("phase") == "economic")
    econ_row = econ_rows.row(0, named=True) if econ_rows.height else None

    found: list[dict[str, Any]] = []
    found += _rule_nonfinite(run, steps, rules)
    found += _threshold_rule(
        run,
        "grad_sustained",
        steps,
        "grad_norm",
        rules.grad_max,
        rules.grad_sustain,
        "GRAD",
        ".2f",
    )
    found += _threshold_rule(
        run,
        "p_near_clamp_high",
        econ,
        "p_near_clamp",
        rules.p_near_clamp_max,
        rules.p_near_clamp_sustain,
        "P_NR",
        ".1%",
    )
    found += _threshold_rule(
        run, "aux_high", steps, "aux_loss", rules.aux_max, rules.aux_sustain, "AUX", ".4f"
    )
    found += _threshold_rule(
        run, "gap_high", after_force, "avg_gap", rules.gap_max, rules.gap_sustain, "gap", ".2f"
    )
    found += _rule_lm(run, steps, rules)
    found += _rule_tps(run, steps, rules)
    if econ_row is not None:
        judged_from = int(econ_row["start"]) + rules.economic_grace_steps
        found += _rule_lambda(run, econ, judged_from, rules)
    if econ_row is not None:
        q = assign_phase(run.quality, phases_df).filter(pl.col("phase") == "economic")
        found += _rule_delta_ce(run, q, rules)
        judged_from = int(econ_row["start"]) + rules.economic_grace_steps
        tr = assign_phase(policy_traces(run), phases_df).filter(
            (pl.col("phase") == "economic") & (pl.col("step") >= judged_from)
        )
        found += _rule_traces(run, tr, rules)
    found += _rule_deadband(run, steps, econ_row, rules)
    found += _rule_events(run)
    if not found:
        return _empty()
    return _sort(pl.DataFrame(found, schema=FINDINGS_SCHEMA))


def red_flags_many(
    runs: Iterable[Run],
    rules: FlagRules = DEFAULT,
    phase_overrides: dict[str, dict[str, Any]] | None = None,
) -> pl.DataFrame:
    """Findings of several runs in one table (`phase_overrides` keyed by run name)."""
    frames = []
    for run in runs:
        ov = (phase_overrides or {}).get(run.name)
        frames.append(red_flags(run, rules, phases(run, ov) if ov else None))
    frames = [f for f in frames if f.height]
    return _sort(pl.concat(frames)) if frames else _empty()


def counts(findings: pl.DataFrame) -> dict[str, int]:
    """Findings per severity (every severity present as a key), for badges and tables."""
    out = dict.fromkeys(SEVERITIES, 0)
    for sev, n in findings.group_by("severity").len().iter_rows():
        out[sev] = int(n)
    return out
