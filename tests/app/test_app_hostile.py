"""The app against hostile input, through AppTest: the path box confined to allowed roots,
no server paths or tracebacks on the page, names shown as typed (never as Markdown or
LaTeX), upload folders and cached uploads that go away, typed folders walked once, and
the heavy imports done before any page renders."""

from __future__ import annotations

import ast
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from app_helpers import (
    ROOT,
    SAMPLE_RUNS,
    assert_ok,
    copy_run,
    goto,
    log_of,
    new_app,
    open_run_details,
    open_tab,
    rendered,
    runs_table,
    sidebar_text,
    table_with,
    texts,
    zip_bytes,
)
from streamlit.testing.v1 import AppTest

from ponder_app import registry, state, ui


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("PONDER_RUNS", raising=False)
    monkeypatch.delenv("PONDER_ALLOW_ROOTS", raising=False)
    monkeypatch.setattr(sys, "argv", ["app.py"])
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def type_path(at: AppTest, raw: str) -> AppTest:
    at.text_input(key="path_box").set_value(raw).run()
    assert_ok(at)
    return at


def path_errors(at: AppTest) -> list[str]:
    return [rendered(str(e.value)) for e in at.sidebar.error]


# --- the path box reads only below the allowed roots ----------------------------------------


def test_on_the_sample_runs_the_path_box_reads_nothing_else(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_text("-----BEGIN PRIVATE KEY-----\n")
    at = new_app().run()
    refusals = []
    for raw in ("/etc/passwd", "/", str(secret / "id_rsa"), str(tmp_path / "nothing_here")):
        type_path(at, raw)
        (err,) = path_errors(at)
        assert err.startswith(f"{raw}: ")
        refusals.append(err.removeprefix(f"{raw}: "))
        assert at.session_state["extra_paths"] == [] if "extra_paths" in at.session_state else True
    # One message, whether the path exists or not: it tells nothing about the disk.
    assert len(set(refusals)) == 1 and "not inside the folders this app may read" in refusals[0]
    assert sorted(at.multiselect(key="selected_widget").options) == sorted(
        p.name for p in SAMPLE_RUNS.iterdir() if p.is_dir()
    )
    # Inside the sample sweep is fine.
    type_path(at, str(SAMPLE_RUNS / "baseline,seed=0"))
    assert not path_errors(at)


def test_links_and_dot_dots_are_resolved_before_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tmp_path / "allowed"
    outside = tmp_path / "outside"
    copy_run("baseline,seed=0", allowed / "sweep")
    copy_run("gate=stuck,seed=0", outside)
    (allowed / "links").mkdir()
    (allowed / "links" / "escape").symlink_to(outside)
    (allowed / "links" / "inside").symlink_to(allowed / "sweep" / "baseline,seed=0")
    monkeypatch.setattr(sys, "argv", ["app.py", "--runs", str(allowed / "sweep")])
    monkeypatch.setenv("PONDER_ALLOW_ROOTS", str(allowed / "links"))
    at = new_app().run()
    for raw in (
        str(allowed / "links" / "escape"),
        str(allowed / "links" / "escape" / "gate=stuck,seed=0"),
        str(allowed / "sweep" / ".." / ".." / "outside"),
        f"{allowed}/sweep/../../outside/gate=stuck,seed=0",
        "~/../../etc",
    ):
        type_path(at, raw)
        assert any("not inside the folders" in e for e in path_errors(at)), raw
        assert at.session_state["extra_paths"] == [] if "extra_paths" in at.session_state else True
    assert at.multiselect(key="selected_widget").options == ["baseline,seed=0"]
    type_path(at, str(allowed / "links" / "inside"))
    assert not path_errors(at)
    assert at.session_state["extra_paths"] == [str(allowed / "sweep" / "baseline,seed=0")]


def test_allow_root_from_the_command_line_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = copy_run("baseline,seed=0", tmp_path / "lab_a")
    b = copy_run("gate=stuck,seed=0", tmp_path / "lab_b")
    monkeypatch.setattr(sys, "argv", ["app.py", "--allow-root", str(tmp_path / "lab_a")])
    monkeypatch.setenv("PONDER_ALLOW_ROOTS", str(tmp_path / "lab_b"))
    at = new_app().run()
    type_path(at, str(a))
    type_path(at, str(b))
    assert not path_errors(at)
    assert sorted(at.multiselect(key="selected_widget").options) == [a.name, b.name]
    assert state.cli_allow_roots(["--runs", "x", "--allow-root", "r1", "--allow-root", "r2"]) == [
        "r1",
        "r2",
    ]


# --- no server paths on the page ------------------------------------------------------------


def test_upload_failures_and_problems_name_no_server_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path
) -> None:
    monkeypatch.setenv("PONDER_MAX_LOG_LINES", "5000")
    log = log_of(SAMPLE_RUNS / "baseline,seed=0").read_bytes()
    head = b"\n".join(log.splitlines()[:3000]) + b"\n"
    members = {
        "sw/big/log_kronecker_adaptive.txt.gz": gzip.compress(b"\n" * 20_000),
        "sw/bad_stats/log_kronecker_adaptive.txt": head,
        "sw/bad_stats/stats.json": b"[" * 100_000,
        "sw/odd_stats/log_kronecker_adaptive.txt": head,
        "sw/odd_stats/stats.json": json.dumps({"layers": [{"k_exec": 1e30}]}).encode(),
    }
    at = new_app().run()
    at.file_uploader(key="uploads").set_value(
        [("sw.zip", zip_bytes(members), "application/zip")]
    ).run()
    assert_ok(at)
    side = sidebar_text(at)
    assert "sw/big" in side and "more than 5,000 lines" in side, side
    # The runs with a bad stats.json still load, with the problem said.
    assert sorted(at.multiselect(key="selected_widget").options) == ["bad_stats", "odd_stats"]
    assert (runs_table(at)["steps"] > 0).all()
    ms = at.multiselect(key="selected_widget")
    ms.set_value(list(ms.options)).run()
    open_run_details(at)
    shown = "\n".join(texts(at)) + side
    reasons = ""
    for e in at.main.expander:
        shown += rendered(e.label)
        if "problem(s)" in e.label:  # each run's details (the run chooser has no reasons)
            reasons += " ".join(table_with(at, "reason", where=e)["reason"].to_list())
    assert "nested too deeply" in reasons and "`k_exec`" in reasons, reasons
    for where in (str(_isolated), str(tmp_path), tempfile.gettempdir()):
        assert where not in shown and where not in reasons


def test_a_page_failure_shows_no_exception_text(monkeypatch: pytest.MonkeyPatch) -> None:
    at = new_app().run()
    from ponder_app import prepare

    def boom(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError(2, "No such file", "/srv/secret/place")

    monkeypatch.setattr(prepare, "generation_steps", boom)
    at.switch_page("pages/generations.py").run()
    assert not at.exception
    errors = [str(e.value) for e in at.main.error]
    assert errors and all("/srv/secret" not in e for e in errors)
    assert "FileNotFoundError" in errors[0]


# --- names as plain text ------------------------------------------------------------------------

HOSTILE_NAMES = ("![x](x.png)", "$\\alpha$", "**b**", "<img src=x>")


@pytest.fixture
def hostile_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    sweep = tmp_path / "sweep"
    for name, source in zip(
        HOSTILE_NAMES,
        ("baseline,seed=0", "gate=stuck,seed=0", "baseline,seed=1", "lambda_max=0.0005,seed=0"),
        strict=True,
    ):
        copy_run(source, sweep, name)
    monkeypatch.setenv("PONDER_RUNS", str(sweep))
    return sweep


def _markdown_bodies(at: AppTest) -> list[str]:
    out = [str(m.value) for m in at.markdown]
    out += [str(m.value) for m in at.get("subheader")] + [str(m.value) for m in at.get("header")]
    out += [e.label for e in at.expander]
    out += [str(w.value) for w in at.warning] + [str(e.value) for e in at.error]
    return out


def test_names_render_as_typed_everywhere(hostile_sweep: Path) -> None:
    at = new_app().run()
    assert_ok(at)
    assert sorted(at.multiselect(key="selected_widget").options) == sorted(HOSTILE_NAMES)
    seen: dict[str, list[str]] = {}
    texts: dict[str, list[str]] = {}
    for page in ("home", "generations", "red_flags", "layer_heatmaps"):
        # Runs: with every run's details open, so the names inside them are checked too.
        open_run_details(at) if page == "home" else goto(at, page)
        bodies = _markdown_bodies(at)
        if page == "layer_heatmaps":  # the differences from the baseline, in their tab
            bodies += _markdown_bodies(open_tab(at, "lh_tab", registry.HEATMAP_TABS[1]))
        seen[page] = bodies
        texts[page] = [str(t.value) for t in at.main.text]
        for name in HOSTILE_NAMES:
            for body in bodies:
                assert name not in body, (page, name, body)
    for name in HOSTILE_NAMES:
        assert any(ui.plain(name) in b for b in seen["home"]), name  # the Runs expanders
        assert name in texts["generations"], name  # each run's header, as plain text
    assert any(ui.plain("$\\alpha$") in b for b in seen["red_flags"])  # gate=stuck's card
    assert any(
        b.startswith("Difference from the baseline run (") and ui.plain(HOSTILE_NAMES[0]) in b
        for b in seen["layer_heatmaps"]
    ), seen["layer_heatmaps"]


def test_upload_names_in_sidebar_messages_are_plain() -> None:
    at = new_app().run()
    name = "![x](http://127.0.0.1:9/x.png).bin"
    at.file_uploader(key="uploads").set_value(
        [(name, b"nothing", "application/octet-stream")]
    ).run()
    assert_ok(at)
    bodies = [str(m.value) for m in at.sidebar.markdown]
    assert not any("![x](" in b for b in bodies), bodies
    assert any(ui.plain(name) in b for b in bodies), bodies


def test_plain_escapes_every_markdown_special() -> None:
    specials = "\\`*_[](){}#+-.!$<>|~"
    assert ui.plain(specials) == "".join("\\" + c for c in specials)
    assert rendered(ui.plain("![x](y) $a$ **b** <i>")) == "![x](y) $a$ **b** <i>"
    assert ui.plain("two\nlines") == "two lines"


# --- uploads go away ---------------------------------------------------------------------------


def _end_session(token: str) -> None:
    from ponder_app import state

    state._session_uploads.clear(token)


def test_upload_folder_removed_when_the_session_ends(_isolated: Path) -> None:
    """The space lives in a session-scoped resource whose release (Streamlit's documented
    hook, run when the session disconnects) removes the folder."""
    info = state._session_uploads._info
    assert info.scope == "session" and info.on_release is state.UploadSpace.close
    at = new_app().run()
    log = log_of(SAMPLE_RUNS / "baseline,seed=0").read_bytes()
    at.file_uploader(key="uploads").set_value(
        [("log_alpha.txt", log, "application/octet-stream")]
    ).run()
    assert_ok(at)
    folder = Path(at.session_state["_upload_dir"])
    assert folder.is_relative_to(_isolated) and any(folder.rglob("log_alpha.txt"))
    # What Streamlit does for a session that disconnects (`clear_session_resource_cache`):
    # clear its session-scoped resources, in its script thread, calling `on_release`.
    ender = AppTest.from_function(_end_session, args=(at.session_state["_upload_token"],))
    ender.run()
    assert not ender.exception
    assert not folder.exists()
    # A session that comes back (a reconnect) gets a fresh folder, and its uploads again.
    at.run()
    assert_ok(at)
    again = Path(at.session_state["_upload_dir"])
    assert again != folder and any(again.rglob("log_alpha.txt"))
    assert at.multiselect(key="selected_widget").options == ["log_alpha"]


def test_upload_space_finalizer_and_orphan_sweep(_isolated: Path) -> None:
    space = state.UploadSpace()
    assert space.path.exists() and space.path.name.startswith(f"ponder-uploads-{os.getpid()}-")
    path = space.path
    del space  # collected: its folder goes (and at exit, weakref.finalize runs too)
    assert not path.exists()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = _isolated / f"ponder-uploads-{int(dead.stdout)}-abc"
    (orphan / "k").mkdir(parents=True)
    mine = state.UploadSpace()
    foreign = _isolated / "ponder-uploads-notapid"
    foreign.mkdir()
    assert state.sweep_orphan_uploads() == [orphan]
    assert not orphan.exists() and mine.path.exists() and foreign.exists()
    mine.close()
    assert not mine.path.exists()


def test_uploads_have_their_own_bounded_cache() -> None:
    """Parsed uploads are evicted (an hour after last use, a few dozen at most); runs on
    disk stay cached while their files are unchanged."""
    upload_cache, path_cache = state._load_upload_cached._info, state._load_cached._info
    assert upload_cache.ttl is not None and upload_cache.max_entries is not None
    assert upload_cache.max_entries <= 64
    assert path_cache.ttl is None


# --- typed folders are walked once -------------------------------------------------------------


def test_a_rerun_does_not_walk_typed_folders_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = tmp_path / "sweep"
    copy_run("baseline,seed=0", sweep)
    monkeypatch.setenv("PONDER_RUNS", str(sweep))
    at = new_app().run()
    walks = state._walks().walks
    at.run()
    goto(at, "home")
    assert state._walks().walks == walks
    copy_run("gate=stuck,seed=0", sweep)  # a new run folder: its parent changed
    at.run()
    assert state._walks().walks == walks + 1
    assert sorted(at.multiselect(key="selected_widget").options) == [
        "baseline,seed=0",
        "gate=stuck,seed=0",
    ]


# --- imports ---------------------------------------------------------------------------------


def test_the_heavy_imports_are_done_when_the_preload_is() -> None:
    """Sessions rendering at once on a fresh server raced on lazy imports ("partially
    initialized module 'pandas'"); `ponder_app.preload` imports them whole, vl_convert
    excepted, and the frame imports it before anything else of ours."""
    frame = ast.parse((ROOT / "app.py").read_text())
    ours = [
        alias.name if isinstance(node, ast.Import) else f"{node.module}"
        for node in frame.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if (alias.name if isinstance(node, ast.Import) else node.module or "").startswith(
            ("ponder_app", "ponder_parse")
        )
    ]
    assert ours[0] == "ponder_app.preload"
    code = (
        "import sys, ponder_app.preload; "
        "need = ['pandas', 'numpy', 'pyarrow', 'pyarrow.compute', 'narwhals._polars.dataframe'];"
        "print([m for m in need if m not in sys.modules], 'vl_convert' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "[] False"
