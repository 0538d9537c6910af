"""`ponder-parse`: the loader from a shell, over the same core as the app.

ponder-parse summary sample_runs
ponder-parse export sample_runs/baseline,seed=0 --out tables --format parquet
ponder-parse ingest sample_runs --workers 2
ponder-parse runs --where "health = 'critical'"
ponder-parse query "SELECT run_id, max(step) FROM steps GROUP BY run_id"
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ponder_parse.files.loader import load_runs
from ponder_parse.formatting import fmt
from ponder_parse.run import Run


def summary_line(run: Run) -> dict[str, object]:
    """The one-line facts a researcher checks first about each run."""
    return {
        "run": run.name,
        "variant": run.variant,
        "steps": run.n_steps,
        "last_step": run.last_step if run.last_step is not None else "-",
        "final_lm": fmt(run.final_lm, ".4f", missing="-"),
        "restarts": run.meta.get("restarts", 0),
        "problems": run.problems.height,
    }


def _table(rows: list[dict[str, object]]) -> str:
    if not rows:
        return ""
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    head = "  ".join(c.ljust(widths[c]) for c in cols)
    body = ["  ".join(str(r[c]).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join([head, *body])


def cmd_summary(args: argparse.Namespace) -> int:
    runs = load_runs(args.paths)
    if runs:
        print(_table([summary_line(r) for r in runs]))
    for f in runs.failures:
        print(f"error: {f.path}: {f.reason}", file=sys.stderr)
    return 0 if runs else 1


def _writable(df: pl.DataFrame, fmt: str) -> pl.DataFrame:
    """CSV has no list type: survival traces are written as `[1.0, 0.82, ...]` text."""
    if fmt != "csv":
        return df
    lists = [c for c, d in df.schema.items() if isinstance(d, pl.List)]
    return df.with_columns(
        ("[" + pl.col(c).cast(pl.List(pl.String)).list.join(", ") + "]").alias(c) for c in lists
    )


def export_run(run: Run, out: Path, fmt: str = "parquet") -> list[Path]:
    """Write every table of a run as `OUT/<table>.<fmt>`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in run.tables().items():
        path = out / f"{name}.{fmt}"
        frame = _writable(df, fmt)
        if fmt == "csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path)
        written.append(path)
    return written


def cmd_export(args: argparse.Namespace) -> int:
    runs = load_runs(args.paths)
    for f in runs.failures:
        print(f"error: {f.path}: {f.reason}", file=sys.stderr)
    out = Path(args.out)
    for run in runs:
        target = out / run.name.replace("/", "__") if len(runs) > 1 else out
        files = export_run(run, target, args.format)
        print(f"{run.name}: {len(files)} tables -> {target}")
    return 0 if runs and not runs.failures else 1


def _store_dir(args: argparse.Namespace) -> Path:
    from ponder_parse.files.store import default_store_dir

    return Path(args.store) if args.store else default_store_dir()


def cmd_ingest(args: argparse.Namespace) -> int:
    from ponder_parse.files.store import IngestResult, open_store

    store = open_store(_store_dir(args), create=True)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int, r: IngestResult) -> None:
        what = r.name or r.path.name
        line = f"[{done}/{total}] {r.action:<9} {what}"
        if tty and r.ok:
            print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
        else:
            print(("\r\033[K" if tty else "") + line, file=sys.stderr, flush=True)

    report = store.ingest(args.paths, workers=args.workers, progress=progress, sync=args.fsync)
    if tty:
        print(file=sys.stderr)
    for r in report.failures:
        print(f"error: {r.path}: {r.reason}", file=sys.stderr)
    counts = ", ".join(f"{n} {a}" for a, n in sorted(report.counts().items()))
    mib = report.parsed_bytes / 2**20
    print(f"{counts or 'no runs'}; {mib:.1f} MiB parsed; store {store.root}", file=sys.stderr)
    return 1 if report.failures or not report.results else 0


RUNS_COLUMNS = (
    "run_id",
    "name",
    "health",
    "variant",
    "n_steps",
    "last_step",
    "final_lm",
    "best_lm",
    "win_rate",
    "dominant_pattern",
    "restarts",
    "problems",
)


def _print_frame(df: pl.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        print(_writable(df, "csv").write_csv(), end="")
    elif fmt == "json":
        print(df.write_json())
    else:
        with pl.Config(
            tbl_rows=-1,
            tbl_cols=-1,
            tbl_width_chars=max(100, shutil.get_terminal_size((200, 24)).columns),
            fmt_str_lengths=60,
            tbl_hide_dataframe_shape=True,
        ):
            print(df)


def cmd_runs(args: argparse.Namespace) -> int:
    from ponder_parse.files.store import StoreError, open_store
    from ponder_parse.files.store.query import runs_where

    try:
        store = open_store(_store_dir(args))
        table = runs_where(store, args.where)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bad WHERE clause: DuckDB says why
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cols = args.columns.split(",") if args.columns else list(RUNS_COLUMNS)
    missing = [c for c in cols if c not in table.columns]
    if missing:
        print(f"error: no column(s) {missing}; the runs table has {table.columns}", file=sys.stderr)
        return 2
    _print_frame(table.select(cols), args.format)
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from ponder_parse.files.store import StoreError, open_store
    from ponder_parse.files.store.query import query

    try:
        result = query(open_store(_store_dir(args)), args.sql)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - SQL errors: DuckDB says why
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_frame(result, args.format)
    return 0


def parser() -> argparse.ArgumentParser:
    """The command line, apart from running it: the docs test checks the README's
    commands against it."""
    cli = argparse.ArgumentParser(
        prog="ponder-parse", description="Read ponder trainer logs into tables."
    )
    sub = cli.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="one line per run")
    p.add_argument("paths", nargs="+", help="run folders, log files, or folders of runs")
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("export", help="write every table of each run")
    p.add_argument("paths", nargs="+")
    p.add_argument("--out", required=True, help="output folder (one subfolder per run if several)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.set_defaults(func=cmd_export)
    store_help = (
        "run store folder (default: $PONDER_STORE, else $XDG_CACHE_HOME/ponder-parse/store)"
    )
    p = sub.add_parser("ingest", help="parse runs into a run store (only what changed)")
    p.add_argument("paths", nargs="+", help="run folders, log files, or folders of runs")
    p.add_argument("--store", help=store_help)
    p.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="runs parsed at once (processes)"
    )
    p.add_argument(
        "--fsync",
        action="store_true",
        help="flush every part file to disk, not only each run's row (survives a power loss "
        "with no re-parse)",
    )
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("runs", help="list the runs of a store")
    p.add_argument("--store", help=store_help)
    p.add_argument(
        "--where",
        help="DuckDB WHERE clause over the runs table, e.g. \"health = 'critical'\" or "
        "\"json_extract(hparams, '$.lambda_max')::DOUBLE < 0.01\"",
    )
    p.add_argument("--columns", help="comma-separated columns to show")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_runs)
    p = sub.add_parser("query", help="SQL over a store through DuckDB (one view per table)")
    p.add_argument("sql", help='e.g. "SELECT run_id, max(step) FROM steps GROUP BY run_id"')
    p.add_argument("--store", help=store_help)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_query)
    return cli


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
