"""Red flags: the guide's symptom table, plus a researcher's extras, as rules over a run.

Every finding says where it happened, what was seen, and the guide's action. The rules
live in `rules` (one registered object each: metadata, settings, check, evidence
metrics), the shared machinery and the meaning of "sustained" in `engine`.

Finding columns (`FINDINGS_SCHEMA`): `run, rule, severity, first_step, last_step, n_steps,
evidence, value, action`. `n_steps` counts flagged logged steps (trace checkpoints for
trace rules, events for event rules); `value` is the rule's headline number (documented
per rule in `RULES`). One row per rule and run at most, except `lambda_pinned`, which can
report the lower and the upper clamp separately. A rule whose check raises reports a
warning of its own instead of its findings; the other rules are unaffected.
"""

from __future__ import annotations

import polars as pl

from ponder_parse.analysis.red_flags.engine import (
    CRITICAL,
    FAILED_ACTION,
    FINDINGS_SCHEMA,
    INFO,
    SEVERITIES,
    WARNING,
    Above,
    Finding,
    FlagRules,
    Registry,
    Rule,
    Scope,
    Sustain,
    above,
    counts,
    evaluate,
    sustained,
)
from ponder_parse.analysis.red_flags.rules import (
    RULES,
    DeadbandSettings,
    DeltaCeSettings,
    LambdaSettings,
    LmSettings,
    NonfiniteSettings,
    NoSettings,
    ThroughputSettings,
    TraceSettings,
)
from ponder_parse.run import Run

DEFAULT = FlagRules()
"""Every rule with its registered settings (the guide's numbers)."""


def red_flags(
    run: Run, rules: FlagRules = DEFAULT, phases_df: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Every rule's findings for one run (typed; empty when nothing is wrong).

    `phases_df` lets the caller apply user phase overrides; by default phases are detected.
    Sorted by severity (critical first), then first step.
    """
    return evaluate(run, RULES, rules, phases_df)


__all__ = [
    "CRITICAL",
    "DEFAULT",
    "FAILED_ACTION",
    "FINDINGS_SCHEMA",
    "INFO",
    "RULES",
    "SEVERITIES",
    "WARNING",
    "Above",
    "DeadbandSettings",
    "DeltaCeSettings",
    "Finding",
    "FlagRules",
    "LambdaSettings",
    "LmSettings",
    "NoSettings",
    "NonfiniteSettings",
    "Registry",
    "Rule",
    "Scope",
    "Sustain",
    "ThroughputSettings",
    "TraceSettings",
    "above",
    "counts",
    "evaluate",
    "red_flags",
    "sustained",
]
