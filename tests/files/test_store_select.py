"""Choosing runs from a runs table: search, filters and sort (`query.select_runs`)."""

from __future__ import annotations

import polars as pl
import pytest

from ponder_parse.files.store.query import RunFilter, choice_values, select_runs

TABLE = pl.DataFrame(
    {
        "run": ["target_k=1.3,seed=0", "target_k=1.3,seed=1", "target_k=2.4,seed=0", "Gate=stuck"],
        "health": ["healthy", "warning", "critical", "critical"],
        "target_k": ["1.3", "1.3", "2.4", None],
        "tag": ["a", None, "b", "a"],
        "final LM": [3.1, 3.0, None, 4.2],
        "win rate": [0.5, 0.7, 0.1, 0.0],
    }
)


def names(f: RunFilter) -> list[str]:
    return select_runs(TABLE, f)["run"].to_list()


def test_no_filter_keeps_every_run_in_order() -> None:
    assert names(RunFilter()) == TABLE["run"].to_list()


def test_search_is_a_case_insensitive_substring_by_default() -> None:
    assert names(RunFilter(search="SEED=0")) == ["target_k=1.3,seed=0", "target_k=2.4,seed=0"]
    # Regex characters are literal without the switch.
    assert names(RunFilter(search="1.3,seed=.")) == []
    assert names(RunFilter(search="gate")) == ["Gate=stuck"]


def test_search_as_a_regular_expression() -> None:
    assert names(RunFilter(search=r"^target_k=1\.3,seed=[01]$", regex=True)) == [
        "target_k=1.3,seed=0",
        "target_k=1.3,seed=1",
    ]
    assert names(RunFilter(search="^gate", regex=True)) == ["Gate=stuck"]


def test_an_invalid_regular_expression_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a valid regular expression"):
        select_runs(TABLE, RunFilter(search="seed=(", regex=True))


def test_health_values_and_ranges_combine() -> None:
    assert names(RunFilter(health=("critical",))) == ["target_k=2.4,seed=0", "Gate=stuck"]
    assert names(RunFilter(values={"target_k": ("1.3",)})) == [
        "target_k=1.3,seed=0",
        "target_k=1.3,seed=1",
    ]
    assert names(RunFilter(values={"tag": ("a",)}, health=("critical",))) == ["Gate=stuck"]
    # An empty choice of values filters nothing; a run without a value is out of a range.
    assert names(RunFilter(values={"tag": ()})) == TABLE["run"].to_list()
    assert names(RunFilter(ranges={"final LM": (None, 3.5)})) == [
        "target_k=1.3,seed=0",
        "target_k=1.3,seed=1",
    ]
    assert names(RunFilter(ranges={"win rate": (0.5, 0.7)})) == [
        "target_k=1.3,seed=0",
        "target_k=1.3,seed=1",
    ]


def test_sort_puts_missing_values_last_and_breaks_ties_by_name() -> None:
    assert names(RunFilter(sort="final LM")) == [
        "target_k=1.3,seed=1",
        "target_k=1.3,seed=0",
        "Gate=stuck",
        "target_k=2.4,seed=0",
    ]
    assert names(RunFilter(sort="final LM", descending=True))[:2] == [
        "Gate=stuck",
        "target_k=1.3,seed=0",
    ]
    assert names(RunFilter(sort="health")) == [
        "Gate=stuck",
        "target_k=2.4,seed=0",
        "target_k=1.3,seed=0",
        "target_k=1.3,seed=1",
    ]


def test_unknown_columns_and_text_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="no column"):
        select_runs(TABLE, RunFilter(values={"lambda_max": ("1",)}))
    with pytest.raises(ValueError, match="not a number column"):
        select_runs(TABLE, RunFilter(ranges={"tag": (0.0, 1.0)}))


def test_choice_values_sort_numbers_by_value() -> None:
    t = pl.DataFrame({"x": ["0.05", "0.0005", None, "0.05", "10"], "y": ["b", "a", "c", None, "a"]})
    assert choice_values(t, "x") == ["0.0005", "0.05", "10"]
    assert choice_values(t, "y") == ["a", "b", "c"]
