"""`ponder-parse`: the loader from a shell, over the same core as the app.

ponder-parse summary sample_runs
ponder-parse export sample_runs/baseline,seed=0 --out tables --format parquet
"""

from __future__ import annotations

import argparse
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ponder-parse", description="Read ponder trainer logs into tables."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="one line per run")
    p.add_argument("paths", nargs="+", help="run folders, log files, or folders of runs")
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("export", help="write every table of each run")
    p.add_argument("paths", nargs="+")
    p.add_argument("--out", required=True, help="output folder (one subfolder per run if several)")
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.set_defaults(func=cmd_export)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
