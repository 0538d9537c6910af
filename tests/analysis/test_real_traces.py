"""Traces as the real trainer prints them: cut short of Kmax, a frozen gate's halving,
forced traces as a category of their own, Kmax, metrics printed as 0. Runs come from the
realistic simulator, written and read back with `load_run`."""

from __future__ import annotations

import math

import polars as pl
import pytest
from analysis_helpers import FORCED_TRACE, FROZEN_TRACE, real_run, traces_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from ponder_parse import schema
from ponder_parse.analysis import catalog, summaries
from ponder_parse.analysis import patterns as P
from ponder_parse.parse.meta import kmax_of
from ponder_parse.run import Run

FROZEN_LAYER = {"p_mean": 0.50, "p_std": 0.000, "avg_exec_token": 4.00, "k_exec": 4}


@pytest.mark.parametrize(
    ("trace", "expected"),
    [
        ([1.00, 0.49, 0.24, 0.12], P.HEALTHY),
        ([1.00, 0.46, 0.21], P.HEALTHY),  # pass 4 never ran: nothing survived
        ([1.00, 0.30], P.HEALTHY),
        ([1.00, 0.17], P.HEALTHY),
        ([1.00, 0.05], P.OVER_PENALIZED),
        ([1.00], P.OVER_PENALIZED),  # cut after pass 1: nothing continued
        ([1.00, 0.50, 0.50], P.HEALTHY),  # a plateau that stopped is not stuck
        ([1.00, 0.95, 0.90, 0.85], P.NOT_STOPPING),
        ([1.00, 0.50, 0.50, 0.50], P.STUCK_HALF),
    ],
)
def test_cut_short_traces_read_against_kmax(trace: list[float], expected: str) -> None:
    assert P.classify_trace(trace, kmax=4) == expected
    df = traces_frame([(0, 0, trace)])
    assert P.classify_traces(df, kmax=4)["pattern"].to_list() == [expected]


def test_cut_short_traces_were_other_at_their_own_length() -> None:
    """Without Kmax a trace reads at its own length, as the old classifier read every
    trace: the real runs' 55–63% "other"."""
    assert P.classify_trace([1.00, 0.46, 0.21]) == P.OTHER
    assert P.classify_trace([1.00, 0.30]) == P.OTHER


def test_kmax_also_comes_from_the_layer_line() -> None:
    layer = {"k_exec": 4}
    assert P.classify_trace([1.00, 0.46, 0.21], layer=layer) == P.HEALTHY
    df = traces_frame([(0, 0, [1.00, 0.46, 0.21])])
    lay = schema.conform(pl.DataFrame({"step": [0], "layer": [0], "k_exec": [4]}), schema.LAYERS)
    assert P.classify_traces(df, layers=lay)["pattern"].to_list() == [P.HEALTHY]


def test_frozen_gate_needs_its_layer_line() -> None:
    assert P.classify_trace(FROZEN_TRACE, kmax=4, layer=FROZEN_LAYER) == P.FROZEN_GATE
    # the same halving from a gate that differs between tokens is a sharp drop
    spread = FROZEN_LAYER | {"p_std": 0.02}
    assert P.classify_trace(FROZEN_TRACE, kmax=4, layer=spread) == P.HEALTHY
    off_half = FROZEN_LAYER | {"p_mean": 0.45}
    assert P.classify_trace(FROZEN_TRACE, kmax=4, layer=off_half) == P.HEALTHY
    # one value off the halving: the gate moved somewhere
    assert P.classify_trace([1.0, 0.5, 0.3, 0.12], kmax=4, layer=FROZEN_LAYER) == P.HEALTHY
    assert P.classify_trace(FROZEN_TRACE, kmax=4) == P.HEALTHY  # no layer line: the shape


def test_layer_line_decides_a_trace_in_between() -> None:
    between = [1.0, 0.7, 0.45, 0.30]
    assert P.classify_trace(between, kmax=4) == P.OTHER
    every_pass = {"avg_exec_token": 4.0, "p_mean": 0.65, "p_std": 0.01}
    assert P.classify_trace(between, kmax=4, layer=every_pass) == P.NOT_STOPPING
    some_stop = every_pass | {"avg_exec_token": 3.2}
    assert P.classify_trace(between, kmax=4, layer=some_stop) == P.OTHER


@pytest.mark.parametrize("target_k", [2.40, 1.30])
def test_real_run_classes_per_phase(target_k: float) -> None:
    run = real_run(target_k=target_k)
    shares = P.pattern_shares(run, by=["phase"])
    got = {(r["phase"], r["pattern"]): r["share"] for r in shares.iter_rows(named=True)}
    assert got[("force_warmup", P.FORCED)] == 1.0  # [1.00, 1.00], never "not stopping"
    assert got[("gate_learning", P.FROZEN_GATE)] == 1.0  # [1.00, 0.50, 0.25, 0.12]
    # cut-short traces are a gate that stopped: nothing left as "other"
    assert got[("economic", P.HEALTHY)] >= 0.85
    assert ("economic", P.OTHER) not in got and ("economic", P.FORCED) not in got
    dom = P.dominant_pattern(run)
    assert dom["pattern"].to_list() == [P.FORCED, P.FROZEN_GATE, P.HEALTHY]
    cut = run.traces.filter(pl.col("step") >= 1200)["s_trace"].list.len()
    assert {2, 3, 4} <= set(cut)  # read against Kmax 4 all the same


def test_a_frozen_gate_is_frozen_in_every_phase_after_the_warmup() -> None:
    shares = P.pattern_shares(real_run("frozen", gate="stuck"), by=["phase"])
    got = {(r["phase"], r["pattern"]): r["share"] for r in shares.iter_rows(named=True)}
    assert got[("gate_learning", P.FROZEN_GATE)] == 1.0
    assert got[("economic", P.FROZEN_GATE)] == 1.0  # not "healthy: sharp drop"


def test_audit_traces_are_forced_and_left_out_by_default() -> None:
    run = real_run(steps=3700, n_layers=8)  # long enough for audits on trace steps
    audit_traces = run.traces.filter(pl.col("step").is_in(P.audit_steps(run).implode()))
    assert audit_traces.height > 0
    econ = P.pattern_shares(run, by=["phase"], include_audit=True).filter(
        pl.col("phase") == "economic"
    )
    forced = econ.filter(pl.col("pattern") == P.FORCED)
    assert forced["n"].to_list() == [audit_traces.height]
    without = P.pattern_shares(run, by=["phase"]).filter(pl.col("phase") == "economic")
    assert set(econ["pattern"]) == set(without["pattern"]) | {P.FORCED}
    classified = P.classify_run(run)
    assert (classified.filter(pl.col("audit"))["pattern"] == P.FORCED).all()
    # a forced trace in the economic phase outside an audit step is read as a trace
    assert P.classify_trace(FORCED_TRACE, kmax=4) == P.HEALTHY


def test_pattern_shares_keep_their_by_layer_form() -> None:
    run = real_run()
    s = P.pattern_shares(run, by=["phase", "layer"])
    assert s.columns == ["phase", "layer", "pattern", "n", "share"]
    sums = s.group_by("phase", "layer").agg(pl.col("share").sum())["share"]
    assert sums.to_list() == [pytest.approx(1.0)] * sums.len()


def test_rules_text_names_every_category_and_its_thresholds() -> None:
    rules = P.pattern_rules()
    assert set(rules) == set(P.TIMELINE_PATTERNS)
    assert "0.15" in rules[P.HEALTHY] and "0.005" in rules[P.FROZEN_GATE]
    assert set(P.CATEGORY_TITLES) == set(P.TIMELINE_PATTERNS)
    assert set(P.PATTERN_MEANINGS) == set(P.TIMELINE_PATTERNS)


# ---- Kmax


def test_kmax_is_the_longest_trace_not_the_most_common() -> None:
    traces = traces_frame([(0, 0, [1.0, 0.3]), (0, 1, [1.0, 0.3]), (10, 0, [1.0, 0.5, 0.2, 0.1])])
    layers = schema.conform(pl.DataFrame({"step": [0], "layer": [0], "k_exec": [2]}), schema.LAYERS)
    tables = {"traces": traces, "layers": layers}
    assert kmax_of(tables, pl.DataFrame()) == 4
    # a layer line may show more passes than any logged trace
    short = traces_frame([(0, 0, [1.0, 0.3])])
    deep = schema.conform(pl.DataFrame({"step": [0], "layer": [0], "k_exec": [4]}), schema.LAYERS)
    assert kmax_of({"traces": short, "layers": deep}, pl.DataFrame()) == 4
    assert kmax_of({"traces": traces_frame([]), "layers": deep.clear()}, pl.DataFrame()) is None


def test_run_kmax_and_where_it_is_shown() -> None:
    run = real_run()
    lengths = run.traces["s_trace"].list.len()
    assert lengths.mode().to_list() != [4]  # the most common trace is shorter
    assert run.meta["kmax"] == 4 and P.run_kmax(run) == 4
    facts = dict(summaries.run_facts(run).iter_rows())
    assert facts["Kmax"] == "4"
    assert summaries.run_summary(run)["kmax"] == 4
    # without the log's facts, from the longest trace and largest k_exec
    bare = Run(name="bare", traces=run.traces, layers=run.layers)
    assert P.run_kmax(bare) == 4
    configured = Run(name="c", traces=run.traces, hparams={"kmax": 6})
    assert P.run_kmax(configured) == 6
    assert P.run_kmax(Run(name="e")) is None


# ---- printed, not measured


def test_flat_metrics_are_the_ones_printed_as_zero() -> None:
    run = real_run()
    assert catalog.flat_metrics(run) == {
        "steps.mtp_loss",
        "layers.ent",
        "layers.d_rel",
        "layers.p_diff",
    }
    # λ_p pinned at its floor is constant but measured; 0 before the ponder start is design
    early = Run(name="early", steps=run.steps.filter(pl.col("step") < 1000))
    assert "steps.lambda_p" not in catalog.flat_metrics(run)
    assert catalog.flat_metrics(early) == {"steps.mtp_loss"}
    assert catalog.flat_metrics(Run(name="e")) == frozenset()
    # a share of tokens at 0 on every line is measured: no token needed a fourth pass
    short = Run(name="short", layers=run.layers.with_columns(frac_ge4=pl.lit(0.0)))
    assert "layers.frac_ge4" not in catalog.flat_metrics(short)
    # the red flag lists exactly these
    from ponder_parse.analysis import red_flags

    row = red_flags.red_flags(run).filter(pl.col("rule") == "metric_flat").row(0, named=True)
    assert row["value"] == len(catalog.flat_metrics(run))


# ---- vectorised = scalar, with Kmax and layer lines

_values = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([0.0, 0.05, 0.12, 0.125, 0.25, 0.3, 0.5, 0.6, 0.7, 1.0, math.nan]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(_values, min_size=0, max_size=5),
            st.one_of(st.none(), st.sampled_from([0.49, 0.5, 0.51, 0.6])),
            st.one_of(st.none(), st.sampled_from([0.0, 0.004, 0.006, 0.02])),
            st.one_of(st.none(), st.sampled_from([2.0, 3.9, 3.96, 4.0, 5.0])),
        ),
        min_size=1,
        max_size=30,
    ),
    st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
)
def test_vectorised_agrees_with_scalar_with_kmax_and_layers(
    rows: list[tuple[list[float], float | None, float | None, float | None]], kmax: int | None
) -> None:
    df = traces_frame([(i, 0, r[0]) for i, r in enumerate(rows)])
    layers = schema.conform(
        pl.DataFrame(
            {
                "step": list(range(len(rows))),
                "layer": [0] * len(rows),
                "p_mean": [r[1] for r in rows],
                "p_std": [r[2] for r in rows],
                "avg_exec_token": [r[3] for r in rows],
            },
            schema_overrides={"p_mean": pl.Float64, "p_std": pl.Float64},
        ),
        schema.LAYERS,
    )
    got = P.classify_traces(df, kmax=kmax, layers=layers)["pattern"].to_list()
    want = [
        P.classify_trace(
            r[0], kmax=kmax, layer={"p_mean": r[1], "p_std": r[2], "avg_exec_token": r[3]}
        )
        for r in rows
    ]
    assert got == want
