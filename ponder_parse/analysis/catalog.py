"""What every logged number means: one table for help texts, chart lines and red-flag rules.

The guide to the logs describes each field once (meaning, healthy range, trouble
threshold). Keeping that knowledge in a single table means the help text a user reads,
the fixed reference lines on a chart agree. Trouble thresholds are not here: each belongs
to the red-flag rule that fires on it (`red_flags.rules`), which also draws it on the
chart (`red_flags.reference_lines`), so a line and a finding never disagree.

Units: percentages in the log are stored as fractions (`P_NR: 3.2%` is 0.032), so every
"fraction" metric is formatted with a percent format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ponder_parse.formatting import fmt
from ponder_parse.run import Run, TableCounts

LEVEL_TITLES: dict[int, str] = {
    1: "Step line",
    2: "Per-layer stats",
    3: "Survival trace",
    4: "Recurrence quality",
}
"""The guide's four logging levels (1 every step, 2 every 10, 3 every 50, 4 after ponder start)."""

TABLE_LEVELS: dict[str, int] = {"steps": 1, "layers": 2, "traces": 3, "quality": 4}

# The trainer's default λ_p clamp. Sweeps can change it, so rules that use it accept overrides.
LAMBDA_MIN_DEFAULT = 1e-4
LAMBDA_MAX_DEFAULT = 5e-2


@dataclass(frozen=True)
class Metric:
    """One logged quantity, described the way the guide describes it.

    `healthy_low`/`healthy_high` bound the normal range (either may be open; only where it
    holds for every trainer build: GRAD's and AUX's level depend on the model). `higher_is_better` is
    `None` where direction is not a quality judgement (learning rate, λ_p, entropy).
    `reference` holds extra fixed lines worth drawing (zero lines, clamps). `fmt` is a
    Python format spec for a single value.
    """

    column: str
    table: str
    label: str
    level: int
    group: str
    meaning: str
    unit: str
    healthy_low: float | None = None
    healthy_high: float | None = None
    higher_is_better: bool | None = None
    log_scale: bool = False
    fmt: str = ".4f"
    healthy_text: str = ""
    reference: tuple[tuple[float, str], ...] = ()

    @property
    def key(self) -> str:
        """Unique id across tables (`lambda_p` exists in both steps and layers)."""
        return f"{self.table}.{self.column}"

    @property
    def numeric(self) -> bool:
        """Whether the column can be plotted as a line (flags and labels cannot)."""
        return self.unit not in ("flag", "label")

    def format(self, value: float | None) -> str:
        """Format a value the way the log prints it, tolerating None/NaN."""
        return fmt(value, self.fmt)

    def help(self) -> str:
        """One-paragraph help text for tooltips: meaning plus what healthy looks like."""
        parts = [f"**{self.label}** — {self.meaning}"]
        if self.healthy_text:
            parts.append(f"Healthy: {self.healthy_text}.")
        return " ".join(parts)


def _m(
    column: str, table: str, label: str, group: str, meaning: str, unit: str, **kw: Any
) -> Metric:
    return Metric(
        column=column,
        table=table,
        label=label,
        level=TABLE_LEVELS[table],
        group=group,
        meaning=meaning,
        unit=unit,
        **kw,
    )


_LAMBDA_CLAMP = (
    (LAMBDA_MIN_DEFAULT, "λ_p clamp min (default)"),
    (LAMBDA_MAX_DEFAULT, "λ_p clamp max (default)"),
)

METRICS: tuple[Metric, ...] = (
    # ---- Level 1: step line — losses
    _m(
        "tot_loss",
        "steps",
        "TOT",
        "Losses",
        "Total loss = LM + 0.3×MTP + aux + ponder.",
        "nats",
        higher_is_better=False,
        healthy_text="decreasing over time",
    ),
    _m(
        "lm_loss",
        "steps",
        "LM",
        "Losses",
        "Next-token prediction loss (cross-entropy); the primary metric.",
        "nats",
        higher_is_better=False,
        healthy_text="about 5 → 2.5 in early training",
    ),
    _m(
        "mtp_loss",
        "steps",
        "MTP",
        "Losses",
        "Multi-token prediction loss (model3b only).",
        "nats",
        higher_is_better=False,
        healthy_text="tracks LM roughly",
    ),
    _m(
        "aux_loss",
        "steps",
        "AUX",
        "Losses",
        "MoE router auxiliary loss (expert load balancing; model3b only).",
        "nats",
        higher_is_better=False,
        healthy_text="steady at the level of the MoE set-up (the guide's about 0.001–0.05; "
        "real model3b runs 0.3–0.8); trouble is a sustained rise far above it",
        fmt=".4f",
    ),
    _m(
        "total_ponder",
        "steps",
        "PONDER",
        "Losses",
        "Net compute tax after the coupon deduction (RAW − RWD).",
        "loss",
        higher_is_better=False,
        log_scale=True,
        fmt=".6f",
        healthy_text="small; near 0 is fine",
    ),
    _m(
        "ponder_raw",
        "steps",
        "RAW",
        "Losses",
        "Ponder cost before the coupon: the raw compute-cost signal.",
        "loss",
        higher_is_better=False,
        fmt=".6f",
    ),
    _m(
        "reward",
        "steps",
        "RWD",
        "Losses",
        "Coupon = η × ΔCE, rewarded for useful recurrence.",
        "loss",
        higher_is_better=True,
        fmt=".6f",
        healthy_text="higher = recurrence helping",
    ),
    _m(
        "pl_lm",
        "steps",
        "PL/LM",
        "Losses",
        "Ponder loss as a share of LM loss: the compute overhead.",
        "fraction",
        healthy_low=0.0,
        healthy_high=0.05,
        higher_is_better=False,
        fmt=".2%",
        healthy_text="below 5%",
    ),
    # ---- Level 1: step line — optimisation
    _m(
        "lr",
        "steps",
        "LR",
        "Optimisation",
        "Learning rate (linear warmup, then cosine decay).",
        "lr",
        log_scale=True,
        fmt=".2e",
        healthy_text="0 → 3e-4 → 3e-5 (trainer default)",
        reference=((3e-4, "peak LR (default)"), (3e-5, "final LR (default)")),
    ),
    _m(
        "grad_norm",
        "steps",
        "GRAD",
        "Optimisation",
        "Gradient norm before clipping (the trainer prints what clip_grad_norm_(…, 1.0) "
        "returns: above 1.0 the update was clipped); spikes mean instability.",
        "norm",
        higher_is_better=False,
        healthy_text="steady at the model's own level (textbook 0.3–0.9; real model3b runs "
        "median 2.5 at D=512, 1.6 at D=768); trouble is a sustained rise far above it",
    ),
    _m(
        "baton",
        "steps",
        "BATON",
        "Optimisation",
        "Baton ratio reported by the smollm model (smollm only).",
        "ratio",
        fmt=".3f",
    ),
    _m(
        "baton_lam",
        "steps",
        "BATON lam",
        "Optimisation",
        "Mean λ reported next to the baton ratio (smollm only).",
        "ratio",
        fmt=".3f",
    ),
    # ---- Level 1: step line — controller
    _m(
        "lambda_p",
        "steps",
        "λ_p",
        "Controller",
        "Compute price: cost per extra recurrence pass (controller state).",
        "price",
        log_scale=True,
        fmt=".2e",
        healthy_text="rises until the model stops over-pondering",
        reference=_LAMBDA_CLAMP,
    ),
    _m(
        "deadband_active",
        "steps",
        "[DB]",
        "Controller",
        "Deadband engaged: λ_p stabilised, asymmetric control active.",
        "flag",
        higher_is_better=True,
        fmt="",
        healthy_text="appearing means training is stable",
    ),
    _m(
        "ctrl_err",
        "steps",
        "CTRL_ERR",
        "Controller",
        "avg_k − TARGET_K: distance from the target depth.",
        "passes",
        fmt="+.3f",
        healthy_text="trends toward 0",
        reference=((0.0, "on target"),),
    ),
    _m(
        "p_near_clamp",
        "steps",
        "P_NR",
        "Controller",
        "Share of gate values near the lower clamp (≤ 0.05): absorbing-state risk.",
        "fraction",
        higher_is_better=False,
        fmt=".1%",
        healthy_text="low; a sustained high share in the economic phase is a red flag",
    ),
    _m(
        "avg_exec",
        "steps",
        "AVGS exec",
        "Controller",
        "Passes actually run, averaged across layers.",
        "passes",
        fmt=".2f",
    ),
    _m(
        "avg_k",
        "steps",
        "AVGS k",
        "Controller",
        "Expected (soft) depth averaged across layers.",
        "passes",
        fmt=".2f",
        healthy_text="near TARGET_K",
    ),
    _m(
        "avg_gap",
        "steps",
        "AVGS gap",
        "Controller",
        "exec − k: passes run minus their soft weight, Σ (1 − s) over the passes that ran.",
        "passes",
        higher_is_better=False,
        fmt=".2f",
        healthy_text="near 0 when passes run only at high survival; a halting threshold of "
        "0.10 lets a pass run down to 10% survival, so real runs show 0.7–2",
        reference=((0.0, "no gap"),),
    ),
    _m(
        "audit",
        "steps",
        "[AUDIT]",
        "Controller",
        "Counterfactual step forced to k=2; λ_p does not update on it.",
        "flag",
        fmt="",
    ),
    # ---- Level 1: step line — throughput
    _m(
        "dt_ms",
        "steps",
        "dt",
        "Throughput",
        "Step time.",
        "ms",
        higher_is_better=False,
        fmt=".2f",
        healthy_text="hardware dependent",
    ),
    _m(
        "tok_per_sec",
        "steps",
        "tok/sec",
        "Throughput",
        "Token throughput.",
        "tokens/s",
        higher_is_better=True,
        fmt=".2f",
        healthy_text="higher is better; a sudden drop suggests memory pressure",
    ),
    # ---- Level 2: per-layer stats
    _m(
        "k_exec",
        "layers",
        "k_exec",
        "Depth",
        "Most recurrence passes any token ran in this layer (1 = none, Kmax = max).",
        "passes",
        fmt="d",
    ),
    _m(
        "k",
        "layers",
        "expected_k",
        "Depth",
        "Soft average depth, weighted by survival probability.",
        "passes",
        fmt=".2f",
        healthy_text="near TARGET_K",
    ),
    _m(
        "s_final",
        "layers",
        "s_fin",
        "Depth",
        "Mean survival probability after all passes.",
        "probability",
        higher_is_better=False,
        fmt=".3f",
        healthy_text="near 0 = stopped cleanly",
    ),
    _m(
        "avg_exec_token",
        "layers",
        "tok avg",
        "Depth",
        "Average passes per token across the batch.",
        "passes",
        fmt=".2f",
        healthy_text="near expected_k",
    ),
    _m(
        "p95_exec_token",
        "layers",
        "tok p95",
        "Depth",
        "95th percentile of passes per token: how deep the hard tokens go.",
        "passes",
        fmt=".2f",
    ),
    _m(
        "frac_ge2",
        "layers",
        "tail ≥2",
        "Depth",
        "Share of tokens that needed 2 or more passes.",
        "fraction",
        fmt=".2%",
    ),
    _m(
        "frac_ge3",
        "layers",
        "tail ≥3",
        "Depth",
        "Share of tokens that needed 3 or more passes.",
        "fraction",
        fmt=".2%",
    ),
    _m(
        "frac_ge4",
        "layers",
        "tail ≥4",
        "Depth",
        "Share of tokens that needed 4 or more passes.",
        "fraction",
        higher_is_better=False,
        fmt=".2%",
        healthy_text="low; high = not learning to stop",
    ),
    _m(
        "ent",
        "layers",
        "ent",
        "Gate",
        "Attention entropy: low = focused, high = diffuse.",
        "nats",
        fmt=".4f",
    ),
    _m(
        "p_mean",
        "layers",
        "p_mu",
        "Gate",
        "Mean gate probability at k=1 (willingness to continue).",
        "probability",
        higher_is_better=False,
        fmt=".2f",
        healthy_text="decreases as training progresses",
    ),
    _m(
        "p_std",
        "layers",
        "p_std",
        "Gate",
        "Spread of gate values across tokens.",
        "probability",
        higher_is_better=True,
        fmt=".3f",
        healthy_text="higher = more token-specific decisions",
    ),
    _m(
        "d_rel",
        "layers",
        "d_rel",
        "Gate",
        "Relative update norm ‖Δh‖/‖h‖: how much the state changes.",
        "ratio",
        fmt=".3f",
        healthy_text="above 0; near 0 = recurrence not doing work",
    ),
    _m(
        "h_diff",
        "layers",
        "Δh",
        "Gate",
        "Mean gated state delta across passes ‖s·Δh‖/‖h‖: effective compute used.",
        "ratio",
        fmt=".3f",
    ),
    _m(
        "p_diff",
        "layers",
        "Δp",
        "Gate",
        "p₂ − p₁: how much the gate changes between passes.",
        "probability",
        higher_is_better=False,
        fmt=".2f",
        healthy_text="negative = learning to stop after k=1",
        reference=((0.0, "no change"),),
    ),
    _m(
        "ponder_signal",
        "layers",
        "ponder",
        "Gate",
        "Combined ponder signal (0–1, before λ_p scaling).",
        "signal",
        fmt=".3f",
    ),
    _m(
        "lambda_p",
        "layers",
        "λ_p (applied)",
        "Gate",
        "Compute price applied in this layer (0 before the ponder phase).",
        "price",
        log_scale=True,
        fmt=".2e",
        reference=_LAMBDA_CLAMP,
    ),
    # ---- Level 3: survival trace
    _m(
        "s_trace",
        "traces",
        "s_trace",
        "Survival",
        "Survival probability entering each pass [s_k=1, …, s_k=Kmax]; starts at 1.",
        "probability",
        fmt=".2f",
        healthy_text="sharp drop after k=1–2, ending near 0",
    ),
    # ---- Level 4: recurrence quality
    _m(
        "delta_ce",
        "quality",
        "ΔCE",
        "Recurrence quality",
        "CE₁ − CE₂: loss improvement from k=1 to k=2+ (positive = recurrence helped).",
        "nats",
        healthy_low=0.0,
        higher_is_better=True,
        fmt=".6f",
        healthy_text="positive",
        reference=((0.0, "no effect"),),
    ),
    _m(
        "delta_h",
        "quality",
        "ΔH",
        "Recurrence quality",
        "Entropy change between pass 1 and the final pass (negative = more confident).",
        "nats",
        healthy_high=0.0,
        higher_is_better=False,
        fmt=".4f",
        healthy_text="negative",
        reference=((0.0, "no change"),),
    ),
    _m(
        "coupon",
        "quality",
        "COUPON",
        "Recurrence quality",
        "η × ΔCE reward subtracted from the ponder penalty.",
        "loss",
        higher_is_better=True,
        fmt=".6f",
    ),
    _m(
        "status",
        "quality",
        "status",
        "Recurrence quality",
        "ECONOMIC WIN / TAX ONLY on policy steps, AUDIT-POS / AUDIT-NEG on audit steps.",
        "label",
        fmt="",
    ),
    _m(
        "confidence",
        "quality",
        "CONFIDENCE+",
        "Recurrence quality",
        "ΔCE > 0 and ΔH < 0 on a policy step: the strongest sign recurrence is useful.",
        "flag",
        higher_is_better=True,
        fmt="",
    ),
)

_BY_KEY: dict[tuple[str, str], Metric] = {(m.table, m.column): m for m in METRICS}


def metric(column: str, table: str = "steps") -> Metric:
    """Look a metric up; `KeyError` names the table so a typo is easy to spot."""
    try:
        return _BY_KEY[(table, column)]
    except KeyError:
        raise KeyError(f"no metric {column!r} in table {table!r}") from None


def find(column: str) -> Metric | None:
    """First metric with this column name in any table (steps first), for loose lookups."""
    for table in ("steps", "layers", "quality", "traces"):
        if (table, column) in _BY_KEY:
            return _BY_KEY[(table, column)]
    return None


def metrics_for(table: str, numeric_only: bool = False) -> list[Metric]:
    """Metrics of one table in the guide's order (charts usually want `numeric_only`)."""
    return [m for m in METRICS if m.table == table and (m.numeric or not numeric_only)]


def levels() -> dict[int, list[Metric]]:
    """Metrics by the guide's logging level (1 step line, 2 per-layer, 3 trace, 4 quality)."""
    out: dict[int, list[Metric]] = {lvl: [] for lvl in LEVEL_TITLES}
    for m in METRICS:
        out[m.level].append(m)
    return out


def groups(numeric_only: bool = True) -> dict[str, list[Metric]]:
    """Metrics grouped for a grouped multiselect: "Level title · sub-group" → metrics.

    The order follows the guide (levels first, then the order fields appear on the line),
    so the picker reads like the log.
    """
    out: dict[str, list[Metric]] = {}
    for m in METRICS:
        if numeric_only and not m.numeric:
            continue
        out.setdefault(f"{LEVEL_TITLES[m.level]} · {m.group}", []).append(m)
    return out


def option_label(m: Metric) -> str:
    """Label for a picker: the log's own field name plus the column it lands in."""
    return m.label if m.label == m.column else f"{m.label} ({m.column})"


TARGET_K_METRICS: frozenset[tuple[str, str]] = frozenset(
    {("steps", "avg_k"), ("steps", "avg_exec"), ("layers", "k"), ("layers", "avg_exec_token")}
)
"""(table, column) of the depth metrics a run's TARGET_K is drawn on."""

_CLAMP_KEYS: tuple[tuple[str, str], ...] = (("lambda_min", "λ_p min"), ("lambda_max", "λ_p max"))


def run_reference_lines(run: Run, column: str, table: str = "steps") -> list[tuple[float, str]]:
    """Reference lines that belong to one run: its own TARGET_K on the depth metrics, and
    the λ_p clamps its configuration sets on λ_p (the defaults are drawn for every run by
    `reference_lines`). A value that cannot be read as a number is not drawn."""
    out: list[tuple[float, str]] = []
    if (table, column) in TARGET_K_METRICS:
        target = _as_float((run.meta or {}).get("target_k"))
        if target is not None:
            out.append((target, f"TARGET_K {target:.2f}"))
    if column == "lambda_p":
        for key, label in _CLAMP_KEYS:
            value = _as_float((run.hparams or {}).get(key))
            if value is not None and value > 0:
                out.append((value, f"{label} {value:.2e}"))
    return out


def _as_float(v: object) -> float | None:
    if not isinstance(v, int | float | str) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except ValueError:
        return None
    return f if f == f and abs(f) != float("inf") else None


def reference_lines(
    column: str, table: str = "steps", target_k: float | None = None
) -> list[tuple[float, str]]:
    """Fixed horizontal lines worth drawing on a chart of `column`: value and label.

    Healthy-range bounds and fixed references; the red-flag thresholds are added by
    `red_flags.reference_lines`, from the settings the rules run with.
    Depth metrics get a TARGET_K line only when the caller knows the run's target, because
    TARGET_K differs between trainers and sweeps and must never be assumed.
    """
    m = metric(column, table)
    lines: list[tuple[float, str]] = []
    if m.healthy_low is not None:
        lines.append((m.healthy_low, f"healthy ≥ {m.format(m.healthy_low)}"))
    if m.healthy_high is not None:
        lines.append((m.healthy_high, f"healthy ≤ {m.format(m.healthy_high)}"))
    lines.extend(m.reference)
    if target_k is not None and (table, column) in TARGET_K_METRICS:
        lines.append((float(target_k), f"TARGET_K {target_k:.2f}"))
    seen: set[float] = set()
    unique: list[tuple[float, str]] = []
    for value, label in lines:
        if value not in seen:
            seen.add(value)
            unique.append((value, label))
    return unique


FLAT_NOTE = "0 on every line: not computed by this build"
"""What a picker or chart says of a metric in `flat_metrics`."""

FLAT_MIN_LINES = 20
"""Lines a metric must be printed on before "0 on every line" means anything."""

ZERO_IS_DATA_UNITS: frozenset[str] = frozenset({"fraction"})
"""Units whose metrics can be 0 on every line and still be measured: a share of tokens or
steps (P_NR, the tails, PL/LM) can truly be 0 throughout; a loss, an entropy or a
difference computed on real data cannot."""

_PONDER_ONLY: frozenset[str] = frozenset(
    {"steps.total_ponder", "steps.ponder_raw", "steps.reward", "steps.pl_lm", "layers.lambda_p"}
)
"""Metrics that are 0 by design until the ponder start: flat only in a run that got there."""


def flat_metrics(
    run: Run,
    min_lines: int = FLAT_MIN_LINES,
    counts: Mapping[str, TableCounts] | None = None,
) -> frozenset[str]:
    """Keys (`steps.mtp_loss`, `layers.ent`) of the numeric metrics the run printed as 0 on
    every line: the one definition, for the `metric_flat` red flag and for pickers and
    charts.

    A trainer build that does not compute a value still prints it (`s.get('ent', 0)`), so
    the log shows a perfect flat 0 that looks like data. A metric counts when it was
    printed on at least `min_lines` lines and every printed value is exactly 0, except
    where 0 is data or design: shares (`ZERO_IS_DATA_UNITS`), and ponder costs in a run
    that never reached the ponder start (no RECURRENCE QUALITY line yet). A metric that is
    constant at another value (λ_p pinned at its floor) is measured, and not listed.
    Decided from the run's `column_counts` (or `counts`, the same computed once by a
    caller), so a stored run reads no table for it.
    """
    c = run.column_counts() if counts is None else counts
    reached_ponder = c["quality"]["rows"] > 0
    out: set[str] = set()
    for table in ("steps", "layers"):
        t = c[table]
        if t["rows"] < min_lines:
            continue
        out |= {
            m.key
            for m in metrics_for(table, numeric_only=True)
            if m.column in t["values"]
            and m.unit not in ZERO_IS_DATA_UNITS
            and (reached_ponder or m.key not in _PONDER_ONLY)
            and t["values"][m.column] >= max(min_lines, 1)
            and t["nonzero"][m.column] == 0
        }
    return frozenset(out)
