"""The machinery every red-flag rule shares: findings, "sustained", scopes, evaluation.

A rule (`Rule`) is data plus a check; the engine knows no rule by name. It builds the
run's scopes once (`Scope`: the phases' step ranges, the judged traces), hands each rule
its settings (`FlagRules`), turns the rule's `Finding`s into typed rows and sorts them.
A rule over the sweep (`SweepRule`) measures one number per run (`measure`, cacheable per
run) and flags the runs far from their peers (`sweep_evaluate`, a robust z-score). Both
kinds share one registry and one `FlagRules`; `setting_fields` / `replace_setting` let an
editor change any number of any rule's settings.

"Sustained" (`Sustain(window, share, min_rows)`): the condition holds on at least
`ceil(share × window)` (and at least `min_rows`) of some `window` consecutive *logged*
rows in scope; a scope with fewer rows than `window` is judged as one window of its own
length. The flagged steps are the rows meeting the condition inside such windows; rows
more than `window` apart start a new episode. Non-finite values never meet a threshold
condition (the `nonfinite` rule reports them instead).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import logging
import math
import statistics
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

import polars as pl

from ponder_parse.analysis.patterns import (
    PatternThresholds,
    classify_traces,
    policy_traces,
    run_kmax,
)
from ponder_parse.analysis.phases import assign_phase, phases
from ponder_parse.run import Run
from ponder_parse.schema import TableSchema, as_float, as_int

logger = logging.getLogger(__name__)

CRITICAL, WARNING, INFO = "critical", "warning", "info"
SEVERITIES: tuple[str, ...] = (CRITICAL, WARNING, INFO)

FINDINGS_SCHEMA: TableSchema = {
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

FAILED_ACTION = (
    "This check could not be evaluated on this run; the other rules' findings stand. "
    "Report the error together with the log."
)


def empty() -> pl.DataFrame:
    """A findings table with no rows (the typed answer for a run with nothing wrong)."""
    return pl.DataFrame(schema=FINDINGS_SCHEMA)


# ---------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """What a check reports; the engine adds the run, the rule's name and its action.

    `severity` stays None unless the finding is more or less urgent than the rule's own
    (a trace shape that recovered, a traceback the run survived); `action` likewise stays
    None unless this case needs advice of its own (which clamp λ_p is pinned at)."""

    evidence: str
    value: float | None
    first_step: int | None = None
    last_step: int | None = None
    n_steps: int | None = None
    severity: str | None = None
    action: str | None = None

    @classmethod
    def over(
        cls, flagged: pl.DataFrame, evidence: str, value: float, severity: str | None = None
    ) -> Finding:
        """A finding spanning the flagged rows, counting each as one step."""
        first, last = step_span(flagged)
        return cls(evidence, value, first, last, flagged.height, severity)


def step_span(df: pl.DataFrame) -> tuple[int, int]:
    """First and last step of a non-empty frame."""
    first, last = df.select(a=pl.col("step").min(), b=pl.col("step").max()).row(0)
    return as_int(first), as_int(last)


# ---------------------------------------------------------------- "sustained"


@dataclass(frozen=True)
class Sustain:
    """What "sustained" means for one rule (see the module docstring)."""

    window: int = 20
    """Consecutive logged rows looked at together."""
    share: float = 0.5
    """Fraction of the window that must meet the condition."""
    min_rows: int = 3
    """Never fewer rows than this, so a short run cannot fire on one spike."""


def above(column: str, threshold: float) -> pl.Expr:
    """`column > threshold` for finite values only (Polars orders NaN above everything)."""
    c = pl.col(column)
    return c.is_finite().fill_null(False) & (c > threshold)


def sustained(df: pl.DataFrame, cond: pl.Expr, s: Sustain) -> pl.DataFrame:
    """Rows of `df` (sorted by step) inside a sustained stretch, with an `_episode` id."""
    n = df.height
    if n == 0:
        return df.with_columns(_episode=pl.lit(0, dtype=pl.Int64)).clear()
    w = min(s.window, n)
    need = _need(s, n)
    d = df.with_columns(_c=cond.fill_null(False))
    # Fewer rows meeting the condition than a window needs: no window can be hot. Most
    # checks on a healthy run end here, without the rolling windows.
    if (d["_c"].sum() or 0) < need:
        return df.with_columns(_episode=pl.lit(0, dtype=pl.Int64)).clear()
    d = (
        d.with_row_index("_i")
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


def _need(s: Sustain, n: int) -> int:
    """Rows meeting the condition a window of a scope of `n` rows needs."""
    return max(s.min_rows, math.ceil(s.share * min(s.window, n) - 1e-9))


def sustained_by(
    df: pl.DataFrame, cond: pl.Expr, s: Sustain, by: str = "layer"
) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """`sustained` within each group of `by` (in order of appearance): the group's rows
    and its flagged rows, for the groups with any. Groups with too few rows meeting the
    condition are counted out in one pass instead of being cut out and judged one by one.
    """
    counts = (
        df.select(pl.col(by), _c=cond.fill_null(False))
        .group_by(by, maintain_order=True)
        .agg(n=pl.len(), hits=pl.col("_c").sum())
    )
    maybe = {key for key, n, hits in counts.iter_rows() if (hits or 0) >= _need(s, n)}
    out: list[tuple[pl.DataFrame, pl.DataFrame]] = []
    if not maybe:
        return out
    for (key,), group in df.group_by(by, maintain_order=True):
        if key in maybe:
            flagged = sustained(group, cond, s)
            if flagged.height:
                out.append((group, flagged))
    return out


def episodes_text(flagged: pl.DataFrame) -> str:
    """`steps 50–69, 300–319` for the episodes of a `sustained` result (three at most)."""
    spans = (
        flagged.group_by("_episode", maintain_order=True)
        .agg(a=pl.col("step").min(), b=pl.col("step").max())
        .sort("a")
    )
    parts = [f"{a}–{b}" if a != b else f"{a}" for a, b in spans.select("a", "b").iter_rows()]
    shown = ", ".join(parts[:3]) + (f", … ({len(parts)} episodes)" if len(parts) > 3 else "")
    return f"step{'s' if len(parts) > 1 or '–' in parts[0] else ''} {shown}"


@dataclass(frozen=True)
class Above:
    """Settings of a threshold rule: the value to exceed, and for how long."""

    threshold: float
    sustain: Sustain = Sustain()


def threshold_findings(
    df: pl.DataFrame, column: str, settings: Above, label: str, fmt: str
) -> list[Finding]:
    """`column > threshold`, sustained, as one finding headed by the worst value."""
    if df.is_empty() or column not in df.columns:
        return []
    flagged = sustained(df, above(column, settings.threshold), settings.sustain)
    if flagged.is_empty():
        return []
    worst = as_float(flagged.select(pl.col(column).max()).item())
    evidence = (
        f"{label} > {format(settings.threshold, fmt)} on {flagged.height} logged steps "
        f"({episodes_text(flagged)}); max {format(worst, fmt)}"
    )
    return [Finding.over(flagged, evidence, worst)]


@dataclass(frozen=True)
class Level:
    """Settings of a rule on a metric whose normal level depends on the model and the
    trainer build (GRAD printed before clipping, the MoE AUX loss): trouble is a sustained
    rise far above the run's own running level, or above an absolute level that no
    healthy run of the trainer reaches."""

    rel: float
    """Times the running level (median of the `baseline` logged rows before each row)."""
    abs_level: float | None = None
    """Sustained above this is trouble whatever the run's own level (None: relative only)."""
    baseline: int = 500
    """Logged rows the running level looks back on; a stretch shorter than half of it
    cannot raise its own reference."""
    min_baseline: int = 20
    """Rows needed before the running level counts (the first rows are judged only by
    `abs_level`)."""
    sustain: Sustain = Sustain()


def level_findings(
    df: pl.DataFrame, column: str, s: Level, label: str, fmt: str, severity: str | None = None
) -> tuple[pl.DataFrame, list[Finding]]:
    """`column` sustained above `rel` × its running level or above `abs_level`: the flagged
    rows (with `_ref`, the running level) and one finding headed by the worst value."""
    if df.is_empty() or column not in df.columns:
        return df.clear(), []
    c = pl.col(column)
    finite = pl.when(c.is_finite()).then(c)
    d = df.with_columns(_ref=finite.shift(1).rolling_median(s.baseline, min_samples=s.min_baseline))
    rel = c.is_finite().fill_null(False) & (c > s.rel * pl.col("_ref")).fill_null(False)
    cond = rel | above(column, s.abs_level) if s.abs_level is not None else rel
    flagged = sustained(d, cond, s.sustain)
    if flagged.is_empty():
        return flagged, []
    worst = as_float(flagged.select(c.max()).item())
    ref = flagged["_ref"].drop_nulls()
    level = f"; running level there {format(as_float(ref.median()), fmt)}" if ref.len() else ""
    limits = f"{s.rel:g}× its running level" + (
        f" or {format(s.abs_level, fmt)}" if s.abs_level is not None else ""
    )
    evidence = (
        f"{label} above {limits} on {flagged.height} logged steps "
        f"({episodes_text(flagged)}); max {format(worst, fmt)}{level}"
    )
    return flagged, [Finding.over(flagged, evidence, worst, severity)]


# ---------------------------------------------------------------- scopes


class Scope:
    """One run cut into the parts rules look at, each computed at most once per run."""

    def __init__(self, run: Run, phases_df: pl.DataFrame) -> None:
        self.run = run
        self.phases = phases_df
        self._judged_traces: dict[tuple[int, PatternThresholds], pl.DataFrame] = {}
        self._layer_lines: dict[tuple[str, ...], pl.DataFrame] = {}

    @cached_property
    def steps(self) -> pl.DataFrame:
        """Every logged step, in step order."""
        return self.run.steps.sort("step") if self.run.steps.height else self.run.steps

    @cached_property
    def _phased_steps(self) -> pl.DataFrame:
        return assign_phase(self.run.steps, self.phases)

    def phase_steps(self, names: Iterable[str]) -> pl.DataFrame:
        """Steps in the named phases, in step order."""
        wanted = list(set(names))
        return self._phased_steps.filter(pl.col("phase").is_in(wanted)).sort("step")

    @cached_property
    def phased_traces(self) -> pl.DataFrame:
        """The policy's trace checkpoints (`patterns.policy_traces`) with a `phase` column,
        in their own order; shared by the trace-shape and pass-survival rules."""
        return assign_phase(policy_traces(self.run), self.phases)

    @cached_property
    def _phased_layers(self) -> pl.DataFrame:
        layers = self.run.layers
        if "audit" in self.run.steps.columns and layers.height:
            audits = self.run.steps.filter(pl.col("audit").fill_null(False)).select("step")
            layers = layers.join(audits, on="step", how="anti")
        return assign_phase(layers, self.phases)

    @cached_property
    def economic(self) -> pl.DataFrame:
        """Steps of the economic phase (λ_p priced, the controller at work)."""
        return self.phase_steps(["economic"])

    @cached_property
    def after_force(self) -> pl.DataFrame:
        """Steps once layers are no longer forced to 2 passes."""
        return self.phase_steps(["gate_learning", "economic"])

    @cached_property
    def economic_span(self) -> tuple[int, int] | None:
        """First and last step of the economic phase; None when the run never got there."""
        rows = self.phases.filter(pl.col("phase") == "economic")
        if not rows.height:
            return None
        row = rows.row(0, named=True)
        return int(row["start"]), int(row["end"])

    def layer_lines(self, names: Iterable[str]) -> pl.DataFrame:
        """Layer lines in the named phases, audit steps left out (an audit forces every
        layer to k=2: `p_mu 1.0, p_std 0.5` there is no decision of the gate), sorted by
        layer and step, with a `phase` column."""
        key = tuple(sorted(set(names)))
        if key not in self._layer_lines:
            self._layer_lines[key] = self._phased_layers.filter(
                pl.col("phase").is_in(list(key))
            ).sort("layer", "step")
        return self._layer_lines[key]

    @cached_property
    def economic_quality(self) -> pl.DataFrame:
        """Quality lines of the economic phase."""
        return assign_phase(self.run.quality, self.phases).filter(pl.col("phase") == "economic")

    def judged_traces(self, grace_steps: int, patterns: PatternThresholds) -> pl.DataFrame:
        """Classified traces from `grace_steps` into the economic phase, sorted by layer and
        step, with `_is_last` marking each layer's last checkpoint; shared by the trace-shape
        rules, which classify the same checkpoints."""
        key = (grace_steps, patterns)
        if key not in self._judged_traces:
            self._judged_traces[key] = self._classify(grace_steps, patterns)
        return self._judged_traces[key]

    def _classify(self, grace_steps: int, patterns: PatternThresholds) -> pl.DataFrame:
        span = self.economic_span
        traces = self.run.traces.clear()
        if span is not None:
            judged_from = span[0] + grace_steps
            traces = self.phased_traces.filter(
                (pl.col("phase") == "economic") & (pl.col("step") >= judged_from)
            )
        if traces.is_empty():
            return traces
        # Read with the run's Kmax and layer lines: a cut-short trace is a gate that
        # stopped, not an undecided one (`patterns.classify_traces`).
        t = classify_traces(
            traces, patterns, kmax=run_kmax(self.run), layers=self.run.layers
        ).filter(pl.col("pattern").is_not_null())
        if t.is_empty():
            return t
        return t.sort("layer", "step").with_columns(
            _is_last=pl.col("step") == pl.col("step").max().over("layer")
        )


# ---------------------------------------------------------------- rules and registry

S = TypeVar("S")
T = TypeVar("T")
Check = Callable[[Scope, S], Sequence[Finding]]


@dataclass(frozen=True)
class RefLine:
    """A threshold of a rule drawn on a chart: the metric it sits on (`steps.grad_norm`),
    its value and what it says. Drawn from the settings the rule runs with, so a line on a
    chart and a finding never disagree."""

    metric: str
    value: float
    label: str


Lines = Callable[[S], Sequence[RefLine]]
RunLines = Callable[[S, Run], Sequence[RefLine]]


@dataclass(frozen=True)
class RuleInfo:
    """What every red flag says about itself, for the UI and the docs: its id, what it
    checks, how bad a finding is, where it looks, what `value` holds, what to do."""

    name: str
    title: str
    severity: str
    scope: str
    value: str
    action: str


@dataclass(frozen=True)
class Rule(RuleInfo, Generic[S]):
    """One red flag over a run: its `RuleInfo`, settings and the check itself.

    `metrics` are the catalog keys (`steps.grad_norm`) whose step line shows the evidence;
    empty for rules about the log file rather than a logged number."""

    settings: S
    check: Check[S] = field(repr=False)
    metrics: tuple[str, ...] = ()
    from_guide: bool = True
    lines: Lines[S] | None = field(default=None, repr=False)
    """The thresholds shared by every run, from the settings (`RefLine`s)."""
    run_lines: RunLines[S] | None = field(default=None, repr=False)
    """The thresholds relative to one run's own level (drawn in the run's colour)."""


# ---------------------------------------------------------------- rules over the sweep


@dataclass(frozen=True)
class Measure:
    """One run's value of a sweep rule's metric, and the steps it was taken over."""

    value: float
    first_step: int | None = None
    last_step: int | None = None
    n_steps: int | None = None


@dataclass(frozen=True)
class Outlier:
    """When a run's metric is far from its peers': a robust z-score against the median
    and MAD of the shown runs that share the `same` facts."""

    z: float = 3.5
    """|x − median| / (1.4826 × MAD) at least this (3.5: the usual cut for a modified
    z-score; a normal spread of seeds stays well below it)."""
    min_runs: int = 4
    """Peers needed (the run included) before a median and a MAD mean anything."""
    min_rel_diff: float = 0.05
    """And |x − median| at least this share of |median|, so runs that agree closely (a MAD
    near 0) are not told apart on a difference nobody would act on."""
    same: tuple[str, ...] = ("variant", "params")
    """Run facts peers must share (`PEER_FACTS`): a smollm run is no peer of a model3b one,
    nor a model of another size (its own LM, speed and depth) of this one."""
    min_length_share: float = 0.0
    """Compare only runs whose measure ends at least this share of the way to the group's
    median last step (0: any): a run stopped early is at an earlier point of training."""


PEER_FACTS: dict[str, str] = {"variant": "trainer", "params": "model size", "target_k": "TARGET_K"}
"""Facts a sweep rule can require peers to share, and how the evidence names them."""

OutlierT = TypeVar("OutlierT", bound=Outlier)
Measurer = Callable[[Scope, OutlierT], Measure | None]


@dataclass(frozen=True)
class SweepRule(RuleInfo, Generic[OutlierT]):
    """A red flag about a run relative to the other shown runs: `measure` reads one number
    per run, `check` compares it with the run's peers (see `Outlier`).

    `worse` says which side is trouble ("higher", "lower", or None for either); a run far
    out on the other side is reported as info; `metrics` as on `Rule`."""

    settings: OutlierT
    measure: Measurer[OutlierT] = field(repr=False)
    metrics: tuple[str, ...] = ()
    label: str = ""
    fmt: str = ".4f"
    worse: str | None = None
    from_guide: bool = False

    def check(self, measured: Sequence[RunMeasures], s: OutlierT) -> list[tuple[str, Finding]]:
        """(run, finding) for every run whose value is an outlier among its peers."""
        rows = [
            (m.run, tuple(m.facts.get(f) for f in s.same), m.values[self.name])
            for m in measured
            if self.name in m.values and math.isfinite(m.values[self.name].value)
        ]
        groups: dict[tuple[object, ...], list[tuple[str, Measure]]] = {}
        for run, key, value in rows:
            groups.setdefault(key, []).append((run, value))
        out: list[tuple[str, Finding]] = []
        for key, all_members in groups.items():
            ends = [m.last_step for _, m in all_members if m.last_step is not None]
            reach = s.min_length_share * statistics.median(ends) if ends else 0.0
            members = [(r, m) for r, m in all_members if (m.last_step or 0) >= reach]
            if len(members) < s.min_runs:
                continue
            values = [m.value for _, m in members]
            med = statistics.median(values)
            mad = statistics.median([abs(v - med) for v in values])
            scale = 1.4826 * mad
            for run, m in members:
                diff = m.value - med
                if abs(diff) < s.min_rel_diff * abs(med) or diff == 0:
                    continue
                z = diff / scale if scale > 0 else math.copysign(math.inf, diff)
                if abs(z) < s.z:
                    continue
                out.append((run, self._finding(m, med, mad, z, len(members), s, key)))
        return out

    def _finding(
        self,
        m: Measure,
        med: float,
        mad: float,
        z: float,
        n: int,
        s: OutlierT,
        key: tuple[object, ...],
    ) -> Finding:
        side = "higher" if z > 0 else "lower"
        shared = [f"{PEER_FACTS.get(f, f)} {fmt_fact(v)}" for f, v in zip(s.same, key, strict=True)]
        peers = f"{n} shown runs" + (f" with the same {', '.join(shared)}" if shared else "")
        zs = f"{z:+.1f}" if math.isfinite(z) else "∞ (the others agree exactly)"
        evidence = (
            f"{self.label} {format(m.value, self.fmt)}, {side} than the median "
            f"{format(med, self.fmt)} of {peers} (MAD {format(mad, self.fmt)}): robust z {zs}"
        )
        better = self.worse is not None and side != self.worse
        return Finding(
            evidence + ("; better than its peers" if better else ""),
            z,
            m.first_step,
            m.last_step,
            m.n_steps,
            severity=INFO if better else None,
        )


def fmt_fact(value: object) -> str:
    """A peer fact as evidence text (TARGET_K with two decimals, unknown as a dash)."""
    if value is None:
        return "—"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class RunMeasures:
    """One run's sweep-rule values and the facts its peers are chosen by; `errors` holds
    the rules whose measure raised on this run."""

    run: str
    facts: dict[str, object]
    values: dict[str, Measure]
    errors: dict[str, str] = field(default_factory=dict)


AnyRule = Rule[Any] | SweepRule[Any]


class Registry(Mapping[str, AnyRule]):
    """Rules by name, in the order they were registered (the order the UI lists them):
    rules over one run (`Rule`) and rules over the sweep (`SweepRule`) share one
    namespace, one settings object and one table."""

    def __init__(self) -> None:
        self._rules: dict[str, AnyRule] = {}

    def add(self, rule: AnyRule) -> AnyRule:
        if rule.name in self._rules:
            raise ValueError(f"rule {rule.name!r} is registered twice")
        if rule.severity not in SEVERITIES:
            raise ValueError(f"rule {rule.name!r}: unknown severity {rule.severity!r}")
        self._rules[rule.name] = rule
        return rule

    def rule(
        self,
        *,
        name: str,
        title: str,
        severity: str,
        scope: str,
        value: str,
        action: str,
        settings: S,
        metrics: tuple[str, ...] = (),
        from_guide: bool = True,
        lines: Lines[S] | None = None,
        run_lines: RunLines[S] | None = None,
    ) -> Callable[[Check[S]], Rule[S]]:
        """Register the decorated check as a rule: the one place a rule is written."""

        def register(check: Check[S]) -> Rule[S]:
            rule = Rule(
                name,
                title,
                severity,
                scope,
                value,
                action,
                settings,
                check,
                metrics,
                from_guide,
                lines,
                run_lines,
            )
            self.add(rule)
            return rule

        return register

    def sweep_rule(
        self,
        *,
        name: str,
        title: str,
        severity: str,
        scope: str,
        value: str,
        action: str,
        settings: OutlierT,
        label: str,
        fmt: str = ".4f",
        worse: str | None = None,
        metrics: tuple[str, ...] = (),
    ) -> Callable[[Measurer[OutlierT]], SweepRule[OutlierT]]:
        """Register the decorated measure as a rule over the sweep."""
        if worse not in (None, "higher", "lower"):
            raise ValueError(f"rule {name!r}: worse must be 'higher', 'lower' or None")

        def register(measure: Measurer[OutlierT]) -> SweepRule[OutlierT]:
            rule = SweepRule(
                name,
                title,
                severity,
                scope,
                value,
                action,
                settings,
                measure,
                metrics,
                label,
                fmt,
                worse,
            )
            self.add(rule)
            return rule

        return register

    @property
    def run_rules(self) -> list[Rule[Any]]:
        return [r for r in self._rules.values() if isinstance(r, Rule)]

    @property
    def sweep_rules(self) -> list[SweepRule[Any]]:
        return [r for r in self._rules.values() if isinstance(r, SweepRule)]

    def __getitem__(self, name: str) -> AnyRule:
        return self._rules[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)


class FlagRules:
    """Every rule's settings: its registered defaults, except those given by rule name.

    `FlagRules(grad_sustained=Level(5.0))` changes one rule. Hashable and comparable, so
    a cache can key on it."""

    def __init__(self, **settings: object) -> None:
        self._settings = dict(sorted(settings.items()))

    def of(self, rule: Rule[S] | SweepRule[Any]) -> Any:
        """The settings `rule` runs with."""
        given = self._settings.get(rule.name)
        if given is None:
            return rule.settings
        expected = type(rule.settings)
        if not isinstance(given, expected):
            raise TypeError(
                f"settings of {rule.name!r} must be {expected.__name__}, not {type(given).__name__}"
            )
        return given

    def with_settings(self, rule: AnyRule, settings: object) -> FlagRules:
        """These rules with `rule` running on `settings` (its defaults again when equal)."""
        rest: dict[str, object] = {k: v for k, v in self._settings.items() if k != rule.name}
        if settings != rule.settings:
            rest[rule.name] = settings
        return FlagRules(**rest)

    def without(self, name: str) -> FlagRules:
        """These rules with `name` back on its registered defaults."""
        return FlagRules(**{k: v for k, v in self._settings.items() if k != name})

    @property
    def names(self) -> frozenset[str]:
        """Rules whose settings differ from the registered defaults."""
        return frozenset(self._settings)

    @property
    def key(self) -> str:
        """A text naming every changed setting: equal rules, equal key (for caches that
        hash their arguments themselves, like Streamlit's)."""
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FlagRules) and self._settings == other._settings

    def __hash__(self) -> int:
        return hash(tuple(self._settings.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._settings.items())
        return f"FlagRules({inner})"


# ---------------------------------------------------------------- editable settings


@dataclass(frozen=True)
class SettingField:
    """One number in a rule's settings, as an editor shows it: `path` reaches into nested
    settings (`sustain.window`); `optional` numbers may be left empty (None)."""

    path: str
    label: str
    kind: type
    value: int | float | None
    optional: bool
    help: str


def _field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings under a settings dataclass's fields (and its bases'), so
    an editor's help text is the documentation already written next to each field."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef)), [])
        for node, after in zip(body, [*body[1:], None], strict=True):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


_DOCS: dict[type, dict[str, str]] = {}


def _number_kind(hint: object) -> tuple[type, bool] | None:
    """(int or float, optional) for a number annotation; None for anything else."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else ()
    optional = type(None) in args
    core = [a for a in args if a is not type(None)] if args else [hint]
    if len(core) == 1 and core[0] in (int, float):
        return core[0], optional
    return None


def setting_fields(settings: object, prefix: str = "") -> list[SettingField]:
    """Every number in `settings` (nested settings flattened), in declaration order."""
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        return []
    cls = type(settings)
    if cls not in _DOCS:
        _DOCS[cls] = _field_docs(cls)
    hints = typing.get_type_hints(cls)
    out: list[SettingField] = []
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out += setting_fields(value, f"{path}.")
            continue
        number = _number_kind(hints.get(f.name))
        if number is None or isinstance(value, bool):
            continue
        kind, optional = number
        label = path.replace(".", " · ").replace("_", " ")
        out.append(SettingField(path, label, kind, value, optional, _DOCS[cls].get(f.name, "")))
    return out


def replace_setting(settings: T, path: str, value: object) -> T:
    """`settings` with the number at `path` (as `setting_fields` names it) replaced."""
    head, _, rest = path.partition(".")
    if not dataclasses.is_dataclass(settings) or isinstance(settings, type):
        raise TypeError(f"{settings!r} has no settings to replace")
    names = {f.name for f in dataclasses.fields(settings)}
    if head not in names:
        raise KeyError(f"{type(settings).__name__} has no setting {head!r}")
    new = replace_setting(getattr(settings, head), rest, value) if rest else value
    return typing.cast(T, dataclasses.replace(typing.cast(Any, settings), **{head: new}))


# ---------------------------------------------------------------- evaluation


def _row(run: str, rule: AnyRule, f: Finding, action: str | None = None) -> dict[str, Any]:
    return {
        "run": run,
        "rule": rule.name,
        "severity": f.severity or rule.severity,
        "first_step": f.first_step,
        "last_step": f.last_step,
        "n_steps": f.n_steps,
        "evidence": f.evidence,
        "value": None if f.value is None else float(f.value),
        "action": action or f.action or rule.action,
    }


def _failed(run: Run, rule: Rule[Any], exc: Exception) -> dict[str, Any]:
    """A check that raises is reported as a warning of its own, so a bug in one rule (or a
    log it did not foresee) neither hides the other findings nor passes for a clean run."""
    logger.exception("red-flag rule %s failed on run %s", rule.name, run.name)
    evidence = f"the check failed: {type(exc).__name__}: {exc}"
    return _row(run.name, rule, Finding(evidence, None, severity=WARNING), FAILED_ACTION)


def sort_findings(df: pl.DataFrame) -> pl.DataFrame:
    """By run, then severity (critical first), first step and rule."""
    return df.sort(
        pl.col("run"),
        pl.col("severity").replace_strict(SEVERITIES, [0, 1, 2], default=3),
        pl.col("first_step"),
        pl.col("rule"),
        nulls_last=True,
    )


def _checked(rules: FlagRules | None, registry: Mapping[str, AnyRule]) -> FlagRules:
    rules = FlagRules() if rules is None else rules
    unknown = rules.names - set(registry)
    if unknown:
        raise ValueError(f"settings for unknown rules: {', '.join(sorted(unknown))}")
    return rules


def evaluate(
    run: Run,
    registry: Mapping[str, AnyRule],
    rules: FlagRules | None = None,
    phases_df: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Every registered rule's findings for one run (typed; empty when nothing is wrong).

    Rules over the sweep are left to `sweep_evaluate`. `phases_df` lets the caller apply
    user phase overrides; by default phases are detected.
    """
    rules = _checked(rules, registry)
    scope = Scope(run, phases(run) if phases_df is None else phases_df)
    found: list[dict[str, Any]] = []
    for rule in registry.values():
        if not isinstance(rule, Rule):
            continue
        settings = rules.of(rule)
        try:
            found += [_row(run.name, rule, f) for f in rule.check(scope, settings)]
        except Exception as exc:  # noqa: BLE001 - one broken rule never hides the others
            found.append(_failed(run, rule, exc))
    if not found:
        return empty()
    return sort_findings(pl.DataFrame(found, schema=FINDINGS_SCHEMA))


def peer_facts(run: Run) -> dict[str, object]:
    """The facts (`PEER_FACTS`) sweep rules choose a run's peers by."""
    target = (run.meta or {}).get("target_k")
    try:
        target_k = None if target is None else round(float(target), 3)
    except (TypeError, ValueError):
        target_k = None
    params = (run.meta or {}).get("params")
    size = f"{params / 1e6:.1f}M parameters" if isinstance(params, int | float) else None
    return {"variant": run.variant, "params": size, "target_k": target_k}


def measure(
    run: Run,
    registry: Mapping[str, AnyRule],
    rules: FlagRules | None = None,
    phases_df: pl.DataFrame | None = None,
) -> RunMeasures:
    """One run's values for every sweep rule: the per-run half of the sweep pass (a cache
    can keep it per run; comparing with the peers is cheap)."""
    rules = _checked(rules, registry)
    scope = Scope(run, phases(run) if phases_df is None else phases_df)
    values: dict[str, Measure] = {}
    errors: dict[str, str] = {}
    for rule in registry.values():
        if not isinstance(rule, SweepRule):
            continue
        try:
            got = rule.measure(scope, rules.of(rule))
        except Exception as exc:  # noqa: BLE001 - one broken rule never hides the others
            logger.exception("sweep rule %s failed on run %s", rule.name, run.name)
            errors[rule.name] = f"{type(exc).__name__}: {exc}"
            continue
        if got is not None:
            values[rule.name] = got
    return RunMeasures(run.name, peer_facts(run), values, errors)


def sweep_evaluate(
    measured: Sequence[RunMeasures],
    registry: Mapping[str, AnyRule],
    rules: FlagRules | None = None,
) -> pl.DataFrame:
    """Findings of the rules over the sweep for the measured runs (findings columns, one
    row per rule and outlying run; a measure that raised is a warning of its own)."""
    rules = _checked(rules, registry)
    found: list[dict[str, Any]] = []
    for rule in registry.values():
        if not isinstance(rule, SweepRule):
            continue
        for m in measured:
            if rule.name in m.errors:
                f = Finding(f"the check failed: {m.errors[rule.name]}", None, severity=WARNING)
                found.append(_row(m.run, rule, f, FAILED_ACTION))
        try:
            hits = rule.check(measured, rules.of(rule))
        except Exception as exc:  # noqa: BLE001
            logger.exception("sweep rule %s failed", rule.name)
            hits = []
            f = Finding(f"the check failed: {type(exc).__name__}: {exc}", None, severity=WARNING)
            found += [_row(m.run, rule, f, FAILED_ACTION) for m in measured]
        found += [_row(run, rule, f) for run, f in hits]
    if not found:
        return empty()
    return sort_findings(pl.DataFrame(found, schema=FINDINGS_SCHEMA))


def counts(findings: pl.DataFrame) -> dict[str, int]:
    """Findings per severity (every severity present as a key), for badges and tables."""
    out = dict.fromkeys(SEVERITIES, 0)
    for sev, n in findings.group_by("severity").len().iter_rows():
        out[sev] = int(n)
    return out
