"""Files on disk → `Run` objects.

Finding the log in a run folder, decompressing, decoding, parsing, reading `stats.json`
and deriving run metadata. Bad input degrades: a run loads with whatever is readable and
says what was not in `run.problems`; only a path with no log at all raises
`RunLoadError`, and `load_runs` turns that into a listed failure so one broken run never
hides the others.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ponder_parse import schema
from ponder_parse.files.discovery import LOG_SUFFIXES, find_run_dirs, is_log_file
from ponder_parse.files.hparams import CONFIG_FILE_NAMES, hparams_for
from ponder_parse.parse import scan as logparse
from ponder_parse.parse.meta import derive_meta, detect_variant
from ponder_parse.parse.snapshot import read_snapshot, snapshot_layers
from ponder_parse.run import Run, RunMeta

MAX_LOG_BYTES = 4 * 2**30  # decompressed; a 10 000-step log is about 6 MB


class RunLoadError(Exception):
    """A path that cannot be read as a run at all (missing, or no log inside)."""


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


def open_bytes(path: Path, limit: int = MAX_LOG_BYTES) -> tuple[bytes, str | None]:
    """File content, gunzipped when needed.

    Decompression stops at `limit` bytes (a compressed upload must not be able to fill
    memory), and a gzip stream that ends early (a log still being compressed, a cut
    download) yields what is there; both come with a note.
    """
    data = path.read_bytes()
    if not (path.suffix.lower() == ".gz" or data[:2] == b"\x1f\x8b"):
        return data, None
    d = zlib.decompressobj(wbits=47)
    try:
        out = d.decompress(data, limit)
    except zlib.error as exc:
        return b"", f"not a readable gzip file ({exc})"
    if d.unconsumed_tail:
        return out, f"decompressed log is larger than {limit // 2**20} MiB: only the start was read"
    if not d.eof:
        return out, "compressed log ends early: showing what could be decompressed"
    return out, None


def _log_content(path: Path) -> tuple[bytes | Path, str | None]:
    """A compressed log's bytes, or a plain log's path (read by Polars directly, so the
    file's content is not held twice in memory)."""
    with path.open("rb") as fh:
        magic = fh.read(2)
    if path.suffix.lower() == ".gz" or magic == b"\x1f\x8b":
        return open_bytes(path)
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
    snapshot = None
    if stats_path is not None and stats_path.exists():
        snapshot, why = read_snapshot(stats_path)
        if why:
            problems.append(_file_problem("stats.json", why))
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
    tables = dict(tables, problems=pl.concat(problems, how="vertical_relaxed"))
    snap_layers = snapshot_layers(snapshot)
    return Run(
        name=name,
        source=source,
        variant=detect_variant(where if source else "", tables),
        snapshot=snapshot,
        snapshot_layers=snap_layers,
        meta=derive_meta(tables, facts, snap_layers),
        **tables,
    )


def _file_problem(text: str, reason: str) -> pl.DataFrame:
    return schema.conform(
        pl.DataFrame({"line_no": [None], "text": [text], "reason": [reason]}), schema.PROBLEMS
    )


def load_run(path: str | Path) -> Run:
    """Load one run: a run folder, or a single log file (`.txt`/`.log`, also `.gz`)."""
    path = Path(path)
    if not path.exists():
        raise RunLoadError(f"{path}: no such file or folder")
    if path.is_dir():
        log = find_log(path)
        if log is None:
            raise RunLoadError(
                f"{path}: no trainer log here (expected log_*.txt, or a .txt/.log file with STEP lines)"
            )
        name, stats = path.name, path / "stats.json"
    else:
        # A lone log file: stats.json beside it belongs to it only if no other log shares the folder.
        log, name = path, run_name_for(path, None)
        stats = stats_beside(path)
    try:
        data, note = _log_content(log)
    except OSError as exc:
        raise RunLoadError(f"{log}: cannot be read ({exc.strerror or exc})") from exc
    notes = [note] if note else []
    run = parse_run(data, name=name, source=log, stats_path=stats, extra_problems=notes)
    attach_hparams(run, path if path.is_dir() else None)
    return run


def attach_hparams(run: Run, run_dir: Path | None) -> None:
    """Fill `run.hparams` from config files, the folder name and the log; unreadable
    config files become problems of the run."""
    values, sources, messages = hparams_for(run_dir, run.name, run.meta, variant=run.variant)
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


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[LoadFailure]]:
    """Each path as the run paths it stands for: folders of runs expand, files stay."""
    out: list[Path] = []
    failures: list[LoadFailure] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            failures.append(LoadFailure(p, "no such file or folder"))
        elif p.is_file():
            out.append(p)
        else:
            found = [d for d in find_run_dirs(p) if find_log(d) is not None]
            if found:
                out.extend(found)
                failures.extend(
                    LoadFailure(
                        d, "looks like a run folder (config or stats.json) but holds no trainer log"
                    )
                    for d in _runs_without_log(p, set(found))
                )
            else:
                failures.append(LoadFailure(p, "no trainer log found in this folder"))
    return out, failures


def _runs_without_log(root: Path, found: set[Path], depth: int = 4) -> list[Path]:
    """Folders under `root` that carry a run's side files but no log: worth a word, since
    the user probably expected a run there."""
    markers = {"stats.json", *CONFIG_FILE_NAMES}
    out: list[Path] = []

    def walk(d: Path, level: int) -> None:
        if d in found or level > depth:
            return
        try:
            children = sorted(d.iterdir())
        except OSError:
            return
        if d != root and any(c.name in markers for c in children if c.is_file()):
            if not any(f == d or d in f.parents for f in found):
                out.append(d)
            return
        for c in children:
            if c.is_dir() and not c.name.startswith((".", "__")):
                walk(c, level + 1)

    walk(root, 0)
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
        return str(exc)
    except Exception as exc:  # noqa: BLE001
        return f"unexpected error while loading: {exc!r}"
