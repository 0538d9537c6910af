"""Phase boundaries from the log, the defaults, or the user; phase assignment, order and labels."""

from __future__ import annotations

import polars as pl
import pytest
from analysis_helpers import make_run, steps_run
from hypothesis import given
from hypothesis import strategies as st

from ponder_parse.analysis.phases import (
    ECONOMIC,
    FORCE_WARMUP,
    GATE_LEARNING,
    PHASE_LABELS,
    PHASES,
    PHASES_SCHEMA,
    SRC_AUDIT,
    SRC_CONFIG,
    SRC_DEFAULT,
    SRC_FIRST,
    SRC_LAST,
    SRC_LAYERS,
    SRC_LAYERS_STILL,
    SRC_QUALITY,
    SRC_USER,
    assign_phase,
    boundaries,
    boundaries_table,
    edited_overrides,
    phase_rank,
    phase_start,
    phases,
    with_phase_labels,
)
from ponder_parse.run import Run


def _rows(df: pl.DataFrame) -> list[tuple[str, int, int]]:
    return [(r["phase"], r["start"], r["end"]) for r in df.iter_rows(named=True)]


def test_full_run_reads_boundaries_from_the_log() -> None:
    p = phases(make_run())
    assert p.schema == pl.Schema(PHASES_SCHEMA)
    assert _rows(p) == [
        ("force_warmup", 0, 799),
        ("gate_learning", 800, 1199),
        ("economic", 1200, 2999),
    ]
    assert p["source"].to_list() == [SRC_FIRST, SRC_LAYERS, SRC_QUALITY]
    assert p["end_source"].to_list() == [SRC_LAYERS, SRC_QUALITY, SRC_LAST]


def test_swept_constants_are_detected() -> None:
    p = phases(make_run(force_end=700, ponder_start=1100))
    assert _rows(p) == [
        ("force_warmup", 0, 699),
        ("gate_learning", 700, 1099),
        ("economic", 1100, 2999),
    ]


def test_defaults_when_the_log_proves_nothing() -> None:
    run = steps_run(lm_loss=[3.0] * 3000)
    p = phases(run)
    assert _rows(p) == [
        ("force_warmup", 0, 799),
        ("gate_learning", 800, 1199),
        ("economic", 1200, 2999),
    ]
    assert p["source"].to_list() == [SRC_FIRST, SRC_DEFAULT, SRC_DEFAULT]


def test_audit_step_marks_ponder_start_without_quality_lines() -> None:
    audit = [False] * 3000
    audit[1207] = True
    run = steps_run(audit=audit)
    b = boundaries(run)
    assert b["ponder_start"] == (1207, SRC_AUDIT)


def test_quality_line_beats_a_later_audit() -> None:
    run = make_run()
    assert boundaries(run)["ponder_start"] == (1200, SRC_QUALITY)


def test_user_overrides_win() -> None:
    p = phases(make_run(), overrides={"force_end": 700, "ponder_start": 1100})
    assert _rows(p)[1] == ("gate_learning", 700, 1099)
    assert p["source"].to_list() == [SRC_FIRST, SRC_USER, SRC_USER]
    # a partial override keeps the log's other boundary; None means "no override"
    p = phases(make_run(), overrides={"ponder_start": 1500, "force_end": None})
    assert _rows(p)[1] == ("gate_learning", 800, 1499)


def test_inconsistent_overrides_drop_gate_learning() -> None:
    p = phases(make_run(), overrides={"force_end": 1500, "ponder_start": 1200})
    assert [r[0] for r in _rows(p)] == ["force_warmup", "economic"]
    assert _rows(p)[0] == ("force_warmup", 0, 1199)


def test_config_hparams_are_used_when_the_log_is_silent() -> None:
    run = steps_run(lm_loss=[3.0] * 3000)
    run.hparams = {"PONDER_START": 1000, "force_steps": "600"}
    p = phases(run)
    assert _rows(p)[1] == ("gate_learning", 600, 999)
    assert p["source"].to_list() == [SRC_FIRST, SRC_CONFIG, SRC_CONFIG]


def test_run_shorter_than_force_end() -> None:
    p = phases(make_run(n_steps=500))
    assert _rows(p) == [("force_warmup", 0, 499)]
    assert p["end_source"].to_list() == [SRC_LAST]


def test_run_shorter_than_ponder_start() -> None:
    p = phases(make_run(n_steps=1000))
    assert _rows(p) == [("force_warmup", 0, 799), ("gate_learning", 800, 999)]


def test_log_starting_inside_the_economic_phase() -> None:
    run = make_run(first_step=1250, n_steps=500)
    p = phases(run)
    assert _rows(p) == [("economic", 1250, 1749)]
    assert p["source"].to_list() == [SRC_FIRST]


def test_empty_run() -> None:
    p = phases(Run(name="empty"))
    assert p.is_empty() and p.schema == pl.Schema(PHASES_SCHEMA)


def test_forced_expected_k_not_two_is_not_proof() -> None:
    run = make_run()
    run.layers = run.layers.with_columns(k=pl.lit(1.7))  # soft depth never 2.00
    assert boundaries(run)["force_end"] == (800, SRC_DEFAULT)


def test_still_forced_past_the_default() -> None:
    run = make_run(force_end=1000, ponder_start=1200)
    b = boundaries(run)
    assert b["force_end"] == (1000, SRC_LAYERS)


def test_forced_until_the_end_past_the_default() -> None:
    run = make_run(n_steps=1000, force_end=5000, ponder_start=6000)
    b = boundaries(run)
    assert b["force_end"] == (1000, SRC_LAYERS_STILL)
    assert _rows(phases(run)) == [("force_warmup", 0, 999)]


def test_single_layer_run() -> None:
    p = phases(make_run(n_layers=1))
    assert _rows(p)[1] == ("gate_learning", 800, 1199)


# ---- assign_phase


def test_assign_phase_keeps_order_and_nulls_outside() -> None:
    p = phases(make_run())
    df = pl.DataFrame({"step": [1500, 10, None, 900, 5000, 799, 800]})
    out = assign_phase(df, p)
    assert out["step"].to_list() == df["step"].to_list()
    assert out["phase"].to_list() == [
        "economic",
        "force_warmup",
        None,
        "gate_learning",
        None,
        "force_warmup",
        "gate_learning",
    ]


def test_assign_phase_custom_columns_and_empty_phases() -> None:
    p = phases(make_run())
    df = pl.DataFrame({"at": [100, 1300]})
    assert assign_phase(df, p, step_col="at", name="ph")["ph"].to_list() == [
        "force_warmup",
        "economic",
    ]
    none = assign_phase(df, pl.DataFrame(schema=PHASES_SCHEMA))
    assert none["phase"].to_list() == [None, None]
    assert none.schema["phase"] == pl.String


@given(
    st.integers(1, 3000),
    st.integers(0, 3000),
    st.integers(0, 3000),
)
def test_phases_tile_the_logged_range(n: int, force: int, ponder: int) -> None:
    run = steps_run(lm_loss=[3.0] * n)
    p = phases(run, {"force_end": force, "ponder_start": ponder})
    assert p["start"][0] == 0 and p["end"][-1] == n - 1
    starts, ends = p["start"].to_list(), p["end"].to_list()
    assert all(s <= e for s, e in zip(starts, ends, strict=True))
    assert all(ends[i] + 1 == starts[i + 1] for i in range(len(starts) - 1))
    out = assign_phase(run.steps, p)
    assert out["phase"].null_count() == 0


def test_simulated_logs_prove_their_boundaries() -> None:
    from dataclasses import replace

    sim = pytest.importorskip("ponder_parse.sim.simulate")
    from ponder_parse.files.loader import parse_run

    cfg = replace(sim.SAMPLE_BASELINE, steps=1500, force_end=600, ponder_start=1000)
    run = parse_run(sim.simulate(cfg).log_text, name="sim")
    p = phases(run)
    assert _rows(p) == [
        ("force_warmup", 0, 599),
        ("gate_learning", 600, 999),
        ("economic", 1000, 1499),
    ]
    assert p["source"].to_list()[1:] == [SRC_LAYERS, SRC_QUALITY]


# ---- order and labels


def test_phase_vocabulary_is_in_training_order() -> None:
    assert PHASES == (FORCE_WARMUP, GATE_LEARNING, ECONOMIC)
    assert list(PHASE_LABELS) == list(PHASES)


def test_phase_rank_sorts_in_training_order_unknown_last() -> None:
    df = pl.DataFrame({"phase": ["economic", "nope", "force_warmup", "gate_learning"]})
    ordered = df.sort(phase_rank())["phase"].to_list()
    assert ordered == ["force_warmup", "gate_learning", "economic", "nope"]


def test_with_phase_labels_names_known_phases_and_keeps_others() -> None:
    df = with_phase_labels(pl.DataFrame({"phase": ["gate_learning", "odd", None]}))
    assert df["phase_label"].to_list() == ["gate learning", "odd", None]


def test_phase_start() -> None:
    p = phases(make_run())
    assert phase_start(p, GATE_LEARNING) == 800
    assert phase_start(p, ECONOMIC) == 1200
    assert phase_start(phases(make_run(n_steps=900)), ECONOMIC) is None
    assert phase_start(pl.DataFrame(schema=PHASES_SCHEMA), FORCE_WARMUP) is None


# ---- the boundaries table a user edits


def test_boundaries_table() -> None:
    runs = [make_run("a"), make_run("b")]
    t = boundaries_table(runs, {"b": {"ponder_start": 1500}, "zzz": {"force_end": 1}})
    assert t.rows() == [
        ("a", 800, SRC_LAYERS, 1200, SRC_QUALITY),
        ("b", 800, SRC_LAYERS, 1500, SRC_USER),
    ]
    assert boundaries_table([]).is_empty()


def test_edited_overrides() -> None:
    shown = boundaries_table([make_run("a"), make_run("b")])
    assert edited_overrides(shown, shown, {}) is None  # nothing edited
    cleared = shown.with_columns(pl.lit(None, pl.Int64).alias("force_end"))
    assert edited_overrides(shown, cleared, {}) is None  # a cleared cell is not an edit
    edited = shown.with_columns(
        pl.when(pl.col("run") == "b")
        .then(1000)
        .otherwise(pl.col("ponder_start"))
        .alias("ponder_start")
    )
    before = {"a": {"force_end": 700}}
    out = edited_overrides(shown, edited, before)
    assert out == {"a": {"force_end": 700}, "b": {"ponder_start": 1000}}
    assert before == {"a": {"force_end": 700}}  # not changed in place
