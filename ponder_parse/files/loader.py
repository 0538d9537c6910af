"""Files on disk → `Run` objects.

Finding the log in a run folder, decompressing, decoding, parsing, reading `stats.json`
and deriving run metadata. Bad input degrades: a run loads with whatever is readable and
says what was not in `run.problems`; only a path with no log at all raises
`RunLoadError`, and `load_runs` turns that into a listed failure so one broken run never
hides the others.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ponder_parse import schema
from ponder_parse.files.discovery import LOG_SUFFIXES, Walk, find_run_dirs, is_log_file
from ponder_parse.files.hparams import CONFIG_FILE_NAMES, hparams_for
from ponder_parse.files.limits import (
    CHUNK,
    MAX_LOG_BYTES_CEILING,
    InputTooLarge,
    LineCounter,
    LogLimits,
    check_log_bytes,
    check_plain_log,
    log_limits,
)
from ponder_parse.parse import scan as logparse
from ponder_parse.parse.meta import derive_meta, detect_variant
from ponder_parse.parse.snapshot import checked_snapshot_layers, read_snapshot
from ponder_parse.run import Run, RunMeta

logger = logging.getLogger(__name__)

_GLOB_CHARS = re.compile(r"[*?\[\]{}]")
MAX_LOG_BYTES = MAX_LOG_BYTES_CEILING  # the most any machine reads of one log (`limits`)


class RunLoadError(Exception):
    """A path that cannot be read as a run at all (missing, unreadable, no log inside, or
    too large for this machine).

    The message names the path as the caller gave it; `reason` says the same without the
    path, for lists that show the path beside it.
    """

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


@dataclass(frozen=True)
class LoadFailure:
    path: Path
    reason: str


class RunList(list[Run]):
    """The runs that loaded, in order, plus `failures` for the paths that did not."""

    def __init__(self, runs: Iterable[Run] = (), failures: Iterable[LoadFailure] = ()) -> None:
        super().__init__(runs)
        self.failures: list[LoadFailure] = list(failures)

    def by_name(self) -> dict[str, Run]:
        return {r.name: r for r in self}


def _has_log_suffix(path: Path) -> bool:
    return path.name.lower().endswith(LOG_SUFFIXES)


def open_bytes(path: Path, limits: LogLimits | None = None) -> tuple[bytes, str | None]:
    """File content, gunzipped when needed, refused when it is larger than `limits`.

    Decompression runs a megabyte at a time and counts lines as it goes, so a gzip bomb
    (a few kilobytes of newlines) is refused after reading no more than the caps allow,
    before the parser allocates anything. A gzip stream that ends early or is damaged
    part-way (a log still being compressed, a cut download) yields what is there, with a
    note; concatenated gzip members (`cat a.gz b.gz`) are read one after the other.
    """
    limits = limits or log_limits()
    data = path.read_bytes()
    if not (path.suffix.lower() == ".gz" or data[:2] == b"\x1f\x8b"):
        check_log_bytes(data, limits, path.name)
        return data, None
    pieces: list[bytes] = []
    size = 0
    counter = LineCounter()
    d = zlib.decompressobj(wbits=47)
    pending = data
    while True:
        try:
            piece = d.decompress(pending, CHUNK)
        except zlib.error as exc:
            if not pieces:
                return b"", f"not a readable gzip file ({exc})"
            return b"".join(
                pieces
            ), "compressed log is damaged part-way: showing what could be decompressed"
        pending = d.unconsumed_tail
        if piece:
            size += len(piece)
            if size > limits.max_bytes:
                raise limits.too_many_bytes(path.name)
            if counter.feed(piece) > limits.max_lines:
                raise limits.too_many_lines(path.name)
            pieces.append(piece)
        if d.eof:
            rest = d.unused_data
            if rest[:2] != b"\x1f\x8b":
                return b"".join(pieces), None
            d, pending = zlib.decompressobj(wbits=47), rest
        elif not pending and not piece:
            return b"".join(pieces), "compressed log ends early: showing what could be decompressed"


def _log_content(path: Path, limits: LogLimits | None = None) -> tuple[bytes | Path, str | None]:
    """A compressed log's bytes, or a plain log's path (read by Polars directly, so the
    file's content is not held twice in memory). Either is refused (`InputTooLarge`)
    when it holds more than the machine's caps allow."""
    limits = limits or log_limits()
    with path.open("rb") as fh:
        magic = fh.read(2)
    if path.suffix.lower() == ".gz" or magic == b"\x1f\x8b":
        return open_bytes(path, limits)
    check_plain_log(path, limits, path.name)
    if _GLOB_CHARS.search(str(path)):
        # Polars reads a path as a glob pattern: `run[1]` would match `run1`, not itself.
        return path.read_bytes(), None
    return path, None


def find_log(directory: Path) -> Path | None:
    """The trainer log in a run folder: `log_*` first (the largest), else any log-like file."""
    candidates = sorted(p for p in directory.iterdir() if p.is_file() and _has_log_suffix(p))
    named = [p for p in candidates if p.name.lower().startswith("log_")]
    if named:
        return max(named, key=lambda p: p.stat().st_size)
    return next((p for p in candidates if is_log_file(p)), None)


def run_name_for(log_path: Path, directory: Path | None) -> str:
    """A run is named by its folder, or by the log file's stem when it is loaded alone."""
    if directory is not None:
        return directory.name
    name = log_path.name
    for suffix in (".gz", ".txt", ".log"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def parse_run(
    data: bytes | str | Path,
    *,
    name: str,
    source: Path | None = None,
    stats_path: Path | None = None,
    extra_problems: Sequence[str] = (),
) -> Run:
    """Build a `Run` from log content (and optionally a `stats.json` next to it)."""
    raw = data.encode("utf-8", errors="surrogatepass") if isinstance(data, str) else data
    tables, facts = logparse.parse_bytes(raw)
    return build_run(
        tables,
        facts,
        name=name,
        source=source,
        stats_path=stats_path,
        extra_problems=extra_problems,
    )


def build_run(
    tables: dict[str, pl.DataFrame],
    facts: RunMeta,
    *,
    name: str,
    source: Path | None = None,
    stats_path: Path | None = None,
    extra_problems: Sequence[str] = (),
) -> Run:
    """Parsed tables → `Run`: adds stats.json, file-level problems, variant and metadata."""
    where = source.name if source else name
    problems = [tables["problems"]]
    snapshot, snap_layers, snap_notes = _snapshot(stats_path)
    problems += [_file_problem("stats.json", why) for why in snap_notes]
    notes = list(extra_problems)
    if facts.get("invalid_utf8"):
        notes.append(f"invalid {facts.get('encoding', 'UTF-8')} bytes in the log: shown as \ufffd")
    if tables["steps"].is_empty():
        notes.append(
            "no step lines found: is this a trainer log?"
            if facts.get("n_lines", 0) > 0
            else "the log is empty (training not started yet?)"
        )
    problems += [_file_problem(where, why) for why in notes]
    try:
        meta = derive_meta(tables, facts, snap_layers)
    except Exception as exc:  # noqa: BLE001 - the snapshot is optional; the log is not
        if snapshot is None:
            raise
        logger.warning("run %s: stats.json set aside: %r", name, exc)
        problems.append(_file_problem("stats.json", f"ignored: {_short(exc)}"))
        snapshot, snap_layers = None, checked_snapshot_layers(None)[0]
        meta = derive_meta(tables, facts, snap_layers)
    tables = dict(tables, problems=pl.concat(problems, how="vertical_relaxed"))
    return Run(
        name=name,
        source=source,
        variant=detect_variant(where if source else "", tables),
        snapshot=snapshot,
        snapshot_layers=snap_layers,
        meta=meta,
        hparams={},  # filled by `attach_hparams` once the run's folder is known
        **tables,
    )


def _snapshot(
    stats_path: Path | None,
) -> tuple[dict[str, Any] | None, pl.DataFrame, list[str]]:
    """stats.json as the snapshot, its layer table and notes. Whatever is wrong with the
    file (not JSON, nested too deeply, values no column holds, not a regular file, or
    something unforeseen) is a note: the run's log loads without it."""
    empty = checked_snapshot_layers(None)[0]
    try:
        if stats_path is None or not (stats_path.exists() or stats_path.is_symlink()):
            return None, empty, []
        snapshot, why = read_snapshot(stats_path)
        if why:
            return None, empty, [why]
        layers, notes = checked_snapshot_layers(snapshot)
        return snapshot, layers, notes
    except Exception as exc:  # noqa: BLE001
        logger.warning("stats.json set aside: %r", exc)
        return None, empty, [f"stats.json ignored: {_short(exc)}"]


def _short(exc: BaseException) -> str:
    """An exception as one line without server paths: an OSError by its reason, anything
    else by its type and first line."""
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _file_problem(text: str, reason: str) -> pl.DataFrame:
    return schema.conform(
        pl.DataFrame({"line_no": [None], "text": [text], "reason": [reason]}), schema.PROBLEMS
    )


def _fail(path: Path, reason: str) -> RunLoadError:
    return RunLoadError(f"{path}: {reason}", reason)


def load_run(path: str | Path) -> Run:
    """Load one run: a run folder, or a single log file (`.txt`/`.log`, also `.gz`).

    Raises only `RunLoadError`, whatever the filesystem says (a folder it may list but
    not enter, a log it may not read); its reason names files relative to `path`.
    """
    path = Path(path)
    stats: Path | None
    try:
        if not path.exists():
            raise _fail(path, "no such file or folder")
        is_dir = path.is_dir()
        if is_dir:
            log = find_log(path)
            if log is None:
                raise _fail(
                    path,
                    "no trainer log here (expected log_*.txt, or a .txt/.log file with STEP lines)",
                )
            name, stats = path.name, path / "stats.json"
        else:
            # A lone log file: stats.json beside it belongs to it only if no other log
            # shares the folder.
            log, name = path, run_name_for(path, None)
            stats = stats_beside(path)
    except OSError as exc:
        raise _fail(path, f"cannot be read ({_short(exc)})") from exc
    try:
        data, note = _log_content(log)
    except InputTooLarge as exc:
        raise _fail(path, f"refused: {exc}") from exc
    except OSError as exc:
        raise _fail(path, f"{log.name}: cannot be read ({_short(exc)})") from exc
    notes = [note] if note else []
    run = parse_run(data, name=name, source=log, stats_path=stats, extra_problems=notes)
    attach_hparams(run, path if is_dir else None)
    return run


def attach_hparams(run: Run, run_dir: Path | None) -> None:
    """Fill `run.hparams` from config files, the folder name and the log; unreadable
    config files become problems of the run (whatever goes wrong reading them)."""
    try:
        values, sources, messages = hparams_for(run_dir, run.name, run.meta, variant=run.variant)
    except Exception as exc:  # noqa: BLE001 - config files are optional; the log is not
        logger.warning("run %s: config files set aside: %r", run.name, exc)
        values, sources, messages = hparams_for(None, run.name, run.meta, variant=run.variant)
        messages = [*messages, f"config files ignored: {_short(exc)}"]
    run.hparams = values
    run.meta["hparam_sources"] = sources
    if messages:
        run.problems = pl.concat(
            [run.problems, *(_file_problem("hyperparameters", m) for m in messages)],
            how="vertical_relaxed",
        )


def stats_beside(log: Path) -> Path | None:
    """The `stats.json` of a log given on its own: the one beside it, unless another log
    shares the folder (the snapshot could then belong to either)."""
    try:
        alone = sum(1 for p in log.parent.iterdir() if is_log_file(p)) == 1
    except OSError:
        return None
    return log.parent / "stats.json" if alone else None


def expand_paths(
    paths: Iterable[str | Path], cache: WalkCache | None = None
) -> tuple[list[Path], list[LoadFailure]]:
    """Each path as the run paths it stands for: folders of runs expand, files stay.

    Never raises: a path that is missing, cannot be looked at, or holds folders that
    cannot be read is a listed failure. With a `cache`, a folder is walked again only
    when something the last walk looked at has changed (see `WalkCache`).
    """
    out: list[Path] = []
    failures: list[LoadFailure] = []
    for raw in paths:
        p = Path(raw)
        got = cache.expand(p) if cache is not None else _expand_one(p)
        out.extend(got.runs)
        failures.extend(got.failures)
    return out, failures


@dataclass(frozen=True)
class _Expansion:
    runs: list[Path]
    failures: list[LoadFailure]
    walk: Walk | None = None  # None: nothing was walked (a file, a missing path)
    stamp: tuple[tuple[str, int, int], ...] = ()


def _stamp_of(walk: Walk) -> tuple[tuple[str, int, int], ...]:
    """The folders a walk listed (their mtime changes when an entry comes or goes) and the
    text files it found not to be logs yet (their size changes when one starts logging)."""
    out: list[tuple[str, int, int]] = []
    for p in (*walk.folders, *walk.sniffed, *(f for f, _ in walk.errors)):
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), -1, -1))
    return tuple(out)


def _expand_one(p: Path) -> _Expansion:
    try:
        if not p.exists():
            return _Expansion([], [LoadFailure(p, "no such file or folder")])
        if p.is_file():
            return _Expansion([p], [])
    except OSError as exc:
        return _Expansion([], [LoadFailure(p, f"cannot be read ({_short(exc)})")])
    walk = Walk()
    found = [d for d in find_run_dirs(p, walk=walk) if _holds_log(d)]
    failures = [LoadFailure(d, why) for d, why in walk.errors]
    if found:
        failures.extend(
            LoadFailure(
                d, "looks like a run folder (config or stats.json) but holds no trainer log"
            )
            for d in _runs_without_log(p, set(found), walk)
        )
    elif not any(d == p for d, _ in walk.errors):
        failures.append(LoadFailure(p, "no trainer log found in this folder"))
    return _Expansion(found, failures, walk, _stamp_of(walk))


def _holds_log(d: Path) -> bool:
    try:
        return find_log(d) is not None
    except OSError:
        return False


class WalkCache:
    """Expansions of folders, reused while nothing they looked at has changed.

    Walking a large tree costs seconds (listing every folder, reading the head of every
    `.txt`); checking whether it could turn out differently costs a `stat` per folder it
    listed. A new run folder changes its parent's mtime, a removed one too, and a text
    file that starts logging changes size, so any of those walks again. Thread-safe (an
    app shares one between sessions); at most `max_entries` paths are kept.
    """

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, _Expansion] = {}
        self._lock = threading.Lock()
        self.walks = 0  # how many times a folder was actually walked

    def expand(self, p: Path) -> _Expansion:
        key = str(p)
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit.walk is not None and _stamp_of(hit.walk) == hit.stamp:
            return hit
        got = _expand_one(p)
        if got.walk is not None:
            with self._lock:
                self.walks += 1
                self._entries.pop(key, None)
                self._entries[key] = got
                while len(self._entries) > self.max_entries:
                    self._entries.pop(next(iter(self._entries)))
        return got


def _runs_without_log(root: Path, found: set[Path], walk: Walk, depth: int = 4) -> list[Path]:
    """Folders under `root` that carry a run's side files but no log: worth a word, since
    the user probably expected a run there."""
    markers = {"stats.json", *CONFIG_FILE_NAMES}
    out: list[Path] = []

    def walk_dir(d: Path, level: int) -> None:
        if d in found or level > depth:
            return
        try:
            children = sorted(d.iterdir())
        except OSError:
            return  # reported by the run search, which lists the same folders first
        if d not in walk.folders:
            walk.folders.append(d)
        files: list[Path] = []
        dirs: list[Path] = []
        for c in children:
            try:
                (dirs if c.is_dir() else files).append(c)
            except OSError:
                continue
        if d != root and any(c.name in markers for c in files):
            if not any(f == d or d in f.parents for f in found):
                out.append(d)
            return
        for c in dirs:
            if not c.name.startswith((".", "__")):
                walk_dir(c, level + 1)

    walk_dir(root, 0)
    return out


def unique_names(runs: list[Run]) -> None:
    """Runs from different places can share a folder name; prefix the parent's to tell them apart."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
    for r in runs:
        if seen[r.name] > 1 and r.source is not None:
            parent = r.source.parent
            r.name = (
                f"{parent.parent.name}/{r.name}"
                if parent.name == r.name
                else f"{parent.name}/{r.name}"
            )
    # A last resort for exact clashes that survive the prefix.
    counts: dict[str, int] = {}
    for r in runs:
        if r.name in counts:
            counts[r.name] += 1
            r.name = f"{r.name} ({counts[r.name]})"
        else:
            counts[r.name] = 1


def load_runs(paths: Iterable[str | Path]) -> RunList:
    """Load several runs; a folder holding run folders expands to one run each.

    Paths that cannot be loaded are collected in `.failures` with the reason, never raised.
    """
    run_paths, failures = expand_paths(paths)
    runs: list[Run] = []
    with ThreadPoolExecutor(max_workers=load_workers(len(run_paths))) as pool:
        for p, outcome in zip(run_paths, pool.map(_try_load, run_paths), strict=True):
            if isinstance(outcome, Run):
                runs.append(outcome)
            else:
                failures.append(LoadFailure(p, outcome))
    unique_names(runs)
    return RunList(runs, failures)


def load_workers(n_runs: int) -> int:
    """How many runs to parse at once. Polars releases the GIL while it works, so runs
    parsed side by side overlap one run's single-threaded stretches with another's
    parallel ones: about a third off loading a sweep on two cores."""
    return max(1, min(n_runs, os.cpu_count() or 1, 4))


def _try_load(path: Path) -> Run | str:
    """A run, or why it could not be loaded: one bad run must not take the others down."""
    try:
        return load_run(path)
    except RunLoadError as exc:
        return exc.reason
    except Exception as exc:  # noqa: BLE001
        logger.exception("loading %s failed", path)
        return f"unexpected error while loading: {_short(exc)}"
