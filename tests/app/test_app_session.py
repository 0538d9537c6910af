"""The user's view in AppTest: a selection that no widget-state loss can empty, the URL
that carries the view into a new session, and values from it that cannot be used."""

from __future__ import annotations

import pytest
from app_helpers import SAMPLE_NAMES, assert_ok, chart_by_title, goto, line_data, new_app
from streamlit.testing.v1 import AppTest

KEEP = [n for n in SAMPLE_NAMES if n not in {"gate=stuck,seed=0", "baseline,seed=1"}]


def shown(at: AppTest) -> list[str]:
    return list(at.multiselect(key="selected_widget").value)


def test_selection_survives_the_widget_losing_its_state() -> None:
    at = new_app().run()
    at.multiselect(key="selected_widget").set_value(KEEP).run()
    assert_ok(at)
    assert sorted(at.session_state["selected_runs"]) == KEEP
    # What Streamlit does to a widget in some runs (a page switch whose request carries
    # no state for it, or a widget id that changed): it comes back empty, with no edit.
    at.session_state["selected_widget"] = []
    goto(at, "generations")
    assert sorted(shown(at)) == KEEP
    assert not [i for i in at.info if "No runs selected" in str(i.value)]


def test_an_empty_choice_stays_empty() -> None:
    at = new_app().run()
    at.multiselect(key="selected_widget").set_value([]).run()
    goto(at, "sweep")
    assert shown(at) == []
    assert any("No runs selected" in str(i.value) for i in at.info)


def test_the_url_opens_the_same_view() -> None:
    at = new_app()
    at.query_params = {
        "run": ["baseline,seed=0", "gate=stuck,seed=0"],
        "baseline": "gate=stuck,seed=0",
        "metric": ["steps.avg_k", "steps.lm_loss"],
        "steps": "500-1500",
        "smooth": "0.2",
    }
    at.run()
    goto(at, "step_line")
    assert sorted(shown(at)) == ["baseline,seed=0", "gate=stuck,seed=0"]
    assert at.session_state["baseline"] == "gate=stuck,seed=0"
    assert list(at.multiselect(key="sl_metrics").value) == ["steps.avg_k", "steps.lm_loss"]
    assert tuple(at.slider(key="sl_range").value) == (500, 1500)
    assert at.slider(key="sl_smooth").value == pytest.approx(0.2)
    steps = line_data(chart_by_title(at, "LM"))["step"]
    assert steps.min() >= 500 and steps.max() <= 1500


def test_the_view_is_written_to_the_url() -> None:
    at = new_app().run()
    assert not {"run", "metric", "steps", "smooth"} & set(at.query_params)  # defaults: a plain URL
    at.multiselect(key="selected_widget").set_value(KEEP).run()
    goto(at, "step_line")
    at.slider(key="sl_smooth").set_value(0.3).run()
    at.slider(key="sl_range").set_value((200, 900)).run()
    assert_ok(at)
    qp = at.query_params
    assert sorted(qp["run"]) == KEEP
    assert qp["smooth"] in ("0.3", ["0.3"])
    assert qp["steps"] in ("200-900", ["200-900"])
    # A new session given that URL sees the same view.
    again = new_app()
    again.query_params = dict(qp)
    again.run()
    goto(again, "step_line")
    assert sorted(shown(again)) == KEEP
    assert tuple(again.slider(key="sl_range").value) == (200, 900)
    assert again.slider(key="sl_smooth").value == pytest.approx(0.3)


def test_the_step_line_controls_survive_a_page_switch() -> None:
    at = new_app().run()
    goto(at, "step_line")
    at.slider(key="sl_smooth").set_value(0.9).run()
    goto(at, "home")
    goto(at, "step_line")
    assert at.slider(key="sl_smooth").value == pytest.approx(0.9)


@pytest.mark.parametrize(
    "params",
    [
        {"run": "no such run", "baseline": "<script>", "metric": "zz", "steps": "9-1"},
        {"steps": "a-b", "smooth": "nan"},
        {"smooth": "1e308", "metric": ["", "k k"], "steps": "-1--5"},
        {"run": ["", "x"], "baseline": ""},
    ],
)
def test_unusable_url_values_are_ignored(params: dict[str, object]) -> None:
    at = new_app()
    at.query_params = params
    at.run()
    assert_ok(at)
    goto(at, "step_line")
    assert_ok(at)
    assert not at.exception


def test_tag_and_phase_edits_outlive_the_session() -> None:
    at = new_app().run()
    goto(at, "sweep")
    at.session_state["sw_tags_baseline,seed=0"] = {
        "edited_rows": {},
        "added_rows": [{"key": "mytag", "value": "7"}],
        "deleted_rows": [],
    }
    at.run()
    at.button(key="sw_apply").click().run()
    assert_ok(at)
    goto(at, "phase_comparison")
    at.session_state["phase_editor"] = {
        "edited_rows": {0: {"ponder_start": 1500}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert_ok(at)
    # A new session over the same runs starts with both edits.
    again = new_app().run()
    assert again.session_state["tag_edits"]["baseline,seed=0"] == {"mytag": 7}
    assert again.session_state["phase_overrides"]["baseline,seed=0"] == {"ponder_start": 1500}
    # Reset in the new session: saved as reset too.
    goto(again, "phase_comparison")
    again.button(key="phase_reset").click().run()
    assert_ok(again)
    third = new_app().run()
    assert "baseline,seed=0" not in third.session_state["phase_overrides"]
    assert third.session_state["tag_edits"]["baseline,seed=0"] == {"mytag": 7}
