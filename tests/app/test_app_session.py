"""The user's view in AppTest: a selection that no widget-state loss can empty, the URL
that carries the view into a new session, and values from it that cannot be used."""

from __future__ import annotations

from typing import Any

import pytest
from app_helpers import PAGES, SAMPLE_NAMES, assert_ok, chart_by_title, goto, line_data, new_app
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


KINDS = ("toggle", "radio", "selectbox", "multiselect", "select_slider", "text_input")
"""The controls a page offers whose value a user sets (sliders are checked above and in
the URL tests, buttons have no value to keep)."""


def _controls(at: AppTest) -> dict[str, Any]:
    return {w.key: w.value for kind in KINDS for w in getattr(at.main, kind) if w.key}


def _change(widget: Any) -> bool:
    """Set the control to another value it can take, as a user would; False when it
    has no other."""
    kind = type(widget).__name__.lower()
    value = widget.value
    if kind == "toggle":
        widget.set_value(not value)
        return True
    if kind == "textinput":
        widget.set_value("seed")
        return True
    options = list(widget.options)
    if kind == "multiselect":
        rest = [o for o in options if o not in {str(v) for v in value}]
        widget.set_value([*value, rest[0]] if rest else list(value)[:-1])
        return True
    if kind == "selectslider":
        widget.set_value(options[0] if str(value) != options[0] else options[-1])
        return True
    if len(options) < 2:
        return False
    # The next option, sent by its label as the browser sends it: AppTest holds only the
    # labels (formatted) and finds a value's index through the page's format function,
    # so the index is given directly.
    i = (widget.index + 1) % len(options)
    widget.__class__ = type("ByIndex", (type(widget),), {"index": property(lambda _: i)})
    widget.set_value(options[i])
    return True


@pytest.mark.parametrize("page", PAGES)
def test_every_control_a_user_set_is_kept_across_a_page_switch(page: str) -> None:
    """Streamlit forgets a widget that a run does not draw; every control the user set
    on a page (switches, pickers, filters) is there as set when they come back."""
    at = new_app().run()
    goto(at, page)
    changed, seen = 0, set()
    # Controls a change brings out (the Runs page's filters, once opened) are set too.
    while todo := [k for k in _controls(at) if k not in seen]:
        for key in todo:
            seen.add(key)
            widgets = [w for kind in KINDS for w in getattr(at.main, kind) if w.key == key]
            if widgets and _change(widgets[0]):  # (an earlier change may have hidden it)
                at.run()
                assert_ok(at)
                changed += 1
    assert changed, "the page offers no control to check"
    before = _controls(at)
    other = "generations" if page != "generations" else "sweep"
    goto(at, other)
    goto(at, page)
    assert _controls(at) == before


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
