"""The app's shared state: where runs come from, loading them (cached), and what every
page needs to know (selected runs, baseline, colours, per-run analysis).

This is the only module, besides the pages, that talks to Streamlit. Parsed runs are kept
with `st.cache_resource`, keyed by the files' size and modification time (uploads: by
content hash), so a rerun or a page switch costs nothing and a changed file is re-read.
Runs are shared between sessions and treated as read-only; per-session edits (tags,
phase overrides) live in session state and are applied on copies.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from ponder_app import charts, prepare
from ponder_parse.analysis import phases, summaries
from ponder_parse.analysis import red_flags as flags
from ponder_parse.files import hparams
from ponder_parse.files.loader import (
    LoadFailure,
    RunLoadError,
    expand_paths,
    load_run,
    load_workers,
    unique_names,
)
from ponder_parse.parse.live import LiveLog
from ponder_parse.run import Run

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RUNS = ROOT / "sample_runs"
CTX_KEY = "_ponder_ctx"


# --- where runs come from -------------------------------------------------------------


def cli_paths(argv: Sequence[str] | None = None) -> list[str]:
    """`streamlit run app.py -- --runs A B` → [A, B]."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", nargs="*", default=[])
    args, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return [p for p in args.runs if p]


def env_paths() -> list[str]:
    """`PONDER_RUNS=a:b` (separated like PATH)."""
    raw = os.environ.get("PONDER_RUNS", "")
    return [p for p in raw.split(os.pathsep) if p.strip()]


def configured_paths() -> list[str]:
    """Paths from the command line, the environment and the sidebar; the sample sweep
    when none are given (and no uploads either)."""
    extra = st.session_state.get("extra_paths", [])
    return [*cli_paths(), *env_paths(), *extra]


# --- loading, cached ----------------------------------------------------------------------


def _stamp(run_path: Path) -> tuple[Any, ...]:
    """What identifies a run's files' content cheaply: sizes and modification times."""
    files = [run_path] if run_path.is_file() else [p for p in run_path.iterdir() if p.is_file()]
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


def _upload_dir() -> Path:
    d = st.session_state.get("_upload_dir")
    if d is None or not Path(d).exists():
        d = tempfile.mkdtemp(prefix="ponder-uploads-")
        st.session_state["_upload_dir"] = d
    return Path(d)


def materialize(files: Sequence[Any]) -> tuple[list[Path], list[str]]:
    """Uploaded files → run folders in this session's temporary folder, once per content."""
    if not files:
        cache = st.session_state.get("_uploads", {})
        for old in list(cache):
            shutil.rmtree(_upload_dir() / old, ignore_errors=True)
        cache.clear()
        return [], []
    # Archive handling (tarfile, zipfile) is loaded with the first upload, not at start.
    from ponder_parse.files import uploads as archives

    blobs = [(f.name, f.getvalue()) for f in files]
    digest = hashlib.sha256()
    for name, data in blobs:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    key = digest.hexdigest()[:16]
    cache = st.session_state.setdefault("_uploads", {})
    if key not in cache:
        dest = _upload_dir() / key
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        result = archives.materialize_uploads(blobs, dest)
        # Only the current set of uploads is kept, on disk too.
        for old in list(cache):
            shutil.rmtree(_upload_dir() / old, ignore_errors=True)
        cache.clear()
        cache[key] = ([str(p) for p in result.run_dirs], list(result.messages))
    dirs, messages = cache[key]
    return [Path(p) for p in dirs], list(messages)


def _load_one(p: Path, live: bool) -> tuple[Run, str]:
    """A run and the key its analyses are cached under: what identifies its content
    (the files' stamp, or how far a followed log has been read)."""
    if live and not str(p).endswith(".gz"):
        reader = _live_reader(str(p))
        reader.poll()
        return reader.run(), f"{p}|live|{reader.offset}"
    stamp = _stamp(p)
    return _load_cached(str(p), stamp), f"{p}|{hash(stamp)}"


def load_all(paths: Sequence[str], upload_dirs: Sequence[Path] = (), live: bool = False) -> Loaded:
    """Every run the paths and uploads stand for; failures listed, never raised.

    Runs are read side by side (see `load_workers`); the progress bar and the results
    stay in the script's thread and in the order the runs were given.
    """
    out = Loaded()
    run_paths, failures = expand_paths(paths)
    out.failures.extend(failures)
    targets = [*run_paths, *upload_dirs]
    progress = st.progress(0.0, text="Reading runs…") if len(targets) > 3 else None
    ctx = get_script_run_ctx()

    def attach() -> None:  # the cached loaders belong to this session's script run
        if ctx is not None:
            add_script_run_ctx(threading.current_thread(), ctx)

    outcomes: dict[int, tuple[Run, str] | LoadFailure] = {}
    with ThreadPoolExecutor(max_workers=load_workers(len(targets)), initializer=attach) as pool:
        futures = {pool.submit(_load_one, p, live): i for i, p in enumerate(targets)}
        for n, fut in enumerate(as_completed(futures), start=1):
            i = futures[fut]
            try:
                outcomes[i] = fut.result()
            except RunLoadError as exc:
                outcomes[i] = LoadFailure(targets[i], str(exc))
            except Exception as exc:  # noqa: BLE001 - a broken run never hides the others
                outcomes[i] = LoadFailure(targets[i], f"could not be read: {exc!r}")
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
    # Names must be unique for colours and selection; cached runs are shared, so copy.
    copies = [dataclasses.replace(r, meta=r.meta.copy()) for r in out.runs]
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
    key: str, ov: tuple[tuple[str, int], ...], rules_key: str, _rules: flags.FlagRules, _run: Run
) -> dict[str, Any]:
    return summaries.run_summary(
        _run,
        phases_df=_phases(key, ov, _run),
        findings=_flags(key, ov, rules_key, _rules, _run),
        rules=_rules,
    )


@st.cache_resource(show_spinner=False, max_entries=2000)
def _phase_summary(key: str, ov: tuple[tuple[str, int], ...], _run: Run) -> pl.DataFrame:
    return summaries.phase_summary(_run, _phases(key, ov, _run))


@st.cache_resource(show_spinner=False, max_entries=2000)
def _per_step(key: str, _run: Run) -> pl.DataFrame:
    return prepare.per_step(_run)


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

    def overrides(self, run: Run) -> dict[str, int]:
        return dict(st.session_state.get("phase_overrides", {}).get(run.name, {}))

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

    def summary(self, run: Run) -> dict[str, Any]:
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
                self.key(run), _ov(self.overrides(run)), self.rules.key, self.rules, run
            ),
            empty,
        )

    def phase_summary(self, run: Run) -> pl.DataFrame:
        return self._safe(
            "phase summary",
            run,
            lambda: _phase_summary(self.key(run), _ov(self.overrides(run)), run),
            pl.DataFrame(schema=summaries.SUMMARY_SCHEMA),
        )

    def frame(self, run: Run) -> pl.DataFrame:
        """`steps` + `quality` per step, with elapsed-time and token axes."""
        return _per_step(self.key(run), run)

    def flags_all(self, runs: Sequence[Run] | None = None) -> pl.DataFrame:
        parts = [self.flags(r) for r in (self.runs if runs is None else runs)]
        return pl.concat(parts) if parts else pl.DataFrame(schema=flags.FINDINGS_SCHEMA)

    def sweep_flags(self, runs: Sequence[Run] | None = None) -> pl.DataFrame:
        """The shown runs against their peers (`flags.sweep_flags`); each run's values
        are cached, the comparison is recomputed for the runs shown."""
        measured = []
        for r in self.runs if runs is None else runs:
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
                dataclasses.replace(
                    r,
                    hparams=hparams.apply_user_tags(r.hparams, mine),
                    meta={**r.meta, "hparam_sources": sources},
                )
            )
        else:
            out.append(r)
    return out


def build_context(loaded: Loaded, selected: Sequence[str], baseline: str | None) -> Context:
    runs_all = with_user_tags(loaded.runs)
    names = [r.name for r in runs_all]
    chosen = [r for r in runs_all if r.name in set(selected)]
    base = next((r for r in runs_all if r.name == baseline), chosen[0] if chosen else None)
    return Context(
        all_runs=runs_all,
        runs=chosen,
        baseline=base,
        colors=charts.run_colors(names),
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
