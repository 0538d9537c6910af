"""The machinery every red-flag rule shares: findings, "sustained", scopes, evaluation.

A rule (`Rule`) is data plus a check; the engine knows no rule by name. It builds the
run's scopes once (`Scope`: the phases' step ranges, the judged traces), hands each rule
its settings (`FlagRules`), turns the rule's `Finding`s into typed rows and sorts them.

"Sustained" (`Sustain(window, share, min_rows)`): the condition holds on at least
`ceil(share × window)` (and at least `min_rows`) of some `window` consecutive *logged*
rows in scope; a scope with fewer rows than `window` is judged as one window of its own
length. The flagged steps are the rows meeting the condition inside such windows; rows
more than `window` apart start a new episode. Non-finite values never meet a threshold
condition (the `nonfinite` rule reports them instead).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Generic, TypeVar

import polars as pl

from ponder_parse.analysis import catalog
from ponder_parse.analysis.patterns import PatternThresholds, classify_traces, policy_traces
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
    (a trace shape that recovered, a traceback the run survived)."""

    evidence: str
    value: float | None
    first_step: int | None = None
    last_step: int | None = None
    n_steps: int | None = None
    severity: str | None = None

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


def warn_above(column: str, table: str = "steps") -> float:
    """The guide's trouble threshold for a metric, so a rule never restates it."""
    value = catalog.metric(column, table).warn_above
    assert value is not None, f"catalog has no threshold for {column}"
    return value


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


# ---------------------------------------------------------------- scopes


class Scope:
    """One run cut into the parts rules look at, each computed at most once per run."""

    def __init__(self, run: Run, phases_df: pl.DataFrame) -> None:
        self.run = run
        self.phases = phases_df
        self._judged_traces: dict[tuple[int, PatternThresholds], pl.DataFrame] = {}

    @cached_property
    def steps(self) -> pl.DataFrame:
        """Every logged step, in step order."""
        return self.run.steps.sort("step") if self.run.steps.height else self.run.steps

    def phase_steps(self, names: Iterable[str]) -> pl.DataFrame:
        """Steps in the named phases, in step order."""
        wanted = list(set(names))
        return (
            assign_phase(self.run.steps, self.phases)
            .filter(pl.col("phase").is_in(wanted))
            .sort("step")
        )

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
            traces = assign_phase(policy_traces(self.run), self.phases).filter(
                (pl.col("phase") == "economic") & (pl.col("step") >= judged_from)
            )
        if traces.is_empty():
            return traces
        t = classify_traces(traces, patterns).filter(pl.col("pattern").is_not_null())
        if t.is_empty():
            return t
        return t.sort("layer", "step").with_columns(
            _is_last=pl.col("step") == pl.col("step").max().over("layer")
        )


# ---------------------------------------------------------------- rules and registry

S = TypeVar("S")
Check = Callable[[Scope, S], Sequence[Finding]]


@dataclass(frozen=True)
class Rule(Generic[S]):
    """One red flag: what it checks, where, what to do about it, and the check itself.

    `metrics` are the catalog keys (`steps.grad_norm`) whose step line shows the evidence;
    empty for rules about the log file rather than a logged number."""

    name: str
    title: str
    severity: str
    scope: str
    value: str
    action: str
    settings: S
    check: Check[S] = field(repr=False)
    metrics: tuple[str, ...] = ()
    from_guide: bool = True


class Registry(Mapping[str, Rule[Any]]):
    """Rules by name, in the order they were registered (the order the UI lists them)."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule[Any]] = {}

    def add(self, rule: Rule[Any]) -> Rule[Any]:
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
    ) -> Callable[[Check[S]], Rule[S]]:
        """Register the decorated check as a rule: the one place a rule is written."""

        def register(check: Check[S]) -> Rule[S]:
            rule = Rule(
                name, title, severity, scope, value, action, settings, check, metrics, from_guide
            )
            self.add(rule)
            return rule

        return register

    def __getitem__(self, name: str) -> Rule[Any]:
        return self._rules[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)


class FlagRules:
    """Every rule's settings: its registered defaults, except those given by rule name.

    `FlagRules(grad_sustained=Above(3.0))` changes one rule. Hashable and comparable, so
    a cache can key on it."""

    def __init__(self, **settings: object) -> None:
        self._settings = dict(sorted(settings.items()))

    def of(self, rule: Rule[S]) -> S:
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

    @property
    def names(self) -> frozenset[str]:
        """Rules whose settings differ from the registered defaults."""
        return frozenset(self._settings)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FlagRules) and self._settings == other._settings

    def __hash__(self) -> int:
        return hash(tuple(self._settings.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._settings.items())
        return f"FlagRules({inner})"


# ---------------------------------------------------------------- evaluation


def _row(run: Run, rule: Rule[Any], f: Finding, action: str | None = None) -> dict[str, Any]:
    return {
        "run": run.name,
        "rule": rule.name,
        "severity": f.severity or rule.severity,
        "first_step": f.first_step,
        "last_step": f.last_step,
        "n_steps": f.n_steps,
        "evidence": f.evidence,
        "value": None if f.value is None else float(f.value),
        "action": rule.action if action is None else action,
    }


def _failed(run: Run, rule: Rule[Any], exc: Exception) -> dict[str, Any]:
    """A check that raises is reported as a warning of its own, so a bug in one rule (or a
    log it did not foresee) neither hides the other findings nor passes for a clean run."""
    logger.exception("red-flag rule %s failed on run %s", rule.name, run.name)
    evidence = f"the check failed: {type(exc).__name__}: {exc}"
    return _row(run, rule, Finding(evidence, None, severity=WARNING), FAILED_ACTION)


def sort_findings(df: pl.DataFrame) -> pl.DataFrame:
    """By run, then severity (critical first), first step and rule."""
    return df.sort(
        pl.col("run"),
        pl.col("severity").replace_strict(SEVERITIES, [0, 1, 2], default=3),
        pl.col("first_step"),
        pl.col("rule"),
        nulls_last=True,
    )


def evaluate(
    run: Run,
    registry: Mapping[str, Rule[Any]],
    rules: FlagRules | None = None,
    phases_df: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Every registered rule's findings for one run (typed; empty when nothing is wrong).

    `phases_df` lets the caller apply user phase overrides; by default phases are detected.
    """
    rules = FlagRules() if rules is None else rules
    unknown = rules.names - set(registry)
    if unknown:
        raise ValueError(f"settings for unknown rules: {', '.join(sorted(unknown))}")
    scope = Scope(run, phases(run) if phases_df is None else phases_df)
    found: list[dict[str, Any]] = []
    for rule in registry.values():
        settings = rules.of(rule)
        try:
            found += [_row(run, rule, f) for f in rule.check(scope, settings)]
        except Exception as exc:  # noqa: BLE001 - one broken rule never hides the others
            found.append(_failed(run, rule, exc))
    if not found:
        return empty()
    return sort_findings(pl.DataFrame(found, schema=FINDINGS_SCHEMA))


def counts(findings: pl.DataFrame) -> dict[str, int]:
    """Findings per severity (every severity present as a key), for badges and tables."""
    out = dict.fromkeys(SEVERITIES, 0)
    for sev, n in findings.group_by("severity").len().iter_rows():
        out[sev] = int(n)
    return out
