"""The view's rules as pure functions: what a URL may say, and how a range follows a live run."""

from __future__ import annotations

import pytest

from ponder_app import viewstate as vs

NAMES = ["a", "b,seed=1", "c"]


def test_reconcile_keeps_the_choice_and_shows_new_runs() -> None:
    assert vs.reconcile_selection(NAMES, None, None) == NAMES
    assert vs.reconcile_selection(NAMES, ["c", "a"], NAMES) == ["a", "c"]  # load order
    assert vs.reconcile_selection(NAMES, [], NAMES) == []  # an empty choice stays empty
    # A run that appeared is shown; one that went is dropped; the rest is kept.
    assert vs.reconcile_selection([*NAMES, "d"], ["a", "gone"], [*NAMES, "gone"]) == ["a", "d"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["c", "a"], ["a", "c"]),
        (["b,seed=1"], ["b,seed=1"]),
        ([""], []),
        (["nope"], None),  # names no loaded run: ignored
        (["nope", "a"], ["a"]),
        ([], None),
    ],
)
def test_parse_runs(values: list[str], expected: list[str] | None) -> None:
    assert vs.parse_runs(values, NAMES) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100-900", (100, 900)),
        ("0-99999", (10, 5000)),  # clamped into the runs' steps
        ("900-100", None),
        ("a-b", None),
        ("100", None),
        ("-5-10", None),
        ("1e3-2e3", None),
        ("", None),
    ],
)
def test_parse_range(text: str, expected: tuple[int, int] | None) -> None:
    assert vs.parse_range([text], 10, 5000) == expected


@pytest.mark.parametrize("text", ["nan", "inf", "-0.1", "1.5", "x", ""])
def test_parse_float_ignores_what_is_not_a_setting(text: str) -> None:
    assert vs.parse_float([text], 0.0, 0.99) is None


def test_parse_float_and_choices() -> None:
    assert vs.parse_float(["0.3"], 0.0, 0.99) == 0.3
    assert vs.parse_choices(["lm", "zz", "lm", "k"], ["k", "lm"]) == ["lm", "k"]
    assert vs.parse_choices(["zz"], ["k"]) is None
    assert vs.parse_choice(["zz", "c"], NAMES) == "c"


def test_encode_leaves_defaults_out_and_round_trips() -> None:
    plain = vs.encode(names=NAMES, selected=NAMES, baseline="a", full_range=(0, 10))
    assert plain == {}
    url = vs.encode(
        names=NAMES,
        selected=["b,seed=1", "c"],
        baseline="c",
        metrics=["lm_loss", "k"],
        step_range=(2, 8),
        full_range=(0, 10),
        smoothing=0.3,
    )
    assert url == {
        "run": ["b,seed=1", "c"],
        "baseline": ["c"],
        "metric": ["lm_loss", "k"],
        "steps": ["2-8"],
        "smooth": ["0.3"],
    }
    assert vs.parse_runs(url["run"], NAMES) == ["b,seed=1", "c"]
    assert vs.parse_range(url["steps"], 0, 10) == (2, 8)
    assert vs.encode(names=NAMES, selected=[], baseline=None) == {"run": [""]}


def test_changes_touch_only_the_apps_parameters() -> None:
    to_set, to_drop = vs.changes(
        {"run": ["a"], "smooth": ["0.3"], "other": ["x"]}, {"run": ["a"], "steps": ["1-2"]}
    )
    assert to_set == {"steps": ["1-2"]}
    assert to_drop == ["smooth"]


def test_follow_range_like_tensorboard() -> None:
    # At the old last step: follows the new one.
    assert vs.follow_range((0, 100), 0, 150, 100) == (0, 150)
    assert vs.follow_range((40, 100), 0, 150, 100) == (40, 150)
    # Zoomed somewhere else: stays.
    assert vs.follow_range((20, 60), 0, 150, 100) == (20, 60)
    # Nothing chosen yet: everything.
    assert vs.follow_range(None, 0, 150, None) == (0, 150)
    # Runs deselected (the last step shrank): clamped.
    assert vs.follow_range((20, 150), 0, 90, 150) == (20, 90)


def test_follow_step() -> None:
    assert vs.follow_step(100, [50, 100, 150], 100) == 150  # was on the latest
    assert vs.follow_step(50, [50, 100, 150], 100) == 50  # chose an earlier one
    assert vs.follow_step(None, [50, 100], None) == 100
    assert vs.follow_step(75, [50, 100], 100) == 100  # gone


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["100"], 100),
        ([" 150 "], 150),
        (["75"], None),  # never logged: not moved to a neighbour
        (["-50"], None),
        (["1e2"], None),
        (["abc"], None),
        ([""], None),
        ([], None),
        (["50", "100"], 100),  # the last one counts
    ],
)
def test_parse_step(values: list[str], expected: int | None) -> None:
    assert vs.parse_step(values, [50, 100, 150]) == expected


def test_encode_the_layer_and_trace_views() -> None:
    plain = vs.encode(
        names=NAMES, selected=NAMES, baseline="a", layer_range=(0, 10), layer_full_range=(0, 10)
    )
    assert plain == {}
    url = vs.encode(
        names=NAMES,
        selected=NAMES,
        baseline="a",
        layer_metric="p_mean",
        layer_range=(3, 7),
        layer_full_range=(0, 10),
        layer_view="lines",
        trace_step=350,
    )
    assert url == {
        "layer_metric": ["p_mean"],
        "layer_steps": ["3-7"],
        "layer_view": ["lines"],
        "trace_step": ["350"],
    }
    assert vs.parse_range(url["layer_steps"], 0, 10) == (3, 7)
    assert vs.parse_step(url["trace_step"], [300, 350]) == 350
    # Every parameter written is one the app owns (so a change can drop it again).
    assert set(url) <= set(vs.PARAMS)
