"""Sweep table, diff-only columns, seed groups and mean/min-max bands."""

from __future__ import annotations

import math

import polars as pl
import pytest

from ponder_parse.analysis.sweep import (
    OUTCOMES,
    group_band,
    repeated_seed_groups,
    seed_groups,
    sweep_table,
    sweep_view,
    swept_hparams,
    varying_hparams,
)
from ponder_parse.run import Run


def run(name: str, steps: pl.DataFrame | None = None, **hparams: object) -> Run:
    r = Run(name=name, hparams=dict(hparams))
    if steps is not None:
        r.steps = steps
    return r


@pytest.fixture
def sweep() -> list[Run]:
    return [
        run("a1", target_k=2.4, eta=2.0, seed=1, variant="model3b", kmax=4),
        run("a2", target_k=2.4, eta=2, seed=2, variant="model3b", kmax=4),
        run("b1", target_k=1.3, eta=2.0, seed=1, variant="model3b", kmax=4),
        run("b2", target_k=1.3, eta=2.0, seed=2, variant="model3b", kmax=4),
        run("c1", target_k=1.3, eta=4.0, seed=1, variant="model3b", kmax=4),
        run("solo", target_k=1.3, eta=4.0, variant="model3b", kmax=4),
    ]


def test_sweep_table_columns_dtypes_and_summaries(sweep: list[Run]) -> None:
    extra = run("x", target_k=2.4, seed="auto", note="baseline", ponder=True)
    runs = [*sweep, extra]
    summaries = {
        "a1": {"final_lm": 2.9, "steps": 1000, "run": "ignored", "kmax": 3},
        "x": {"final_lm": float("nan"), "status": "diverged"},
    }
    table = sweep_table(runs, summaries)
    assert table.columns == [
        "run",
        "target_k",
        "eta",
        "kmax",
        "seed",
        "variant",
        "ponder",
        "note",
        "final_lm",
        "steps",
        "kmax (summary)",
        "status",
    ]
    assert table["run"].to_list() == [r.name for r in runs]
    assert table.schema["target_k"] == pl.Float64
    assert table.schema["eta"] == pl.Float64  # 2 and 2.0 mix: numeric, not text
    assert table.schema["kmax"] == pl.Int64
    assert table.schema["seed"] == pl.String  # `auto` among numbers: shown as written
    assert table["seed"].to_list() == ["1", "2", "1", "2", "1", None, "auto"]
    assert table.schema["ponder"] == pl.Boolean
    assert table["ponder"].to_list() == [None] * 6 + [True]
    assert table["eta"].to_list()[-1] is None
    assert table["final_lm"].to_list() == [2.9] + [None] * 6
    assert table["steps"].dtype == pl.Int64
    assert table["status"].to_list()[-1] == "diverged"


def test_sweep_table_summaries_as_sequence(sweep: list[Run]) -> None:
    table = sweep_table(sweep[:2], [{"final_lm": 3.0}, {"final_lm": 2.5}])
    assert table["final_lm"].to_list() == [3.0, 2.5]
    with pytest.raises(ValueError, match="2 summaries for 1 runs"):
        sweep_table(sweep[:1], [{}, {}])


def test_sweep_table_empty() -> None:
    table = sweep_table([])
    assert table.columns == ["run"] and table.height == 0
    assert sweep_table([run("a")]).columns == ["run"]


def test_varying_hparams(sweep: list[Run]) -> None:
    assert varying_hparams(sweep) == ["target_k", "eta", "seed"]
    # 2 == 2.0, and float noise at print precision is no difference
    assert (
        varying_hparams([run("p", eta=2), run("q", eta=2.0), run("r", eta=2.0000000000001)]) == []
    )
    # a key missing from one run varies
    assert varying_hparams([run("p", eta=2), run("q")]) == ["eta"]
    assert varying_hparams(sweep[:1]) == []


def test_seed_groups(sweep: list[Run]) -> None:
    groups = seed_groups(sweep)
    # target_k=1.3 and eta=2.0 are what most configurations use: only departures are named,
    # and the group using all of them (its names share no prefix) lists them all.
    assert groups == {
        "target_k=2.4": ["a1", "a2"],
        "target_k=1.3,eta=2.0": ["b1", "b2"],
        "c1": ["c1"],
        "solo": ["solo"],
    }


def test_seed_group_labels_in_a_grid_and_a_baseline_sweep() -> None:
    grid = [
        run(f"tk{tk}_eta{eta}_s{seed}", target_k=tk, eta=eta, seed=seed)
        for tk in (1.3, 2.4)
        for eta in (2.0, 4.0)
        for seed in (1, 2)
    ]
    assert list(seed_groups(grid)) == [
        "target_k=1.3,eta=2.0",
        "target_k=1.3,eta=4.0",
        "target_k=2.4,eta=2.0",
        "target_k=2.4,eta=4.0",
    ]
    one_at_a_time = [
        run("baseline,seed=0", target_k=1.3, halt_thr=0.5, lr=3e-4, seed=0),
        run("baseline,seed=1", target_k=1.3, halt_thr=0.5, lr=3e-4, seed=1),
        run("halt_thr=0.1,seed=0", target_k=1.3, halt_thr=0.1, lr=3e-4, seed=0),
        run("halt_thr=0.1,seed=1", target_k=1.3, halt_thr=0.1, lr=3e-4, seed=1),
        run("lr=0.001,seed=0", target_k=1.3, halt_thr=0.5, lr=1e-3, seed=0),
    ]
    assert seed_groups(one_at_a_time) == {
        "baseline": ["baseline,seed=0", "baseline,seed=1"],
        "halt_thr=0.1": ["halt_thr=0.1,seed=0", "halt_thr=0.1,seed=1"],
        "lr=0.001,seed=0": ["lr=0.001,seed=0"],
    }


def test_seed_groups_only_seeds_vary() -> None:
    runs = [run("tk2.4_seed1", seed=1, eta=2.0), run("tk2.4_seed2", seed=2, eta=2.0)]
    assert seed_groups(runs) == {"tk2.4": ["tk2.4_seed1", "tk2.4_seed2"]}
    runs = [run("1", seed=1), run("2", seed=2)]
    assert seed_groups(runs) == {"seeds": ["1", "2"]}


def test_seed_groups_custom_seed_key_and_label_collision() -> None:
    runs = [
        run("lr=0.001", lr=1e-3, data_seed=1),
        run("b", lr=1e-3, data_seed=2),
        run("c", lr=2e-3, data_seed=1),
    ]
    assert seed_groups(runs) == {"lr=0.001": ["lr=0.001"], "b": ["b"], "c": ["c"]}
    groups = seed_groups(runs, seed_keys=("data_seed",))
    assert groups == {"lr=0.001 (seeds)": ["lr=0.001", "b"], "c": ["c"]}


def test_seed_groups_every_run_once(sweep: list[Run]) -> None:
    groups = seed_groups(sweep)
    members = [n for names in groups.values() for n in names]
    assert sorted(members) == sorted(r.name for r in sweep)


def frame(steps: list[int], lm: list[float | None], k: list[float] | None = None) -> pl.DataFrame:
    data: dict[str, object] = {"step": steps, "lm_loss": lm}
    if k is not None:
        data["avg_k"] = k
    data["audit"] = [False] * len(steps)
    return pl.DataFrame(data, schema_overrides={"step": pl.Int64, "lm_loss": pl.Float64})


def test_group_band_values() -> None:
    frames = {
        "a1": frame([0, 10, 20], [4.0, 3.0, 2.0], [2.0, 1.8, 1.5]),
        "a2": frame([0, 10, 20, 30], [6.0, 5.0, None, 1.0], [2.0, 1.6, 1.5, 1.4]),
        "a3": frame([10, 20], [4.0, float("nan")], [1.4, 1.5]),
        "b1": frame([0, 10, 10], [9.0, 8.0, 7.0]),  # step 10 logged twice: last counts
    }
    groups = {"A": ["a1", "a2", "a3", "missing"], "B": ["b1"]}
    band = group_band(frames, groups, columns=["lm_loss"])
    assert band.columns == ["group", "step", "metric", "mean", "min", "max", "n"]
    assert band.schema["step"] == pl.Int64 and band.schema["n"] == pl.Int64
    rows = {(r["group"], r["step"]): r for r in band.iter_rows(named=True)}
    assert list(rows) == [("A", 0), ("A", 10), ("A", 20), ("A", 30), ("B", 0), ("B", 10)]
    assert rows[("A", 0)] | {} == {
        "group": "A",
        "step": 0,
        "metric": "lm_loss",
        "mean": 5.0,
        "min": 4.0,
        "max": 6.0,
        "n": 2,
    }
    a10 = rows[("A", 10)]
    assert (a10["mean"], a10["min"], a10["max"], a10["n"]) == (4.0, 3.0, 5.0, 3)
    a20 = rows[("A", 20)]  # null in a2 and NaN in a3 are absent, not poison
    assert (a20["mean"], a20["n"]) == (2.0, 1)
    assert rows[("A", 30)]["n"] == 1
    assert (rows[("B", 10)]["mean"], rows[("B", 10)]["n"]) == (7.0, 1)


def test_group_band_default_columns_and_order() -> None:
    frames = {
        "a1": frame([0, 10], [4.0, 3.0], [2.0, 1.8]),
        "a2": frame([0, 10], [6.0, 5.0], [2.0, 1.6]),
    }
    band = group_band(frames, {"g": ["a1", "a2"]})
    assert band["metric"].unique(maintain_order=True).to_list() == ["lm_loss", "avg_k"]
    k10 = band.filter((pl.col("metric") == "avg_k") & (pl.col("step") == 10)).row(0, named=True)
    assert math.isclose(k10["mean"], 1.7) and k10["min"] == 1.6 and k10["max"] == 1.8


def test_group_band_other_x_and_empty() -> None:
    frames = {"a": pl.DataFrame({"t": [0.5, 1.5], "lm_loss": [1.0, 2.0]})}
    band = group_band(frames, {"g": ["a"]}, x="t", columns=["lm_loss", "nope"])
    assert band.columns == ["group", "t", "metric", "mean", "min", "max", "n"]
    assert band["t"].to_list() == [0.5, 1.5]
    empty = group_band({}, {"g": ["a"]})
    assert empty.height == 0
    assert empty.columns == ["group", "step", "metric", "mean", "min", "max", "n"]


def test_groups_feed_bands(sweep: list[Run]) -> None:
    for i, r in enumerate(sweep):
        r.steps = frame([0, 10], [float(i), float(i) + 1])
    groups = seed_groups(sweep)
    band = group_band({r.name: r.steps for r in sweep}, groups, columns=["lm_loss"])
    first = band.filter(pl.col("group") == "target_k=2.4").sort("step")
    assert first["mean"].to_list() == [0.5, 1.5] and first["n"].to_list() == [2, 2]
    assert band["group"].unique(maintain_order=True).to_list() == list(groups)


def test_swept_hparams_leaves_out_what_only_the_log_says() -> None:
    a = run("a", lr=1e-3, params=100, seed=1)
    b = run("b", lr=3e-3, params=200, seed=1)
    for r in (a, b):
        r.meta["hparam_sources"] = {"lr": "config.yaml", "params": "log", "seed": "folder name"}
    assert swept_hparams([a, b]) == ["lr"]  # params differs but only the log says so
    b.meta["hparam_sources"]["params"] = "user"
    assert swept_hparams([a, b]) == ["lr", "params"]
    assert swept_hparams([a]) == []


def test_repeated_seed_groups_leave_out_groups_of_one(sweep: list[Run]) -> None:
    repeated = repeated_seed_groups(sweep)
    assert repeated == {g: m for g, m in seed_groups(sweep).items() if len(m) > 1}
    assert repeated and all(len(m) > 1 for m in repeated.values())
    assert "solo" not in {r for m in repeated.values() for r in m}


def test_sweep_view_columns_and_choices(sweep: list[Run]) -> None:
    summaries = {
        r.name: {"final_lm": 3.0 + i / 10, "win_rate": 0.5, "n_critical": i % 2, "other": 1}
        for i, r in enumerate(sweep)
    }
    view = sweep_view(sweep, summaries)
    t = view.table
    assert t["run"].to_list() == [r.name for r in sweep]
    assert "other" not in t.columns  # only the outcomes are taken from a summary
    outcomes = [c for c in OUTCOMES if c in t.columns]
    assert outcomes == list(OUTCOMES)  # every outcome a column, null where not given
    assert view.shown == ["run", *outcomes, *varying_hparams(sweep)]
    assert "kmax" not in view.shown  # the same in every run
    # numeric and varying: win_rate is the same everywhere, target_k/eta/seed/final_lm vary
    assert view.axes == ["final_lm", "n_critical", "target_k", "eta", "seed"]
    assert view.default_axes == ["target_k", "eta", "seed", "final_lm"]
    assert view.x_options == ["target_k", "eta", "seed"]
    assert view.y_options == outcomes
    everything = sweep_view(sweep, summaries, only_varying=False)
    assert "kmax" in everything.shown and "variant" in everything.shown
    assert everything.table.equals(t)


def test_sweep_view_when_nothing_varies() -> None:
    runs = [run("a", lr=1.0), run("b", lr=1.0)]
    view = sweep_view(runs, {"a": {"final_lm": 3.0}, "b": {"final_lm": 3.0}})
    assert view.shown == ["run", *OUTCOMES]
    assert view.x_options == ["lr"]  # nothing differs: offer every setting
    assert view.axes == [] and view.default_axes == []
    bare = sweep_view(runs, {})
    assert bare.shown == ["run"] and bare.y_options == []
