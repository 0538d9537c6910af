"""Red-flag thresholds edited on the Red flags page reach every page (AppTest), and the
sweep-relative findings show on the Red flags and Runs pages."""

from __future__ import annotations

import pytest
from app_helpers import (
    assert_ok,
    chart_by_title,
    dataset_with,
    goto,
    main_text,
    new_app,
    runs_table,
    table_with,
)
from streamlit.testing.v1 import AppTest

HALT = "halt_thr=0.1,seed=0"  # its one finding: gap_high (passes run past the survival)


@pytest.fixture(scope="module", autouse=True)
def _no_runs_from_outside():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PONDER_RUNS", raising=False)
        yield


@pytest.fixture
def fresh() -> AppTest:
    at = new_app().run()
    assert_ok(at)
    return at


def open_thresholds(at: AppTest) -> AppTest:
    """The Red flags page with its Thresholds expander opened (its content is made only
    while it is open)."""
    goto(at, "red_flags")
    at.session_state["rf_thresholds_open"] = True
    at.run()
    assert_ok(at)
    return at


def test_the_threshold_inputs_are_made_only_while_their_expander_is_open(fresh: AppTest) -> None:
    goto(fresh, "red_flags")
    keys = lambda: {n.key for n in fresh.number_input}  # noqa: E731
    assert not {k for k in keys() if k and k.startswith("rf_set_")}
    open_thresholds(fresh)
    assert "rf_set_gap_high_min_survival" in keys()
    fresh.session_state["rf_thresholds_open"] = False
    fresh.run()
    assert not {k for k in keys() if k and k.startswith("rf_set_")}


def _health(at: AppTest) -> dict[str, str]:
    goto(at, "home")
    t = runs_table(at)
    return dict(zip(t["run"], t["health"], strict=True))


def test_an_edited_threshold_reaches_the_runs_page_and_resets(fresh: AppTest) -> None:
    assert _health(fresh)[HALT] == "warning"
    open_thresholds(fresh)
    fresh.number_input(key="rf_set_gap_high_min_survival").set_value(0.0).run()
    assert_ok(fresh)
    found = table_with(fresh, "first_step")
    assert not found.filter((found["run"] == HALT) & (found["rule"] == "gap_high")).height
    assert _health(fresh)[HALT] == "healthy"
    assert "gap_high" in main_text(fresh)  # the Runs page says which thresholds changed
    open_thresholds(fresh)
    fresh.button(key="rf_reset_gap_high").click().run()
    assert_ok(fresh)
    assert fresh.number_input(key="rf_set_gap_high_min_survival").value == 0.05
    assert _health(fresh)[HALT] == "warning"


def test_a_nested_setting_is_editable(fresh: AppTest) -> None:
    """A stricter "sustained" for GRAD, through the nested Sustain settings."""
    open_thresholds(fresh)
    box = fresh.number_input(key="rf_set_grad_sustained_sustain.window")
    assert box.value == 20
    box.set_value(40).run()
    assert_ok(fresh)
    assert "grad_sustained" in main_text(fresh)  # "Changed: grad_sustained."


def test_sweep_findings_show_on_red_flags_and_runs(fresh: AppTest) -> None:
    goto(fresh, "red_flags")
    found = table_with(fresh, "first_step")
    sweep = found.filter(found["rule"].str.starts_with("sweep_"))
    assert ("lambda_max=0.0005,seed=0", "sweep_k") in set(
        zip(sweep["run"], sweep["rule"], strict=True)
    )
    goto(fresh, "home")
    t = runs_table(fresh)
    peers = dict(zip(t["run"], t["vs peers"], strict=True))
    assert "mean k (economic) higher" in peers["lambda_max=0.0005,seed=0"]
    assert peers["baseline,seed=0"] is None


def test_an_edited_threshold_moves_its_line_on_the_step_line(fresh: AppTest) -> None:
    """A chart's threshold line is the rule's setting: edited on the Red flags page, the
    P_NR line moves with the finding."""

    def pnr_lines() -> list[float]:
        goto(fresh, "step_line")
        fresh.multiselect(key="sl_metrics").set_value(["steps.p_near_clamp"]).run()
        assert_ok(fresh)
        lines = dataset_with(chart_by_title(fresh, "P_NR"), "y", "label")
        assert lines is not None
        return sorted(lines["y"].to_list())

    assert pnr_lines() == [0.2]
    open_thresholds(fresh)
    fresh.number_input(key="rf_set_p_near_clamp_high_threshold").set_value(0.35).run()
    assert_ok(fresh)
    assert pnr_lines() == [0.35]
