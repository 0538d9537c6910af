"""The app's shared state: where runs come from, loading them (cached), and what every
page needs to know (selected runs, baseline, colours, per-run analysis).

This module, `source` (runs from run stores) and the page helpers (`ui`, `chooser`) are
the ones besides the pages that talk to Streamlit. Parsed runs are kept
with `st.cache_resource`, keyed by the files' size and modification time, so a rerun or a
page switch costs nothing and a changed file is re-read; uploads have a cache of their
own that forgets them an hour after last use. Runs given as paths go through the cache
run store first (`source`), so a new server process reads them from Parquet instead of
parsing them again. Runs are shared between sessions and treated as read-only; per-session edits (tags, phase overrides) live in session state and are
applied on copies.

What the sidebar's path box may read is confined to the allowed roots (`allowed_roots`):
the paths the app was started with and any `--allow-root`; a server serving a lab must not
hand out every file it can read.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from ponder_app import charts, prepare, source, viewstate
from ponder_parse.analysis import phases, summaries
from ponder_parse.analysis import red_flags as flags
from ponder_parse.files import edits as saved_edits
from ponder_parse.files import hparams
from ponder_parse.files.loader import (
    LoadFailure,
    RunLoadError,
    WalkCache,
    expand_paths,
    load_run,
    load_workers,
    unique_names,
)
from ponder_parse.parse.live import LiveLog
from ponder_parse.run import Run, TableCounts

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RUNS = ROOT / "sample_runs"
CTX_KEY = "_ponder_ctx"
UPLOAD_PREFIX = "ponder-uploads-"
OUTSIDE_ROOTS = (
    "not inside the folders this app may read: it reads only below the paths it was "
    "started with (--runs, PONDER_RUNS) and --allow-root folders"
)


# --- where runs come from -------------------------------------------------------------


def _cli_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", nargs="*", default=[])
    parser.add_argument("--allow-root", action="append", default=[])
    args, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return args


def cli_paths(argv: Sequence[str] | None = None) -> list[str]:
    """`streamlit run app.py -- --runs A B` → [A, B]."""
    return [p for p in _cli_args(argv).runs if p]


def cli_allow_roots(argv: Sequence[str] | None = None) -> list[str]:
    """`streamlit run app.py -- --allow-root A --allow-root B` → [A, B]."""
    return [p for p in _cli_args(argv).allow_root if p]


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(name, "")
    return [p for p in raw.split(os.pathsep) if p.strip()]


def env_paths() -> list[str]:
    """`PONDER_RUNS=a:b` (separated like PATH)."""
    return _env_list("PONDER_RUNS")


def env_allow_roots() -> list[str]:
    """`PONDER_ALLOW_ROOTS=a:b` (separated like PATH)."""
    return _env_list("PONDER_ALLOW_ROOTS")


def _real(raw: str | Path) -> Path | None:
    """The path with `~`, `..` and every symlink resolved, or None if it cannot be."""
    try:
        return Path(raw).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def allowed_roots() -> list[Path]:
    """Where the path box may read: the paths the app was started with (`--runs`,
    `PONDER_RUNS`), the `--store` folders, and the `--allow-root` / `PONDER_ALLOW_ROOTS`
    folders; the bundled sample sweep when no runs were given. Resolved, so a link
    cannot lead out."""
    started = [*cli_paths(), *env_paths(), *source.cli_stores()]
    given = [*started, *cli_allow_roots(), *env_allow_roots()]
    if not started:
        given.append(str(SAMPLE_RUNS))
    roots = [_real(p) for p in given]
    return list(dict.fromkeys(r for r in roots if r is not None))


def confine(raw: str) -> Path | None:
    """The typed path, resolved, if it lies inside an allowed root; else None. Nothing
    about the path is looked up before that is decided, so a refusal says nothing about
    whether it exists."""
    real = _real(raw.strip())
    if real is None:
        return None
    if any(real == root or real.is_relative_to(root) for root in allowed_roots()):
        return real
    return None


def configured_paths() -> list[str]:
    """Paths from the command line, the environment and the sidebar (each still inside
    the allowed roots); the sample sweep when none are given (and no uploads either)."""
    extra = [p for p in st.session_state.get("extra_paths", []) if confine(p) is not None]
    return [*cli_paths(), *env_paths(), *extra]


# --- loading, cached ----------------------------------------------------------------------


def _stamp(run_path: Path) -> tuple[Any, ...]:
    """What identifies a run's files' content cheaply: sizes and modification times."""
    files = (
        [run_path]
        if run_path.is_file()
        # The user's saved edits are not the run's content: saving one must not re-read it.
        else [
            p for p in run_path.iterdir() if p.is_file() and not p.name.startswith(".ponder-edits")
        ]
    )
    out = []
    for p in sorted(files):
        try:
            st_ = p.stat()
        except OSError:
            continue
        out.append((p.name, st_.st_size, st_.st_mtime_ns))
    return tuple(out)


@st.cache_resource(show_spinner=False, max_entries=1000)
def _load_cached(path: str, stamp: tuple[Any, ...]) -> Run:
    return load_run(path)


# Uploads are one session's: kept an hour after last use, and never more than a few
# dozen, so runs nobody looks at any more do not hold the server's memory.
@st.cache_resource(show_spinner=False, max_entries=48, ttl=3600)
def _load_upload_cached(path: str, stamp: tuple[Any, ...]) -> Run:
    return load_run(path)


@st.cache_resource(show_spinner=False)
def _walks() -> WalkCache:
    """Typed folders and `--runs` trees, walked again only when a folder changed: a large
    tree costs seconds to walk, and every interaction reruns the script."""
    return WalkCache()


@st.cache_resource(show_spinner=False, max_entries=200)
def _live_reader(path: str) -> LiveLog:
    return LiveLog(path)


@dataclass
class Loaded:
    runs: list[Run] = field(default_factory=list)
    failures: list[LoadFailure] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    # run name → what identifies its content, for caching its analyses (app state, so it
    # lives here and not in the run's own facts)
    keys: dict[str, str] = field(default_factory=dict)


class UploadSpace:
    """One session's upload folder and what has been unpacked into it.

    The folder goes when the session ends (the session-scoped cache that holds this
    releases it), when the object is collected, and at interpreter exit (`weakref.finalize`
    runs then); `sweep_orphan_uploads` removes what a killed server left behind. The
    owning process id is part of the folder's name for that sweep.
    """

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-"))
        # upload content key → (run folders, messages)
        self.entries: dict[str, tuple[list[str], list[str]]] = {}
        self._remove = weakref.finalize(self, shutil.rmtree, str(self.path), ignore_errors=True)

    def close(self) -> None:
        self._remove()

    @property
    def closed(self) -> bool:
        return not self._remove.alive


@st.cache_resource(show_spinner=False, scope="session", on_release=UploadSpace.close)
def _session_uploads(token: str) -> UploadSpace:
    """This session's `UploadSpace`; Streamlit releases it when the session disconnects
    (the documented session-end hook: a session-scoped resource's `on_release`).

    `token` lives in session state: a session whose state was reset (or a test harness
    that reuses one session id) gets a space of its own.
    """
    sweep_orphan_uploads()
    return UploadSpace()


def _upload_space() -> UploadSpace:
    token = st.session_state.setdefault("_upload_token", uuid.uuid4().hex)
    space = _session_uploads(token)
    if space.closed or not space.path.exists():  # removed under us: start afresh
        _session_uploads.clear(token)
        space = _session_uploads(token)
    st.session_state["_upload_dir"] = str(space.path)
    return space


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_orphan_uploads(tmp: Path | None = None) -> list[Path]:
    """Remove upload folders whose server process is gone (killed before it could clean
    up); returns what was removed. Folders of live processes, this one included, stay."""
    base = Path(tmp or tempfile.gettempdir())
    removed = []
    try:
        candidates = list(base.glob(f"{UPLOAD_PREFIX}*-*"))
    except OSError:
        return []
    for d in candidates:
        pid_text = d.name[len(UPLOAD_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _pid_alive(int(pid_text)):
            continue
        try:
            if d.is_dir() and not d.is_symlink():
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
        except OSError:
            continue
    return removed


def materialize(files: Sequence[Any]) -> tuple[list[Path], list[str]]:
    """Uploaded files → run folders in this session's temporary folder, once per content.
    A session that never uploaded anything gets no folder."""
    if not files and "_upload_token" not in st.session_state:
        return [], []
    space = _upload_space()
    if not files:
        for old in list(space.entries):
            shutil.rmtree(space.path / old, ignore_errors=True)
        space.entries.clear()
        return [], []
    # Archive handling (tarfile, zipfile) is loaded with the first upload, not at start.
    from ponder_parse.files import uploads as archives

    blobs = [(f.name, f.getvalue()) for f in files]
    digest = hashlib.sha256()
    for name, data in blobs:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    key = digest.hexdigest()[:16]
    if key not in space.entries:
        dest = space.path / key
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        result = archives.materialize_uploads(blobs, dest)
        # Only the current set of uploads is kept, on disk too.
        for old in list(space.entries):
            shutil.rmtree(space.path / old, ignore_errors=True)
        space.entries.clear()
        space.entries[key] = ([str(p) for p in result.run_dirs], list(result.messages))
    dirs, messages = space.entries[key]
    return [Path(p) for p in dirs], list(messages)


def shown_path(p: Path, upload_root: Path | None) -> Path:
    """A path as the user knows it: an upload's relative to the session's upload folder
    (`archive/run1`, never the server's temporary folder)."""
    if upload_root is not None:
        try:
            rel = p.relative_to(upload_root)
        except ValueError:
            return p
        # The first part is the upload's content key, not something the user named.
        return Path(*rel.parts[1:]) if len(rel.parts) > 1 else Path(p.name)
    return p


def _scrub(text: str, root: Path | None) -> str:
    """Server paths out of a message: the upload folder's path (and the content key
    folder under it) are dropped."""
    if root is None:
        return text
    for prefix in (str(root.resolve()), str(root)):
        text = re.sub(re.escape(prefix) + r"/[0-9a-f]{16}/?", "", text)
        text = text.replace(prefix + "/", "").replace(prefix, "")
    return text


def _load_one(p: Path, live: bool, upload: bool = False) -> tuple[Run, str]:
    """A run and the key its analyses are cached under: what identifies its content
    (the files' stamp, or how far a followed log has been read)."""
    if live and not upload and not str(p).endswith(".gz"):
        reader = _live_reader(str(p))
        reader.poll()
        return reader.run(), f"{p}|live|{reader.generation}|{reader.offset}"
    try:
        stamp = _stamp(p)
    except OSError as exc:
        raise RunLoadError(f"{p}: cannot be read", f"cannot be read ({exc.strerror})") from exc
    if not upload:  # through the cache store: parsed only when the files changed
        stored = source.through_store(p, stamp)
        if stored is not None:
            return stored
    loader = _load_upload_cached if upload else _load_cached
    return loader(str(p), stamp), f"{p}|{hash(stamp)}"


def load_all(
    paths: Sequence[str],
    upload_dirs: Sequence[Path] = (),
    live: bool = False,
    upload_root: Path | None = None,
) -> Loaded:
    """Every run the paths and uploads stand for; failures listed, never raised, and
    named as the user knows them (uploads relative to `upload_root`).

    Runs are read side by side (see `load_workers`); the progress bar and the results
    stay in the script's thread and in the order the runs were given.
    """
    out = Loaded()
    run_paths, failures = expand_paths(paths, _walks())
    out.failures.extend(failures)
    targets = [*run_paths, *upload_dirs]
    n_paths = len(run_paths)
    progress = st.progress(0.0, text="Reading runs…") if len(targets) > 3 else None
    ctx = get_script_run_ctx()

    def attach() -> None:  # the cached loaders belong to this session's script run
        if ctx is not None:
            add_script_run_ctx(threading.current_thread(), ctx)

    outcomes: dict[int, tuple[Run, str] | LoadFailure] = {}
    with ThreadPoolExecutor(max_workers=load_workers(len(targets)), initializer=attach) as pool:
        futures = {pool.submit(_load_one, p, live, i >= n_paths): i for i, p in enumerate(targets)}
        for n, fut in enumerate(as_completed(futures), start=1):
            i = futures[fut]
            root = upload_root if i >= n_paths else None
            where = shown_path(targets[i], root)
            try:
                outcomes[i] = fut.result()
            except RunLoadError as exc:
                outcomes[i] = LoadFailure(where, _scrub(exc.reason, root))
            except Exception as exc:  # noqa: BLE001 - a broken run never hides the others
                logger.exception("loading %s failed", targets[i])
                outcomes[i] = LoadFailure(where, f"could not be read ({type(exc).__name__})")
            if progress is not None:
                progress.progress(n / len(targets), text=f"Reading runs… {n}/{len(targets)}")
    keys: list[str] = []
    for i in range(len(targets)):
        got = outcomes[i]
        if isinstance(got, LoadFailure):
            out.failures.append(got)
        else:
            out.runs.append(got[0])
            keys.append(got[1])
    if progress is not None:
        progress.empty()
    opened = source.opened_stores()  # --store folders: every run, no table read yet
    out.failures.extend(opened.failures)
    out.runs.extend(opened.runs)
    keys.extend(opened.keys)
    # Names must be unique for colours and selection; cached runs are shared, so copy.
    copies = [r.replaced(meta=r.meta.copy()) for r in out.runs]
    unique_names(copies)
    out.runs = copies
    out.keys = {r.name: key for r, key in zip(copies, keys, strict=True)}
    return out


# --- per-run analysis, cached by the run's cache key -----------------------------------------


def _ov(overrides: dict[str, int] | None) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((overrides or {}).items()))


@st.cache_resource(show_spinner=False, max_entries=2000)
def _phases(key: str, ov: tuple[tuple[str, int], ...], _run: Run) -> pl.DataFrame:
    return phases.phases(_run, dict(ov) or None)


@st.cache_resource(show_spinner=False, max_entries=2000)
def _flags(
    key: str, ov: tuple[tuple[str, int], ...], rules_key: str, _rules: flags.FlagRules, _run: Run
) -> pl.DataFrame:
    return flags.red_flags(_run, _rules, phases_df=_phases(key, ov, _run))


@st.cache_resource(show_spinner=False, max_entries=2000)
def _measures(
    key: str, ov: tuple[tuple[str, int], ...], rules_key: str, _rules: flags.FlagRules, _run: Run
) -> flags.RunMeasures:
    return flags.measure_run(_run, _rules, phases_df=_phases(key, ov, _run))


@st.cache_resource(show_spinner=False, max_entries=2000)
def _summary(
    key: str,
    ov: tuple[tuple[str, int], ...],
    rules_key: str,
    include_audit: bool,
    _rules: flags.FlagRules,
    _run: Run,
) -> dict[str, Any]:
    return summaries.run_summary(
        _run,
        phases_df=_phases(key, ov, _run),
        findings=_flags(key, ov, rules_key, _rules, _run),
        rules=_rules,
        include_audit=include_audit,
    )


@st.cache_resource(show_spinner=False, max_entries=2000)
def _phase_summary(
    key: str, ov: tuple[tuple[str, int], ...], include_audit: bool, _run: Run
) -> pl.DataFrame:
    return summaries.phase_summary(_run, _phases(key, ov, _run), include_audit=include_audit)


# A copy of a run's per-step tables: kept for the runs used last, not for every run a
# large store has shown over time.
@st.cache_resource(show_spinner=False, max_entries=256)
def _per_step(key: str, _run: Run, columns: tuple[str, ...] | None = None) -> pl.DataFrame:
    return prepare.per_step(_run, columns)


def per_step_frame(key: str, run: Run, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """`Context.frame` for the run keyed `key` (also what `warm` fills, so a session finds
    it): a run in memory has its whole frame cached and cut to `columns`; a stored run
    has only those columns read and cached."""
    if columns is None:
        return _per_step(key, run)
    if source.as_stored(run) is None:
        # In memory the whole frame is there already: its columns, not a copy.
        return prepare.per_step_columns(_per_step(key, run), columns)
    return _per_step(key, run, tuple(columns))


@st.cache_resource(show_spinner=False, max_entries=2000)
def _column_counts(key: str, _run: Run) -> dict[str, TableCounts]:
    return _run.column_counts()


# --- what every page sees -----------------------------------------------------------------


@dataclass
class Context:
    """The loaded runs and the user's choices, as the pages need them."""

    all_runs: list[Run]
    runs: list[Run]  # the selected ones, in load order
    baseline: Run | None
    colors: dict[str, str]
    failures: list[LoadFailure]
    messages: list[str]
    errors: dict[str, str] = field(default_factory=dict)  # run → what could not be computed
    keys: dict[str, str] = field(default_factory=dict)  # run name → content key (`Loaded.keys`)
    rules: flags.FlagRules = flags.DEFAULT  # the red-flag settings (edited on the Red flags page)

    def key(self, run: Run) -> str:
        """What a run's cached analyses are keyed by: its content, and its name (names
        are made unique per load, so two runs never share an entry)."""
        return self.keys.get(run.name, f"id:{id(run)}") + "|" + run.name

    def content_key(self, runs: Sequence[Run] | None = None) -> tuple[str, ...]:
        """What the shown runs' content is, for caching what is drawn from them."""
        return tuple(self.key(r) for r in (self.runs if runs is None else runs))

    def overrides(self, run: Run) -> dict[str, int]:
        return dict(st.session_state.get("phase_overrides", {}).get(run.name, {}))

    def phases_key(
        self, runs: Sequence[Run]
    ) -> tuple[tuple[str, tuple[tuple[str, int], ...]], ...]:
        """The runs' content and their phase edits: what anything drawn from their phases
        is determined by, for caching it."""
        return tuple((self.key(r), tuple(sorted(self.overrides(r).items()))) for r in runs)

    def _safe(self, what: str, run: Run, fn: Any, fallback: Any) -> Any:
        """One run's analysis failing must not take the page (or the other runs) down:
        the failure is recorded and shown as a message, the run gets an empty result."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            logger.exception("%s failed for run %s", what, run.name)
            self.errors.setdefault(run.name, f"{what} could not be computed: {exc}")
            return fallback

    def phases(self, run: Run) -> pl.DataFrame:
        stored = source.stored_phases(run, self.overrides(run))
        if stored is not None:  # what the store computed at ingest: no table read
            return stored
        return self._safe(
            "phases",
            run,
            lambda: _phases(self.key(run), _ov(self.overrides(run)), run),
            pl.DataFrame(schema=phases.PHASES_SCHEMA),
        )

    def flags(self, run: Run) -> pl.DataFrame:
        return self._safe(
            "red flags",
            run,
            lambda: _flags(
                self.key(run), _ov(self.overrides(run)), self.rules.key, self.rules, run
            ),
            pl.DataFrame(schema=flags.FINDINGS_SCHEMA),
        )

    def summary(self, run: Run, include_audit: bool = False) -> dict[str, Any]:
        """`run_summary`, cached per run, phase edits, rules and audit choice."""
        stored = source.stored_summary(run, self.rules, include_audit, self.overrides(run))
        if stored is not None:  # what the store computed at ingest: no table read
            return stored
        empty = dict.fromkeys(summaries.RUN_SUMMARY_SCHEMA) | {
            "run": run.name,
            "steps": run.n_steps,
            "n_critical": 0,
            "n_warning": 0,
            "n_info": 0,
            "problems": run.problems.height,
            "restarts": 0,
        }
        return self._safe(
            "summary",
            run,
            lambda: _summary(
                self.key(run),
                _ov(self.overrides(run)),
                self.rules.key,
                include_audit,
                self.rules,
                run,
            ),
            empty,
        )

    def phase_summary(self, run: Run, include_audit: bool = False) -> pl.DataFrame:
        return self._safe(
            "phase summary",
            run,
            lambda: _phase_summary(self.key(run), _ov(self.overrides(run)), include_audit, run),
            pl.DataFrame(schema=summaries.SUMMARY_SCHEMA),
        )

    def frame(self, run: Run, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """`steps` + `quality` per step, with elapsed-time and token axes; with `columns`,
        only those metrics (and the axes), read alone from a stored run."""
        return per_step_frame(self.key(run), run, columns)

    def column_counts(self) -> dict[str, prepare.RunCounts]:
        """Every shown run's `Run.column_counts` by name, counted once per process (a
        stored run's come from its row): what metric pickers and flat notes read."""
        return {r.name: _column_counts(self.key(r), r) for r in self.runs}

    def flags_all(self, runs: Sequence[Run] | None = None) -> pl.DataFrame:
        parts = [self.flags(r) for r in (self.runs if runs is None else runs)]
        return pl.concat(parts) if parts else pl.DataFrame(schema=flags.FINDINGS_SCHEMA)

    def sweep_flags(self, runs: Sequence[Run] | None = None) -> pl.DataFrame:
        """The shown runs against their peers (`flags.sweep_flags`); each run's values
        are cached, the comparison is recomputed for the runs shown."""
        measured = []
        for r in self.runs if runs is None else runs:
            stored = source.stored_measures(r, self.rules, self.overrides(r))
            if stored is not None:
                measured.append(stored)
                continue
            m = self._safe(
                "sweep red flags",
                r,
                lambda r=r: _measures(
                    self.key(r), _ov(self.overrides(r)), self.rules.key, self.rules, r
                ),
                None,
            )
            if m is not None:
                measured.append(m)
        return flags.sweep_flags(measured, self.rules)

    def by_name(self, name: str) -> Run | None:
        return next((r for r in self.all_runs if r.name == name), None)


def with_user_tags(
    runs: Sequence[Run], edits: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Run]:
    """Copies of the runs with the user's hyperparameter edits applied (this session's
    `tag_edits` unless `edits` are given).

    The sources change with the values: an edited key reads as from "user", so the Runs
    page counts a tag the user added as a swept setting, like one from a config file.
    """
    if edits is None:
        edits = st.session_state.get("tag_edits", {})
    out = []
    for r in runs:
        mine = edits.get(r.name)
        if mine:
            sources = hparams.apply_user_sources(r.meta.get("hparam_sources", {}), mine)
            out.append(
                r.replaced(
                    hparams=hparams.apply_user_tags(r.hparams, mine),
                    meta={**r.meta, "hparam_sources": sources},
                )
            )
        else:
            out.append(r)
    return out


EDIT_NOTES = "_edit_notes"


def _is_upload(run: Run) -> bool:
    root = st.session_state.get("_upload_dir")
    return run.source is None or (root is not None and run.source.is_relative_to(root))


def restore_edits(runs: Sequence[Run]) -> None:
    """Put the edits saved beside each run (tags, phase boundaries) into this session, once
    per run and session; what the session has edited itself wins. Uploads live in a
    temporary folder: their edits stay with the session."""
    ss = st.session_state
    seen: set[str] = ss.setdefault("_edits_read", set())
    tags = dict(ss.get("tag_edits", {}))
    phase_ov = dict(ss.get("phase_overrides", {}))
    changed = False
    for r in runs:
        ident = f"{r.name}|{r.source}"
        if ident in seen or _is_upload(r):
            continue
        seen.add(ident)
        assert r.source is not None
        got = saved_edits.read_edits(r.source)
        if got.tags and r.name not in tags:
            tags[r.name], changed = dict(got.tags), True
        if got.phases and r.name not in phase_ov:
            phase_ov[r.name], changed = dict(got.phases), True
    if changed:
        ss["tag_edits"], ss["phase_overrides"] = tags, phase_ov


def save_edits(runs: Sequence[Run]) -> list[str]:
    """Write these runs' session edits beside them (see `ponder_parse.files.edits`);
    returns a message per run whose edits could not be saved."""
    ss = st.session_state
    problems = []
    for r in runs:
        if _is_upload(r):
            continue
        assert r.source is not None
        mine = saved_edits.RunEdits(
            dict(ss.get("tag_edits", {}).get(r.name, {})),
            dict(ss.get("phase_overrides", {}).get(r.name, {})),
        )
        try:
            saved_edits.write_edits(r.source, mine)
        except OSError as exc:
            problems.append(f"{r.name}: edits kept for this session only ({exc.strerror})")
    ss[EDIT_NOTES] = problems  # said on the page after the rerun that follows an edit
    return problems


def build_context(loaded: Loaded, selected: Sequence[str], baseline: str | None) -> Context:
    restore_edits(loaded.runs)
    runs_all = with_user_tags(loaded.runs)
    names = [r.name for r in runs_all]
    chosen = [r for r in runs_all if r.name in set(selected)]
    base = next((r for r in runs_all if r.name == baseline), chosen[0] if chosen else None)
    return Context(
        all_runs=runs_all,
        runs=chosen,
        baseline=base,
        colors=charts.run_colors(names, st.session_state.get(charts.COLOR_OVERRIDES_KEY, {})),
        failures=list(loaded.failures),
        messages=list(loaded.messages),
        keys=dict(loaded.keys),
        rules=flag_rules(),
    )


FLAG_RULES_KEY = "flag_rules"


def flag_rules() -> flags.FlagRules:
    """This session's red-flag settings (the registered defaults until edited)."""
    rules = st.session_state.get(FLAG_RULES_KEY)
    return rules if isinstance(rules, flags.FlagRules) else flags.DEFAULT


def set_flag_rules(rules: flags.FlagRules) -> None:
    st.session_state[FLAG_RULES_KEY] = rules


def set_context(ctx: Context) -> None:
    st.session_state[CTX_KEY] = ctx


def context() -> Context:
    """The context the frame built for this rerun (pages call this first)."""
    ctx = st.session_state.get(CTX_KEY)
    if not isinstance(ctx, Context):
        # `ui.page_context` runs the frame first, so a page never gets here without one.
        raise RuntimeError("no loaded runs: pages run inside app.py's frame")
    return ctx


def live_sizes(paths: Sequence[Path]) -> tuple[int, ...]:
    """Current sizes of followed logs: a change means new lines to read."""
    out = []
    for p in paths:
        try:
            out.append(p.stat().st_size)
        except OSError:
            out.append(-1)
    return tuple(out)


# --- the user's view: selection, baseline, remembered controls, the URL ---------------------

SELECTED = "selected_runs"
"""The runs shown (names, load order): the one record of the choice. The sidebar's
multiselect (`SELECTED_WIDGET`) only displays it and reports edits to it."""
SELECTED_WIDGET = "selected_widget"
KNOWN = "known_runs"
VIEW = "_view"
URL_IN = "_url_in"


def url_request() -> dict[str, list[str]]:
    """The view parameters the session's URL opened with, read once per session (a
    reload is a new session). Each is taken (`take_url`) by whoever can check it."""
    got = st.session_state.get(URL_IN)
    if not isinstance(got, dict):
        qp = st.query_params
        got = {k: list(qp.get_all(k)) for k in viewstate.PARAMS if k in qp}
        st.session_state[URL_IN] = got
    return got


def take_url(param: str) -> list[str] | None:
    """The URL's values for `param` the first time it is asked for, else None."""
    return url_request().pop(param, None)


def selection(names: Sequence[str]) -> list[str]:
    """The runs to show among the loaded `names`, made the widget's value too.

    Streamlit drops a widget's state in some runs (a page switch whose request carries
    no state for it, a widget id that changed with the script that drew it), and a
    multiselect without state shows nothing: every page then said "No runs selected".
    So the choice lives in `SELECTED`, a plain session value no cleanup touches, and the
    widget is set from it before every draw; only the widget's change callback
    (`take_selection`, a user's edit) writes back.
    """
    ss = st.session_state
    chosen = ss.get(SELECTED)
    known = ss.get(KNOWN)
    from_url = take_url(viewstate.RUNS)
    if from_url is not None:
        parsed = viewstate.parse_runs(from_url, names)
        if parsed is not None:
            chosen, known = parsed, list(names)
    if chosen is None:  # a first look at many runs shows the first few (`source`)
        chosen, known = source.default_selection(names), list(names)
    shown = viewstate.reconcile_selection(names, chosen, known)
    ss[SELECTED] = shown
    ss[KNOWN] = list(names)
    ss[SELECTED_WIDGET] = list(shown)
    return shown


def take_selection() -> None:
    """The multiselect's change callback: the user's edit becomes the selection."""
    picked = st.session_state.get(SELECTED_WIDGET)
    if isinstance(picked, list):
        names = st.session_state.get(KNOWN) or []
        st.session_state[SELECTED] = [n for n in names if n in set(picked)]


def baseline_choice(options: Sequence[str]) -> str | None:
    """The baseline the user chose (or the URL names), if it is among `options`."""
    from_url = take_url(viewstate.BASELINE)
    if from_url is not None:
        picked = viewstate.parse_choice(from_url, options)
        if picked is not None:
            st.session_state["baseline"] = picked
    prev = st.session_state.get("baseline")
    return prev if prev in options else None


def view() -> dict[str, Any]:
    """The session's remembered page controls (the step line's metrics, range, smoothing):
    kept across page switches, where Streamlit forgets a widget that is not drawn."""
    got = st.session_state.get(VIEW)
    if not isinstance(got, dict):
        got = {}
        st.session_state[VIEW] = got
    return got


def remember(key: str) -> None:
    """A widget's change callback: keep its value in the remembered view."""
    if key in st.session_state:
        view()[key] = st.session_state[key]


def seed(key: str, value: Any) -> None:
    """Give a widget its value before it is drawn: what the user last chose (remembered),
    else `value`; the widget is then created without a default of its own."""
    v = view()
    v.setdefault("_defaults", {})[key] = value
    if key not in st.session_state:
        st.session_state[key] = v.get(key, value)
    v[key] = st.session_state[key]


def kept(
    key: str,
    default: Any,
    *,
    options: Sequence[Any] | None = None,
    valid: Callable[[Any], bool] | None = None,
) -> dict[str, Any]:
    """The `key`, `on_change` and `args` of a control whose value outlives page switches.

    Streamlit forgets the value of a widget that a run does not draw, so a page switch
    used to reset the step line's x axis, y scale and switches, the sweep's axes and the
    run filters. The value is seeded from the remembered view (else `default`) before the
    widget is drawn, so the widget is given no default of its own. A remembered value the
    widget can no longer take (the shown runs changed its `options`, or `valid` rejects
    it) falls back to `default`; a list keeps those of its members that are still options.
    """
    if options is not None or valid is not None:
        allowed = list(options) if options is not None else None
        for where in (view(), st.session_state):
            if key not in where:
                continue
            value = where[key]
            if allowed is not None and isinstance(value, list):
                where[key] = [x for x in value if x in allowed]
            elif (allowed is not None and value not in allowed) or (
                valid is not None and not valid(value)
            ):
                where[key] = default
    seed(key, default)
    return {"key": key, "on_change": remember, "args": (key,)}


def _changed(key: str) -> Any:
    """The remembered value of `key` when it differs from its default, else None."""
    v = view()
    value = v.get(key)
    return None if value == v.get("_defaults", {}).get(key) else value


def write_url() -> None:
    """Put the view into the page's URL (only what differs from the defaults), so a
    reload or a shared link restores it. Called at the end of every run, fragment runs
    included."""
    ss = st.session_state
    names = ss.get(KNOWN)
    if not names:
        return
    v = view()
    rng = v.get("sl_range")
    metrics = _changed("sl_metrics")
    wanted = viewstate.encode(
        names=names,
        selected=ss.get(SELECTED, names),
        baseline=ss.get("baseline"),
        metrics=metrics,
        step_range=tuple(rng) if rng is not None else None,
        full_range=v.get("_sl_extent"),
        smoothing=_changed("sl_smooth"),
        layer_metric=_changed("lh_metric"),
        layer_range=tuple(v["lh_range"]) if v.get("lh_range") is not None else None,
        layer_full_range=v.get("_lh_extent"),
        layer_view=_changed("lh_view"),
        # The latest step is the default (it follows a growing run): left out.
        trace_step=v.get("st_step") if v.get("st_step") != v.get("_st_last") else None,
    )
    # A parameter the session opened with but nothing has checked yet stays as it was.
    for k, vals in url_request().items():
        wanted.setdefault(k, vals)
    qp = st.query_params
    current = {k: list(qp.get_all(k)) for k in viewstate.PARAMS if k in qp}
    to_set, to_drop = viewstate.changes(current, wanted)
    for k, vals in to_set.items():
        qp[k] = vals
    for k in to_drop:
        del qp[k]
