"""Where runs come from, through AppTest: uploads (loose logs, zip and tar.gz of run
folders, hostile archives), `--runs`, `PONDER_RUNS`, the sidebar path box, and following
a log while it grows.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
import tempfile
import zipfile
from pathlib import Path

import polars as pl
import pytest
from app_helpers import (
    SAMPLE_NAMES,
    SAMPLE_RUNS,
    assert_ok,
    copy_run,
    goto,
    head_lines,
    log_of,
    new_app,
    open_run_details,
    rendered,
    run_folder_members,
    runs_table,
    sidebar_text,
    table_with,
    tar_gz_bytes,
    zip_bytes,
)
from streamlit.testing.v1 import AppTest

from ponder_app import state
from ponder_parse.run import Run

BASE_LOG = log_of(SAMPLE_RUNS / "baseline,seed=0")


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No run paths from outside, and the session's upload folder inside this test's tmp."""
    monkeypatch.delenv("PONDER_RUNS", raising=False)
    monkeypatch.setattr(sys, "argv", ["app.py"])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def log_bytes(n_lines: int, source: Path = BASE_LOG) -> bytes:
    return ("\n".join(head_lines(source, n_lines)) + "\n").encode()


def upload(at: AppTest, *files: tuple[str, bytes]) -> AppTest:
    at.file_uploader(key="uploads").set_value(
        [(name, data, "application/octet-stream") for name, data in files]
    ).run()
    assert_ok(at)
    return at


def loaded_names(at: AppTest) -> list[str]:
    return list(at.multiselect(key="selected_widget").options)


def show_all(at: AppTest) -> pl.DataFrame:
    """Select every loaded run and return the home page's runs table."""
    ms = at.multiselect(key="selected_widget")
    ms.set_value(list(ms.options)).run()
    assert_ok(at)
    return runs_table(at)


def upload_root(at: AppTest) -> Path:
    return Path(at.session_state["_upload_dir"])


# --- uploads ---------------------------------------------------------------------------------


def test_loose_logs_each_become_a_run() -> None:
    at = new_app().run()
    assert sorted(loaded_names(at)) == SAMPLE_NAMES
    upload(
        at,
        ("log_alpha.txt", log_bytes(3000)),
        ("beta.log", log_bytes(1200, log_of(SAMPLE_RUNS / "gate=stuck,seed=0"))),
    )
    # Uploads replace the bundled sample sweep.
    assert sorted(loaded_names(at)) == ["beta", "log_alpha"]
    t = show_all(at)
    steps = dict(zip(t["run"], t["steps"], strict=True))
    assert 1000 < steps["log_alpha"] < 3000
    assert 0 < steps["beta"] < steps["log_alpha"]
    # Written only inside the session's upload folder.
    for name in ("log_alpha", "beta"):
        assert len(list(upload_root(at).rglob(f"{name}/*"))) == 1


def test_uploaded_run_is_shown_at_once() -> None:
    at = new_app().run()
    upload(at, ("log_alpha.txt", log_bytes(3000)))
    assert at.multiselect(key="selected_widget").value == ["log_alpha"]
    assert runs_table(at)["run"].to_list() == ["log_alpha"]


def test_uploads_hide_the_samples_and_say_so_with_a_way_back() -> None:
    at = new_app().run()
    upload(at, ("log_alpha.txt", log_bytes(1500)))
    assert loaded_names(at) == ["log_alpha"]
    assert "Sample runs hidden" in sidebar_text(at)
    at.toggle(key="keep_samples").set_value(True).run()
    assert_ok(at)
    assert sorted(loaded_names(at)) == sorted([*SAMPLE_NAMES, "log_alpha"])
    # The samples come back shown, and the upload stays shown.
    assert sorted(at.multiselect(key="selected_widget").value) == sorted(loaded_names(at))
    assert "Sample runs hidden" not in sidebar_text(at)


def test_three_same_named_uploads_are_told_apart() -> None:
    at = new_app().run()
    logs = [log_bytes(n) for n in (1200, 1500, 1800)]
    upload(at, *[("log_kronecker_adaptive.txt", data) for data in logs])
    names = loaded_names(at)
    assert len(set(names)) == 3
    assert all(n.startswith("log_kronecker_adaptive #") for n in names), names
    goto(at, "sweep")
    # The tag that tells them apart is not a hyperparameter.
    shown_columns = {c for t in at.dataframe for c in t.value.columns}
    assert not {c for c in shown_columns if "adaptive" in c or c == "log_kronecker"}


def test_a_text_file_that_is_not_a_log_is_refused() -> None:
    at = new_app().run()
    upload(
        at, ("notes.txt", b"just some notes\nnothing here\n"), ("log_alpha.txt", log_bytes(1500))
    )
    assert loaded_names(at) == ["log_alpha"]
    assert "notes.txt: skipped" in sidebar_text(at)


def test_zip_and_tar_gz_of_run_folders() -> None:
    at = new_app().run()
    z = zip_bytes(
        {
            **run_folder_members("baseline,seed=0", "sweep_z/run_a", max_lines=3000),
            **run_folder_members("gate=stuck,seed=0", "sweep_z/run_b", max_lines=3000),
        }
    )
    tg = tar_gz_bytes(run_folder_members("lambda_min=0.05,seed=0", "sweep_t/run_c", max_lines=3000))
    upload(at, ("sweep_z.zip", z), ("sweep_t.tar.gz", tg))
    assert sorted(loaded_names(at)) == ["run_a", "run_b", "run_c"]
    t = show_all(at)
    assert (t["steps"] > 1000).all()
    # Hyperparameters came with the folders: config.json says what differs.
    gate = dict(zip(t["run"], t["gate"], strict=True))
    assert gate["run_b"] == "stuck" and gate["run_a"] != "stuck"
    lam = dict(zip(t["run"], t["lambda_min"], strict=True))
    assert float(lam["run_c"]) == pytest.approx(0.05)
    assert "load problem" not in sidebar_text(at)


def test_hyperparameters_from_config_and_folder_name_on_the_sweep_page() -> None:
    members = {}
    for knob, my_knob in ((1, 0.25), (2, 0.5)):
        prefix = f"grid/knob={knob},seed=0"
        members[f"{prefix}/log_kronecker_adaptive.txt"] = log_bytes(2500)
        members[f"{prefix}/config.json"] = json.dumps({"my_knob": my_knob, "seed": 0}).encode()
    at = new_app().run()
    upload(at, ("grid.zip", zip_bytes(members)))
    show_all(at)
    goto(at, "sweep")
    sweep = table_with(at, "final_lm")
    rows = {r["run"]: r for r in sweep.iter_rows(named=True)}
    assert set(rows) == {"knob=1,seed=0", "knob=2,seed=0"}
    assert rows["knob=1,seed=0"]["knob"] == 1 and rows["knob=2,seed=0"]["knob"] == 2
    assert rows["knob=1,seed=0"]["my_knob"] == pytest.approx(0.25)
    assert rows["knob=2,seed=0"]["my_knob"] == pytest.approx(0.5)
    assert "my_knob" in at.selectbox(key="sw_x").options
    # Where each value came from is shown on home, per run.
    open_run_details(at)
    exp = next(e for e in at.main.expander if rendered(e.label).startswith("knob=1,seed=0 — "))
    sources = table_with(at, "from", where=exp)
    src = dict(zip(sources["key"], sources["from"], strict=True))
    assert src["my_knob"] == "config.json"
    assert src["knob"] != "config.json"


def _zip_with_symlink(name: str, target: str, files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        link = zipfile.ZipInfo(name)
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, target)
        for member, data in files.items():
            zf.writestr(member, data)
    return buf.getvalue()


def test_hostile_archives_are_refused(tmp_path: Path, _isolated: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    absolute = tmp_path / "abs_evil.txt"
    good = run_folder_members("baseline,seed=1", "ok/run_ok", max_lines=2000)
    evil_tar = tar_gz_bytes(
        {
            "../evil.txt": b"STEP: 1 | x\n",
            "../../../../../../evil_deep.log": b"STEP: 1 | x\n",
            str(absolute): b"STEP: 1 | x\n",
            **good,
            # Written through the link below if links were followed.
            "ok/linked/log_kronecker_adaptive.txt": b"STEP: 1 | x\n",
        },
        symlinks={"ok/linked": str(outside), "ok/run_ok/stats_link.json": "/etc/passwd"},
    )
    evil_zip = _zip_with_symlink(
        "zipped/escape",
        str(outside),
        {"zipped/escape/log_x.txt": b"STEP: 1\n", "../zip_evil.log": b"STEP: 1\n"},
    )
    at = new_app().run()
    upload(at, ("evil.tar.gz", evil_tar), ("evil.zip", evil_zip))
    side = sidebar_text(at)
    assert "evil.tar.gz: refused" in side and "../evil.txt" in side
    assert "absolute path" in side and str(absolute) in side
    assert "symbolic links" in side and "ok/linked" in side
    assert "evil.zip" in side and "../zip_evil.log" in side
    assert "zipped/escape" in side
    # The good run inside the hostile tarball still loads.
    assert "run_ok" in loaded_names(at)
    # Nothing was written outside the session's upload folder.
    root = upload_root(at).resolve()
    assert root.is_relative_to(_isolated.resolve())
    assert not absolute.exists()
    assert not list(outside.iterdir())
    written = [p for p in tmp_path.rglob("*") if p.is_file() or p.is_symlink()]
    assert written and all(p.resolve().is_relative_to(root) for p in written), written
    assert not [p for p in written if "evil" in p.name]
    assert not [p for p in root.rglob("*") if p.is_symlink()]


def test_replaced_uploads_are_removed_from_disk() -> None:
    at = new_app().run()
    upload(at, ("log_alpha.txt", log_bytes(1500)))
    first = list(upload_root(at).rglob("log_alpha.txt"))
    assert len(first) == 1
    upload(at, ("log_beta.txt", log_bytes(1500)))
    assert loaded_names(at) == ["log_beta"]
    assert not first[0].exists()


# --- paths from the command line, the environment and the sidebar -----------------------------------


def test_cli_paths() -> None:
    assert state.cli_paths(["--runs", "/a", "/b"]) == ["/a", "/b"]
    assert state.cli_paths(["--other", "x", "--runs", "/a"]) == ["/a"]
    assert state.cli_paths(["--runs"]) == []
    assert state.cli_paths([]) == []


def test_env_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONDER_RUNS", os.pathsep.join(["/a", "", "/b"]))
    assert state.env_paths() == ["/a", "/b"]
    monkeypatch.setenv("PONDER_RUNS", "")
    assert state.env_paths() == []


def test_runs_argument_reaches_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`streamlit run app.py -- --runs DIR`: the script reads sys.argv."""
    copy_run("gate=stuck,seed=0", tmp_path / "cli")
    monkeypatch.setattr(sys, "argv", ["app.py", "--runs", str(tmp_path / "cli")])
    at = new_app().run()
    assert_ok(at)
    assert runs_table(at)["run"].to_list() == ["gate=stuck,seed=0"]


def test_ponder_runs_with_two_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = copy_run("baseline,seed=0", tmp_path / "sweep_a")
    b_log = copy_run("halt_thr=0.1,seed=0", tmp_path / "sweep_b")
    monkeypatch.setenv("PONDER_RUNS", os.pathsep.join([str(a.parent), str(log_of(b_log))]))
    at = new_app().run()
    assert_ok(at)
    t = runs_table(at)
    assert sorted(t["run"]) == ["baseline,seed=0", "log_kronecker_adaptive"]
    assert (t["steps"] == 3000).all()


def test_ponder_runs_with_a_missing_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = copy_run("baseline,seed=0", tmp_path / "sweep_a")
    monkeypatch.setenv("PONDER_RUNS", os.pathsep.join([str(a), str(tmp_path / "nowhere")]))
    at = new_app().run()
    assert_ok(at)
    assert runs_table(at)["run"].to_list() == ["baseline,seed=0"]
    assert "nowhere" in sidebar_text(at) and "no such file or folder" in sidebar_text(at)


def test_sidebar_path_box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The path box reads only below allowed roots (issue: it used to read any file).
    monkeypatch.setattr(sys, "argv", ["app.py", "--allow-root", str(tmp_path)])
    run = copy_run("lambda_min=0.05,seed=0", tmp_path / "added")
    at = new_app().run()
    at.text_input(key="path_box").set_value(str(tmp_path / "missing")).run()
    assert_ok(at)
    assert any("no such file or folder" in str(e.value) for e in at.sidebar.error)
    at.text_input(key="path_box").set_value(str(run)).run()
    assert_ok(at)
    assert at.session_state["extra_paths"] == [str(run)]
    assert loaded_names(at) == ["lambda_min=0.05,seed=0"]
    assert not at.sidebar.error


# --- following a growing log --------------------------------------------------------------------


def test_live_following_a_growing_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = head_lines(BASE_LOG, 5000)
    run = tmp_path / "sweep" / "growing"
    run.mkdir(parents=True)
    log = run / "log_kronecker_adaptive.txt"
    log.write_text("\n".join(lines[:1000]) + "\n", encoding="utf-8")
    monkeypatch.setenv("PONDER_RUNS", str(run.parent))
    at = new_app().run()
    assert_ok(at)
    at.toggle(key="live").set_value(True).run()
    assert_ok(at)

    def steps() -> tuple[int, int]:
        row = runs_table(at).row(0, named=True)
        return row["steps"], row["last step"]

    first = steps()
    assert first[0] > 0
    with log.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines[1000:3000]) + "\n")
    at.run()
    assert_ok(at)
    second = steps()
    assert second[0] > first[0] and second[1] > first[1]
    # A line still being written is held back (and noted), then counted once complete.
    with log.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines[3000:5000])[:-25])
    at.run()
    assert_ok(at)
    third = steps()
    assert third[0] > second[0]
    assert runs_table(at).row(0, named=True)["problems"] == 1
    with log.open("a", encoding="utf-8") as fh:
        fh.write(lines[4999][-25:] + "\n")
    at.run()
    assert_ok(at)
    assert runs_table(at).row(0, named=True)["problems"] == 0
    # The whole file read from scratch says the same.
    at.toggle(key="live").set_value(False).run()
    assert_ok(at)
    assert steps()[0] >= third[0]


def test_runs_with_the_same_folder_name_stay_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = copy_run("baseline,seed=0", tmp_path / "sweep_a", "run1")
    stuck = copy_run("gate=stuck,seed=0", tmp_path / "sweep_b", "run1")
    monkeypatch.setenv("PONDER_RUNS", os.pathsep.join([str(healthy.parent), str(stuck.parent)]))
    at = new_app().run()
    assert_ok(at)
    t = runs_table(at)
    health = dict(zip(t["run"], t["health"], strict=True))
    assert health == {"sweep_a/run1": "healthy", "sweep_b/run1": "critical"}
    goto(at, "red_flags")
    assert set(table_with(at, "first_step")["run"]) == {"sweep_b/run1"}


def test_user_tags_carry_their_source() -> None:
    run = Run(
        name="r",
        hparams={"seed": 1, "params": 10},
        meta={"hparam_sources": {"seed": "folder name", "params": "log"}},
    )
    other = Run(name="o", hparams={"seed": 1})
    tagged, untouched = state.with_user_tags([run, other], {"r": {"mytag": "7", "seed": ""}})
    assert tagged.hparams == {"params": 10, "mytag": 7}
    assert tagged.meta["hparam_sources"] == {"params": "log", "mytag": "user"}
    assert run.meta["hparam_sources"] == {"seed": "folder name", "params": "log"}  # a copy
    assert untouched is other


def test_app_state_stays_out_of_the_runs_facts(sample_runs: Path) -> None:
    """The key the app caches analyses under is the app's, kept beside the runs."""
    loaded = state.load_all([str(sample_runs)])
    assert len(loaded.runs) == 11
    for run in loaded.runs:
        assert "cache_key" not in run.meta
    assert list(loaded.keys) == [r.name for r in loaded.runs]
    assert len(set(loaded.keys.values())) == len(loaded.runs)
    ctx = state.build_context(loaded, [r.name for r in loaded.runs], None)
    assert ctx.key(ctx.runs[0]) == loaded.keys[ctx.runs[0].name] + "|" + ctx.runs[0].name
