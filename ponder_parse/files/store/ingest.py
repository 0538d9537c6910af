"""Logs → the run store, parsing only what changed.

A run's row in the `runs` table is its commit record: it names the part files that make up
the run's current version (and how to resume parsing its log). An ingest writes new part
files under fresh names, then replaces the row (atomically), then deletes the files the
old version named. A reader that goes through the row therefore sees one whole version,
and a writer that dies before replacing the row leaves the old version in place; the
leftover parts are swept by the next ingest of that run, under the run's lock.

A growing log is parsed from the end of the last complete line the stored version
consumed: the parser's chunked scan (`scan_lines` with its `ScanState`) continues where it
stopped, as the live follower does. Lines it cannot decide yet (an open generation or
traceback block, an unterminated last line) and file-level facts (stats.json, config
files) go to a *tail* part that the next ingest replaces. When appended lines re-log
steps the store already holds (a resumed run: the later occurrence wins), the stored parts
cannot simply be extended, and the run is parsed again from the start.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

import ponder_parse
from ponder_parse import schema
from ponder_parse.analysis import phases, summaries
from ponder_parse.analysis import red_flags as flags
from ponder_parse.analysis.summaries import RUN_SUMMARY_SCHEMA, run_summary
from ponder_parse.files.hparams import CONFIG_FILE_NAMES
from ponder_parse.files.limits import check_log_bytes, log_limits
from ponder_parse.files.loader import (
    RunLoadError,
    attach_hparams,
    build_run,
    expand_paths,
    find_log,
    open_bytes,
    run_name_for,
    stats_beside,
)
from ponder_parse.files.store import layout
from ponder_parse.parse import scan as logparse
from ponder_parse.run import Run, RunMeta

F = pl.Float64
JSON = pl.String  # JSON text: DuckDB's json_extract and Polars' str.json_decode read it

# Keyed tables: the parser keeps the later occurrence of a key, so parts can only be
# appended while keys keep increasing across them.
KEYS: dict[str, list[str]] = {
    "steps": ["step"],
    "layers": ["step", "layer"],
    "traces": ["step", "layer"],
    "quality": ["step"],
    "lr_checks": ["step"],
    "generations": ["step", "sample"],
}

SUMMARY_COLUMNS = (
    "final_lm",
    "best_lm",
    "best_lm_step",
    "k_mean_economic",
    "ctrl_err_abs_mean_economic",
    "win_rate",
    "audit_pos_rate",
    "lambda_p_end",
    "dominant_pattern",
    "n_flags",
    "n_critical",
    "n_warning",
    "n_info",
)

RUNS_SCHEMA: schema.TableSchema = {
    "name": pl.String,
    "path": pl.String,
    "log_file": pl.String,
    "variant": pl.String,
    "content_hash": pl.String,
    "size": pl.Int64,
    "mtime": pl.Datetime("us", "UTC"),
    "ingested_at": pl.Datetime("us", "UTC"),
    "ingest_mode": pl.String,
    "parsed_bytes": pl.Int64,
    "parse_seconds": F,
    "version": pl.Int64,
    "n_steps": pl.Int64,
    "first_step": pl.Int64,
    "last_step": pl.Int64,
    "n_lines": pl.Int64,
    "truncated": pl.Boolean,
    "params": pl.Int64,
    "n_layers": pl.Int64,
    "kmax": pl.Int64,
    "target_k": F,
    "target_k_source": pl.String,
    "restarts": pl.Int64,
    "deadband_step": pl.Int64,
    "problems": pl.Int64,
    "hparams": JSON,
    "hparam_sources": JSON,
    **{c: RUN_SUMMARY_SCHEMA[c] for c in SUMMARY_COLUMNS},
    "health": pl.String,
    "summary_error": pl.String,
    "summary": JSON,
    "measures": JSON,
    "phases": JSON,
    "facts": JSON,
    "columns": JSON,
    "meta": JSON,
    "snapshot": JSON,
    "state": JSON,
}
"""The `runs` table's columns (its `run_id` comes from the partition folder)."""

HEALTHS = (*summaries.HEALTHS, summaries.UNKNOWN)


@functools.cache
def code_version() -> str:
    """The parser and analysis code that produced a stored run: a run stored by other code
    is parsed again, so the store never serves tables today's parser would not produce."""
    pkg = Path(ponder_parse.__file__).parent
    h = hashlib.blake2b(digest_size=8)
    for p in sorted(pkg.rglob("*.py")):
        h.update(p.relative_to(pkg).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True)
class IngestResult:
    """What one ingest did to one run.

    `action`: `new` (first ingest), `parsed` (parsed again from the start: `reason` says
    why), `appended` (only the grown part of the log parsed), `refreshed` (side files such
    as stats.json changed; only the lines after the last committed one parsed),
    `unchanged` (nothing parsed), `failed` (`reason` says why; the store is as it was).
    """

    path: Path
    action: str
    run_id: str | None = None
    name: str | None = None
    parsed_bytes: int = 0
    seconds: float = 0.0
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.action != "failed"


@dataclass
class IngestReport:
    results: list[IngestResult] = field(default_factory=list)

    @property
    def failures(self) -> list[IngestResult]:
        return [r for r in self.results if not r.ok]

    @property
    def parsed_bytes(self) -> int:
        return sum(r.parsed_bytes for r in self.results)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.action] = out.get(r.action, 0) + 1
        return out


@dataclass(frozen=True)
class RunInputs:
    """The files a run is read from, found exactly as `load_run` finds them."""

    path: Path
    run_dir: Path | None
    log: Path
    name: str
    stats: Path | None
    side: tuple[Path, ...]  # stats.json and config files that exist


def resolve_inputs(path: Path) -> RunInputs:
    if not path.exists():
        raise RunLoadError(f"{path}: no such file or folder")
    if path.is_dir():
        log = find_log(path)
        if log is None:
            raise RunLoadError(
                f"{path}: no trainer log here (expected log_*.txt, or a .txt/.log file with STEP lines)"
            )
        config_names = set(CONFIG_FILE_NAMES)
        side = tuple(
            sorted(
                p
                for p in path.iterdir()
                if p.is_file() and (p.name.lower() in config_names or p.name == "stats.json")
            )
        )
        return RunInputs(path, path, log, path.name, path / "stats.json", side)
    stats = stats_beside(path)
    side = (stats,) if stats is not None and stats.is_file() else ()
    return RunInputs(path, None, path, run_name_for(path, None), stats, side)


def _stat(p: Path) -> list[int]:
    st = p.stat()
    return [st.st_size, st.st_mtime_ns]


def fingerprint(inputs: RunInputs) -> dict[str, Any]:
    """The cheap check (sizes and modification times) that lets an unchanged run be
    skipped without reading it."""
    return {
        "log": [inputs.log.name, *_stat(inputs.log)],
        "side": {p.name: _stat(p) for p in inputs.side},
        "stats": inputs.stats is not None,
    }


def _is_compressed(log: Path, data: bytes) -> bool:
    return log.suffix.lower() == ".gz" or data[:2] == b"\x1f\x8b"


@dataclass
class _Built:
    run: Run
    committed: dict[str, pl.DataFrame]  # rows to append as a new committed part
    tail: dict[str, pl.DataFrame]  # rows of the tail part (replaced by the next ingest)
    append: dict[str, Any] | None  # where the next ingest resumes parsing; None: from scratch
    parsed_bytes: int
    seconds: float


def _key(df: pl.DataFrame, keys: list[str]) -> pl.Series:
    key = df[keys[0]].cast(pl.Int64)
    if len(keys) == 2:
        key = key * (1 << 20) + df[keys[1]].cast(pl.Int64)
    return key


def _strictly_increasing(df: pl.DataFrame, keys: list[str]) -> bool:
    if df.height < 2:
        return True
    if len(keys) == 2:
        minor = df[keys[1]]
        if (
            minor.null_count()
            or schema.as_int(minor.min()) < 0
            or schema.as_int(minor.max()) >= 1 << 20
        ):
            return False
    key = _key(df, keys)
    return key.null_count() == 0 and bool((key.diff().drop_nulls() > 0).all())


def _merge_kinds(*kinds: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for k in kinds:
        for name, n in k.items():
            out[name] = out.get(name, 0) + int(n)
    return out


def _invalid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _build_chunked(
    inputs: RunInputs,
    content: bytes,
    note: str | None,
    start: Mapping[str, Any] | None,
    old: Mapping[str, pl.DataFrame],
    appendable: bool,
    whole_hash: str | None = None,
) -> _Built | None:
    """Parse `content` from the stored resume point (or from the start); None when the new
    rows would not simply follow the stored ones (a resume re-logged stored steps).
    `whole_hash` is `_hash(content)` when already known: the resume point of a log that
    ends with a complete line is its end, and its hash need not be taken twice."""
    t0 = time.perf_counter()
    offset = int(start["offset"]) if start else 0
    new = content[offset:]
    cut = new.rfind(b"\n")
    complete, partial = new[: cut + 1], new[cut + 1 :]
    state = logparse.ScanState(**start["scan"]) if start else logparse.ScanState()
    lines, _, invalid = logparse.read_lines(complete)
    chunk, state_c, consumed = logparse.scan_lines(lines, state, final=False)
    if consumed < lines.height:
        newlines = np.flatnonzero(np.frombuffer(complete, dtype=np.uint8) == 10)
        committed_len = int(newlines[consumed - 1]) + 1 if consumed else 0
    else:
        committed_len = len(complete)
    held = lines.slice(consumed)
    if held.height:
        tail_chunk, state_t, _ = logparse.scan_lines(held, state_c, final=True)
    else:
        tail_chunk, state_t = logparse.RawChunk({}), state_c
    committed = logparse.finalize([chunk])
    tail = logparse.finalize([tail_chunk])
    tables = {
        t: pl.concat([old[t], committed[t], tail[t]], how="vertical_relaxed") for t in schema.TABLES
    }
    if not all(_strictly_increasing(tables[t], k) for t, k in KEYS.items()):
        return None
    if partial:
        tables["problems"] = pl.concat(
            [
                tables["problems"],
                schema.conform(
                    pl.DataFrame(
                        {
                            "line_no": [state_t.line_no + 1],
                            "text": [
                                partial.decode("utf-8", errors="replace")[
                                    : logparse.PROBLEM_TEXT_MAX
                                ]
                            ],
                            "reason": ["incomplete last line (log still being written?)"],
                        }
                    ),
                    schema.PROBLEMS,
                ),
            ]
        )
    kinds_committed = _merge_kinds(start["kinds"] if start else {}, logparse.line_kinds([chunk]))
    invalid_before = bool(start["invalid_utf8"]) if start else False
    invalid_committed = invalid_before or (invalid and _invalid_utf8(complete[:committed_len]))
    facts: RunMeta = {
        "truncated": bool(partial),
        "n_lines": state_t.line_no + bool(partial),
        "invalid_utf8": invalid_before or invalid or _invalid_utf8(partial),
        "line_kinds": _merge_kinds(kinds_committed, logparse.line_kinds([tail_chunk])),
    }
    run = _finish_run(inputs, tables, facts, note)
    n_before = {t: old[t].height + committed[t].height for t in schema.TABLES}
    tail_rows = {t: run.tables()[t].slice(n_before[t]) for t in schema.TABLES}
    tail_rows["snapshot_layers"] = run.snapshot_layers
    end = offset + committed_len
    append = (
        {
            "offset": end,
            "prefix_hash": whole_hash
            if whole_hash and end == len(content)
            else _hash(content[:end]),
            "scan": asdict(state_c),
            "kinds": kinds_committed,
            "invalid_utf8": invalid_committed,
        }
        if appendable
        else None
    )
    return _Built(
        run=run,
        committed=committed,
        tail=tail_rows,
        append=append,
        parsed_bytes=len(new),
        seconds=time.perf_counter() - t0,
    )


def _build_whole(inputs: RunInputs, content: bytes, note: str | None) -> _Built:
    """The whole log in one parse, exactly as `load_run` does it; the next change of the
    log parses it whole again."""
    t0 = time.perf_counter()
    tables, facts = logparse.parse_bytes(content)
    run = _finish_run(inputs, tables, facts, note)
    committed = {t: run.tables()[t] for t in schema.TABLES}
    return _Built(
        run=run,
        committed=committed,
        tail={"snapshot_layers": run.snapshot_layers},
        append=None,
        parsed_bytes=len(content),
        seconds=time.perf_counter() - t0,
    )


def _finish_run(
    inputs: RunInputs, tables: dict[str, pl.DataFrame], facts: RunMeta, note: str | None
) -> Run:
    run = build_run(
        tables,
        facts,
        name=inputs.name,
        source=inputs.log,
        stats_path=inputs.stats,
        extra_problems=[note] if note else [],
    )
    attach_hparams(run, inputs.run_dir)
    return run


def read_row(root: Path, run_id: str) -> dict[str, Any] | None:
    path = layout.runs_row_path(root, run_id)
    try:
        df = pl.read_parquet(path, hive_partitioning=False)
    except FileNotFoundError:
        return None
    return df.row(0, named=True) if df.height else None


def committed_files(root: Path, run_id: str, state: Mapping[str, Any]) -> dict[str, list[Path]]:
    """The part files of a stored version, table by table, in reading order."""
    out: dict[str, list[Path]] = {}
    for table in layout.RUN_TABLES:
        ids = list(state.get("committed", {}).get(table, []))
        if table in state.get("tail", {}):
            ids.append(state["tail"][table])
        out[table] = [layout.part_path(root, table, run_id, i) for i in ids]
    return out


def _read_parts(files: list[Path], table: str) -> pl.DataFrame:
    if not files:
        return schema.empty(schema.TABLES[table])
    return pl.read_parquet(files, hive_partitioning=False)


def _summary_columns(run: Run) -> tuple[dict[str, Any], str | None, str | None, str | None]:
    """The run's summary, its sweep-rule measures (JSON), its phases (JSON rows) and what
    failed, all with the default red-flag rules and no phase edits: what a runs page shows,
    and the phase bands a chart draws, without opening the run's tables."""
    try:
        phases_df = phases.phases(run)
        summary = run_summary(run, phases_df=phases_df)
    except Exception as exc:  # noqa: BLE001 - the run is stored all the same, with the reason
        return {}, None, None, f"summary failed: {exc!r}"
    phase_rows = json.dumps(phases_df.select(list(phases.PHASES_SCHEMA)).rows())
    try:
        m = flags.measure_run(run, flags.DEFAULT, phases_df=phases_df)
        measures = json.dumps(
            {
                "facts": m.facts,
                "values": {k: asdict(v) for k, v in m.values.items()},
                "errors": m.errors,
            }
        )
    except (TypeError, ValueError):  # a fact JSON cannot hold: measured when shown instead
        measures = None
    return summary, measures, phase_rows, None


def _row(
    inputs: RunInputs,
    run: Run,
    data: bytes,
    state: dict[str, Any],
    *,
    mode: str,
    parsed_bytes: int,
    parse_seconds: float,
) -> pl.DataFrame:
    summary, measures, phase_rows, error = _summary_columns(run)
    meta = run.meta
    mtime_ns = state["fingerprint"]["log"][2]
    row: dict[str, Any] = {
        "name": run.name,
        "path": str(inputs.path),
        "log_file": str(inputs.log),
        "variant": run.variant,
        "content_hash": state["hashes"]["log"],
        "size": len(data),
        "mtime": datetime.fromtimestamp(mtime_ns / 1e9, tz=UTC),
        "ingested_at": datetime.now(tz=UTC),
        "ingest_mode": mode,
        "parsed_bytes": parsed_bytes,
        "parse_seconds": parse_seconds,
        "version": state["version"],
        "n_steps": run.n_steps,
        "first_step": meta.get("first_step"),
        "last_step": meta.get("last_step"),
        "n_lines": meta.get("n_lines"),
        "truncated": meta.get("truncated"),
        "params": meta.get("params") if isinstance(meta.get("params"), int) else None,
        "n_layers": meta.get("n_layers"),
        "kmax": meta.get("kmax"),
        "target_k": meta.get("target_k"),
        "target_k_source": meta.get("target_k_source"),
        "restarts": meta.get("restarts", 0),
        "deadband_step": meta.get("deadband_step"),
        "problems": run.problems.height,
        "hparams": json.dumps(run.hparams),
        "hparam_sources": json.dumps(meta.get("hparam_sources", {})),
        **{c: summary.get(c) for c in SUMMARY_COLUMNS},
        "health": summaries.UNKNOWN if error else summaries.health(summary),
        "summary_error": error,
        "summary": None if error else json.dumps({k: v for k, v in summary.items() if k != "run"}),
        "measures": measures,
        "phases": phase_rows,
        "facts": json.dumps(summaries.run_facts(run).rows()),
        "columns": json.dumps(run.column_counts()),
        "meta": json.dumps(meta),
        "snapshot": None if run.snapshot is None else json.dumps(run.snapshot),
        "state": json.dumps(state),
    }
    return pl.DataFrame([row], schema=RUNS_SCHEMA)


def ingest_run(
    root: str | Path, path: str | Path, *, lock_timeout: float = 600.0, sync: bool = False
) -> IngestResult:
    """Bring one run's stored version up to date with its files. Never raises: a run that
    cannot be ingested comes back as `failed` with the reason, and the store keeps its
    previous version of it. `sync` flushes the part files to disk too, not only the row
    (what survives a power loss: see `layout`)."""
    t0 = time.perf_counter()
    root = Path(root)
    p = Path(path).resolve()
    run_id = layout.run_id_for(p)
    try:
        layout.ensure_store(root)
        inputs = resolve_inputs(p)
        with layout.run_lock(root, run_id, timeout=lock_timeout):
            result = _ingest_locked(root, run_id, inputs, sync)
    except (RunLoadError, layout.StoreError) as exc:
        return IngestResult(p, "failed", run_id, reason=str(exc), seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - one bad run must not stop the others
        return IngestResult(
            p,
            "failed",
            run_id,
            reason=f"{type(exc).__name__}: {exc}",
            seconds=time.perf_counter() - t0,
        )
    return IngestResult(
        p,
        result[0],
        run_id,
        name=result[1],
        parsed_bytes=result[2],
        seconds=time.perf_counter() - t0,
        reason=result[3],
    )


def _ingest_locked(
    root: Path, run_id: str, inputs: RunInputs, sync: bool
) -> tuple[str, str, int, str | None]:
    old_row = read_row(root, run_id)
    old = json.loads(old_row["state"]) if old_row else None
    fp = fingerprint(inputs)
    current = old is not None and old.get("code") == layout_code()
    old_files = committed_files(root, run_id, old) if old else {}
    keep = {p for files in old_files.values() for p in files}
    missing = _parts_missing(keep, old.get("part_bytes", {}) if old else {})
    current = current and missing is None
    if current and old_row is not None and old is not None and old["fingerprint"] == fp:
        _sweep(root, run_id, keep)
        return "unchanged", old_row["name"], 0, None

    data = inputs.log.read_bytes()
    log_hash = _hash(data)
    hashes = {"log": log_hash, "side": {p.name: _hash(p.read_bytes()) for p in inputs.side}}
    if current and old is not None and old["hashes"] == hashes and old["log"] == inputs.log.name:
        # Touched, not changed: record the new times so the cheap check holds next time.
        assert old_row is not None
        state = dict(old, fingerprint=fp, version=old["version"] + 1)
        row = pl.DataFrame([old_row], schema=RUNS_SCHEMA).with_columns(
            state=pl.lit(json.dumps(state)), version=pl.lit(state["version"], pl.Int64)
        )
        layout.atomic_write_parquet(row, layout.runs_row_path(root, run_id), root, run_id)
        _sweep(root, run_id, keep)
        return "unchanged", old_row["name"], 0, "files touched, content unchanged"

    compressed = _is_compressed(inputs.log, data)
    if compressed:
        content, note = open_bytes(inputs.log)
    else:
        check_log_bytes(data, log_limits(), inputs.log.name)  # before the parser allocates
        content, note = data, None
    whole = None if compressed else log_hash
    start = old.get("append") if current and old is not None else None
    if start is not None and (
        old is None
        or old["log"] != inputs.log.name
        or len(content) < start["offset"]
        or _hash(content[: start["offset"]]) != start["prefix_hash"]
    ):
        start = None
    built = None
    reason = None
    if start is not None:
        assert old is not None
        old_tables = {
            t: _read_parts(
                [layout.part_path(root, t, run_id, i) for i in old["committed"].get(t, [])], t
            )
            for t in schema.TABLES
        }
        built = _build_chunked(
            inputs, content, note, start, old_tables, appendable=True, whole_hash=whole
        )
        if built is None:
            reason = "appended lines re-log stored steps (a resume): parsed again"
    if built is None:
        empty = {t: schema.empty(s) for t, s in schema.TABLES.items()}
        built = _build_chunked(
            inputs, content, note, None, empty, appendable=not compressed, whole_hash=whole
        )
    if built is None:
        built = _build_whole(inputs, content, note)
    if old is None:
        mode = "new"
    elif start is not None and built.append is not None and reason is None:
        mode = "appended" if len(data) > old["fingerprint"]["log"][1] else "refreshed"
    else:
        mode = "parsed"
        if reason is None:
            reason = missing if missing else _why_parsed(old, current, inputs, hashes)

    # Write the new version: fresh part files, then the row that names them.
    # Part ids are never reused within a run, so a new part never replaces a file that
    # a reader of the old version may still be reading.
    next_part = max(int(old.get("next_part", 0)) if old else 0, _max_part(root, run_id) + 1)
    committed_ids: dict[str, list[int]] = (
        {t: list(v) for t, v in old["committed"].items()}
        if mode in ("appended", "refreshed") and old is not None
        else {}
    )
    cid, tid = next_part, next_part + 1
    parts: list[tuple[pl.DataFrame, Path]] = []
    for t, df in built.committed.items():
        if df.height:
            parts.append((df, layout.part_path(root, t, run_id, cid)))
            committed_ids.setdefault(t, []).append(cid)
    tail_ids: dict[str, int] = {}
    for t, df in built.tail.items():
        if df.height:
            parts.append((df, layout.part_path(root, t, run_id, tid)))
            tail_ids[t] = tid
    written = [path for _, path in parts]
    try:
        # Every part is on disk under its final name before the row that names them.
        layout.atomic_write_parquets(parts, root, run_id, sync=sync)
        new_files = committed_files(root, run_id, {"committed": committed_ids, "tail": tail_ids})
        state = {
            "format": layout.STORE_FORMAT,
            "code": layout_code(),
            "fingerprint": fp,
            "hashes": hashes,
            "log": inputs.log.name,
            "append": built.append,
            "committed": committed_ids,
            "tail": tail_ids,
            "next_part": next_part + 2,
            "part_bytes": {
                _part_key(p): p.stat().st_size for files in new_files.values() for p in files
            },
            "version": (int(old.get("version", 0)) + 1) if old else 1,
        }
        row = _row(
            inputs,
            built.run,
            data,
            state,
            mode=mode,
            parsed_bytes=built.parsed_bytes,
            parse_seconds=built.seconds,
        )
        layout.atomic_write_parquet(row, layout.runs_row_path(root, run_id), root, run_id)
    except BaseException:
        for path in written:
            layout.remove_quietly(path)
        raise
    new_keep = {p for files in committed_files(root, run_id, state).values() for p in files}
    for path in keep - new_keep:
        layout.remove_quietly(path)
    _sweep(root, run_id, new_keep)
    return mode, built.run.name, built.parsed_bytes, reason


def _part_key(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.name}"


def _parts_missing(files: set[Path], sizes: Mapping[str, int]) -> str | None:
    """Why the stored parts cannot be used (None: they can): one gone, or one shorter or
    longer than when its row was written (a power loss before it reached the disk)."""
    for path in files:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return "stored parts missing"
        if size != sizes.get(_part_key(path), size):
            return "stored parts incomplete (cut short by a crash?)"
    return None


def layout_code() -> str:
    return f"{layout.STORE_FORMAT}:{code_version()}"


def _why_parsed(
    old: Mapping[str, Any], current: bool, inputs: RunInputs, hashes: Mapping[str, Any]
) -> str:
    if not current:
        return "stored by another version of ponder-parse"
    if old["log"] != inputs.log.name:
        return f"the run's log is now {inputs.log.name}"
    if old.get("append") is None:
        return "log changed (compressed, or not resumable)"
    if hashes["log"] != old["hashes"]["log"]:
        return "log rewritten (its stored start changed)"
    return "side files changed"


def _max_part(root: Path, run_id: str) -> int:
    """The highest part id on disk for a run (-1 if none), committed or left over."""
    top = -1
    for table in layout.RUN_TABLES:
        try:
            names = [p.name for p in layout.partition_dir(root, table, run_id).iterdir()]
        except FileNotFoundError:
            continue
        for name in names:
            stem = name.removeprefix("part-").removesuffix(".parquet")
            if stem.isdigit():
                top = max(top, int(stem))
    return top


def _sweep(root: Path, run_id: str, keep: set[Path]) -> None:
    for path in layout.leftover_files(root, run_id, keep):
        layout.remove_quietly(path)


ProgressFn = Callable[[int, int, IngestResult], None]


def ingest_paths(
    root: str | Path,
    paths: Iterable[str | Path],
    *,
    workers: int = 1,
    progress: ProgressFn | None = None,
    use_processes: bool = True,
    lock_timeout: float = 600.0,
    sync: bool = False,
) -> IngestReport:
    """Ingest runs (folders of runs expand to one run each), `workers` at a time.

    Processes by default: parsing is CPU-bound and only partly releases the GIL. A path
    that holds no run is reported as failed, like a run that cannot be read."""
    run_paths, failures = expand_paths(paths)
    report = IngestReport([IngestResult(f.path, "failed", reason=f.reason) for f in failures])
    total = len(run_paths) + len(failures)
    done = len(failures)
    for r in report.results:
        if progress:
            progress(done, total, r)
    if not run_paths:
        return report
    workers = max(1, min(workers, len(run_paths)))
    if workers == 1:
        for p in run_paths:
            r = ingest_run(root, p, lock_timeout=lock_timeout, sync=sync)
            report.results.append(r)
            done += 1
            if progress:
                progress(done, total, r)
        return report
    pool: Executor = (
        ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
        if use_processes
        else ThreadPoolExecutor(max_workers=workers)
    )
    with pool:
        futures = {
            pool.submit(ingest_run, str(root), str(p), lock_timeout=lock_timeout, sync=sync): p
            for p in run_paths
        }
        for fut in as_completed(futures):
            try:
                r = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died: report, go on
                r = IngestResult(Path(futures[fut]), "failed", reason=f"worker failed: {exc!r}")
            report.results.append(r)
            done += 1
            if progress:
                progress(done, total, r)
    return report
