"""Survival-trace classifier: the guide's examples, near-misses, Kmax, vectorised agreement."""

from __future__ import annotations

import math

import polars as pl
import pytest
from analysis_helpers import make_run, traces_frame
from hypothesis import given
from hypothesis import strategies as st

from ponder_parse.analysis import patterns as P
from ponder_parse.analysis.phases import phases
from ponder_parse.run import Run

T = P.DEFAULT


@pytest.mark.parametrize(
    ("trace", "expected"),
    [
        ([1.00, 0.82, 0.23, 0.04], P.HEALTHY),
        ([1.00, 0.95, 0.90, 0.85], P.NOT_STOPPING),
        ([1.00, 0.02, 0.00, 0.00], P.OVER_PENALIZED),
        ([1.00, 0.50, 0.50, 0.50], P.STUCK_HALF),
        ([1.00, 0.98, 0.97, 0.96], P.NOT_STOPPING),  # the red-flag table's example
    ],
)
def test_guide_examples(trace: list[float], expected: str) -> None:
    assert P.classify_trace(trace) == expected


def test_reference_shapes_classify_as_named() -> None:
    for name, shape in P.REFERENCE_SHAPES.items():
        assert P.classify_trace(shape) == name
    frame = P.reference_shapes_frame()
    assert frame.columns == ["pattern", "label", "k", "s"]
    assert frame.height == 16
    assert frame.filter(pl.col("k") == 1)["s"].to_list() == [1.0] * 4
    healthy = frame.filter(pl.col("pattern") == P.HEALTHY)
    assert healthy["label"].unique().to_list() == [P.PATTERN_TITLES[P.HEALTHY]]
    assert healthy.sort("k")["s"].to_list() == list(P.REFERENCE_SHAPES[P.HEALTHY])


def test_pattern_rank_orders_like_the_timeline_legend() -> None:
    assert (*P.PATTERNS, P.FORCED) == P.TIMELINE_PATTERNS
    assert P.FORCED not in P.PATTERNS  # never a classifier verdict
    names = ["zzz", P.FORCED, P.OTHER, P.HEALTHY, P.STUCK_HALF]
    ranked = pl.DataFrame({"pattern": names}).sort(P.pattern_rank())["pattern"].to_list()
    assert ranked == [P.HEALTHY, P.STUCK_HALF, P.OTHER, P.FORCED, "zzz"]


# ---- near-misses around every threshold (defaults documented in PatternThresholds)


def test_over_penalized_threshold() -> None:
    cut = T.over_penalized_max_s2
    assert P.classify_trace([1.0, cut, 0.0, 0.0]) == P.OVER_PENALIZED  # inclusive
    assert P.classify_trace([1.0, cut + 0.01, 0.0, 0.0]) != P.OVER_PENALIZED
    assert P.classify_trace([1.0, cut + 0.01, 0.0, 0.0]) == P.HEALTHY


def test_stuck_half_tolerance() -> None:
    lo = T.stuck_center - T.stuck_tol
    hi = T.stuck_center + T.stuck_tol
    assert P.classify_trace([1.0, 0.45, 0.55, 0.50]) == P.STUCK_HALF
    assert P.classify_trace([1.0, lo, lo, lo]) == P.STUCK_HALF
    # one value just outside the band: no longer stuck
    assert P.classify_trace([1.0, 0.5, 0.5, lo - 0.02]) != P.STUCK_HALF
    assert P.classify_trace([1.0, hi + 0.02, 0.5, 0.5]) != P.STUCK_HALF
    # the geometric 0.5-gate decay is a clean stop, not the guide's flat plateau
    assert P.classify_trace([1.0, 0.5, 0.25, 0.125]) == P.HEALTHY


def test_not_stopping_threshold() -> None:
    cut = T.not_stopping_min_last
    assert P.classify_trace([1.0, 0.95, 0.90, cut]) == P.NOT_STOPPING
    assert P.classify_trace([1.0, 0.95, 0.90, cut - 0.01]) == P.OTHER
    # a trace that continues past k=1 but then stops is not "not stopping"
    assert P.classify_trace([1.0, 0.99, 0.50, 0.05]) == P.HEALTHY


def test_healthy_threshold() -> None:
    cut = T.healthy_max_last
    assert P.classify_trace([1.0, 0.82, 0.23, cut]) == P.HEALTHY
    assert P.classify_trace([1.0, 0.82, 0.23, cut + 0.01]) == P.OTHER


def test_custom_thresholds_are_used() -> None:
    strict = P.PatternThresholds(healthy_max_last=0.02)
    assert P.classify_trace([1.0, 0.82, 0.23, 0.04], strict) == P.OTHER
    df = traces_frame([(0, 0, [1.0, 0.82, 0.23, 0.04])])
    assert P.classify_traces(df, strict)["pattern"].to_list() == [P.OTHER]


# ---- Kmax other than 4, degenerate input


@pytest.mark.parametrize(
    ("trace", "expected"),
    [
        ([1.0, 0.8, 0.05], P.HEALTHY),
        ([1.0, 0.9, 0.8], P.NOT_STOPPING),
        ([1.0, 0.03, 0.0], P.OVER_PENALIZED),
        ([1.0, 0.5, 0.5], P.STUCK_HALF),
        ([1.0, 0.85, 0.40, 0.10, 0.02], P.HEALTHY),
        ([1.0, 0.97, 0.95, 0.93, 0.90], P.NOT_STOPPING),
        ([1.0, 0.01, 0.0, 0.0, 0.0], P.OVER_PENALIZED),
        ([1.0, 0.5, 0.5, 0.5, 0.5], P.STUCK_HALF),
        ([1.0, 0.9], P.NOT_STOPPING),
        ([1.0, 0.05], P.OVER_PENALIZED),
    ],
)
def test_other_kmax(trace: list[float], expected: str) -> None:
    assert P.classify_trace(trace) == expected
    assert P.classify_traces(traces_frame([(0, 0, trace)]))["pattern"][0] == expected


@pytest.mark.parametrize(
    "trace",
    [[], [1.0], [1.0, math.nan, 0.0], [1.0, 0.5, math.inf], [1.0, None, 0.1]],
)
def test_unjudgeable_traces_are_other(trace: list[float]) -> None:
    assert P.classify_trace(trace) == P.OTHER
    assert P.classify_traces(traces_frame([(0, 0, trace)]))["pattern"][0] == P.OTHER


def test_missing_trace_has_no_pattern() -> None:
    assert P.classify_trace(None) is None
    out = P.classify_traces(traces_frame([(0, 0, None), (0, 1, [1.0, 0.5, 0.5])]))
    assert out["pattern"].to_list() == [None, P.STUCK_HALF]
    assert out.schema["pattern"] == pl.String


# ---- vectorised = scalar on every row

values = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([0.0, 0.02, 0.04, 0.1, 0.11, 0.15, 0.16, 0.4, 0.5, 0.6, 0.59, 0.85, 0.95, 1.0]),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
traces = st.lists(values, min_size=0, max_size=7)


@given(st.lists(traces, min_size=1, max_size=40))
def test_vectorised_agrees_with_scalar(rows: list[list[float]]) -> None:
    df = traces_frame([(i, 0, r) for i, r in enumerate(rows)])
    got = P.classify_traces(df)["pattern"].to_list()
    assert got == [P.classify_trace(r) for r in rows]


# ---- shares and dominant pattern


def _mixed() -> pl.DataFrame:
    return traces_frame(
        [
            (1300, 0, [1.0, 0.82, 0.23, 0.04]),
            (1350, 0, [1.0, 0.82, 0.23, 0.04]),
            (1400, 0, [1.0, 0.95, 0.90, 0.85]),
            (1300, 1, [1.0, 0.5, 0.5, 0.5]),
            (1350, 1, [1.0, 0.5, 0.5, 0.5]),
            (1400, 1, None),
        ]
    )


def test_pattern_shares_by_layer() -> None:
    s = P.pattern_shares(_mixed(), by=["layer"])
    assert s.columns == ["layer", "pattern", "n", "share"]
    rows = {(r["layer"], r["pattern"]): (r["n"], r["share"]) for r in s.iter_rows(named=True)}
    assert rows[(0, P.HEALTHY)] == (2, pytest.approx(2 / 3))
    assert rows[(0, P.NOT_STOPPING)] == (1, pytest.approx(1 / 3))
    assert rows[(1, P.STUCK_HALF)] == (2, 1.0)  # the null trace is not counted
    assert (
        s.group_by("layer").agg(pl.col("share").sum())["share"].to_list()
        == [pytest.approx(1.0)] * 2
    )


def test_pattern_shares_overall_and_empty() -> None:
    s = P.pattern_shares(_mixed(), by=[])
    assert s.columns == ["pattern", "n", "share"]
    assert s["n"].sum() == 5
    empty = P.pattern_shares(traces_frame([]), by=["layer"])
    assert empty.is_empty() and empty.columns == ["layer", "pattern", "n", "share"]


def test_pattern_shares_by_phase_needs_phases() -> None:
    with pytest.raises(ValueError):
        P.pattern_shares(_mixed(), by=["phase"])
    run = make_run(n_steps=2000)
    s = P.pattern_shares(run, by=["phase", "layer"])
    assert set(s["phase"].unique()) == {"force_warmup", "gate_learning", "economic"}
    econ = s.filter((pl.col("phase") == "economic") & (pl.col("layer") == 0))
    assert econ.sort("n")["pattern"][-1] == P.HEALTHY


def test_dominant_pattern_per_phase() -> None:
    run = make_run(pathology="stuck_half", n_steps=3000)
    d = P.dominant_pattern(run)
    assert d.columns == ["phase", "pattern", "share", "n", "n_traces"]
    assert d["phase"].to_list() == ["force_warmup", "gate_learning", "economic"]
    econ = d.filter(pl.col("phase") == "economic").row(0, named=True)
    # steps 2000..2950 of 1200..2950 are stuck: 20 of 36 checkpoints
    assert econ["pattern"] == P.STUCK_HALF
    assert econ["share"] == pytest.approx(20 / 36)


def test_dominant_pattern_tie_is_deterministic() -> None:
    df = traces_frame([(1300, 0, [1.0, 0.5, 0.5, 0.5]), (1350, 0, [1.0, 0.82, 0.23, 0.04])])
    ph = pl.DataFrame(
        {"phase": ["economic"], "start": [1200], "end": [1400]},
        schema={"phase": pl.String, "start": pl.Int64, "end": pl.Int64},
    )
    d = P.dominant_pattern(df, ph)
    assert d["pattern"].to_list() == [P.HEALTHY]  # first in PATTERNS wins a tie


def test_dominant_pattern_empty_run() -> None:
    run = Run(name="empty")
    assert P.dominant_pattern(run, phases(run)).is_empty()


def test_traces_on_audit_steps_do_not_count_towards_the_gate_pattern() -> None:
    import polars as pl

    from ponder_parse import schema
    from ponder_parse.analysis.patterns import dominant_pattern, pattern_shares, policy_traces
    from ponder_parse.run import Run

    steps = schema.conform(
        pl.DataFrame({"step": [1250, 1300, 1350], "audit": [False, True, False]}), schema.STEPS
    )
    stuck, forced = [1.0, 0.5, 0.5, 0.5], [1.0, 1.0, 0.0, 0.0]
    traces = pl.DataFrame(
        {"step": [1250, 1300, 1350], "layer": [0, 0, 0], "s_trace": [stuck, forced, stuck]},
        schema=schema.TRACES,
    )
    run = Run(name="r", steps=steps, traces=traces)
    assert policy_traces(run)["step"].to_list() == [1250, 1350]
    shares = pattern_shares(run)
    assert shares["pattern"].to_list() == ["stuck_half"] and shares["share"][0] == 1.0
    assert dominant_pattern(
        run, pl.DataFrame({"phase": ["economic"], "start": [1200], "end": [1400]})
    )["pattern"].to_list() == ["stuck_half"]
