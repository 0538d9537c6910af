"""Following a log that is still being written.

`LiveLog.poll()` reads only the bytes appended since the last poll and parses only the
complete lines among them, so following a long run costs what was appended, not the file.
A line still being written, or a generation/stderr block still open, waits for its end.
The resulting `Run` equals what a full re-parse of the same bytes gives.
"""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl

from ponder_parse import schema
from ponder_parse.files.loader import attach_hparams, build_run, find_log
from ponder_parse.parse import scan as logparse
from ponder_parse.run import Run, RunMeta

# Raw chunks are merged once there are this many, so finalizing stays one concat away.
MERGE_EVERY = 8


class LiveLog:
    """Incremental reader for one run's log (a plain, uncompressed text file)."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        p = Path(path)
        log = find_log(p) if p.is_dir() else p
        if log is None:
            raise FileNotFoundError(f"{p}: no trainer log here")
        self.log = log
        self.directory = p if p.is_dir() else None
        self.name = name or (p.name if p.is_dir() else log.stem)
        self._lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Start over (the file was replaced or truncated)."""
        self.offset = 0  # bytes consumed from the file
        self.partial = b""  # bytes after the last newline: a line still being written
        self.held = pl.DataFrame(schema={"text": pl.String})  # complete lines not yet decided
        self.state = logparse.ScanState()
        self.chunks: list[logparse.RawChunk] = []
        self.invalid_utf8 = False
        self.bytes_parsed = 0  # what the last poll actually parsed (for tests and benchmarks)

    def poll(self) -> bool:
        """Read what was appended; returns whether anything new was parsed.

        Safe to call from several threads (an app serving several sessions shares one
        reader per log): polls and snapshots take turns.
        """
        with self._lock:
            return self._poll()

    def _poll(self) -> bool:
        size = self.log.stat().st_size
        if size < self.offset:
            self.reset()
        if size == self.offset:
            self.bytes_parsed = 0
            return False
        with self.log.open("rb") as fh:
            fh.seek(self.offset)
            new = fh.read(size - self.offset)
        self.offset += len(new)
        data = self.partial + new
        cut = data.rfind(b"\n")
        if cut < 0:
            self.partial = data
            self.bytes_parsed = 0
            return False
        complete, self.partial = data[: cut + 1], data[cut + 1 :]
        self.bytes_parsed = len(complete)
        lines, _, invalid = logparse.read_lines(complete)
        self.invalid_utf8 |= invalid
        lines = pl.concat([self.held, lines]) if self.held.height else lines
        chunk, self.state, consumed = logparse.scan_lines(lines, self.state, final=False)
        self.held = lines.slice(consumed)
        if chunk.tables:
            self.chunks.append(chunk)
        if len(self.chunks) >= MERGE_EVERY:
            self.chunks = [_merge(self.chunks)]
        return True

    def run(self) -> Run:
        """The run as read so far (held-back lines are parsed as they stand, not committed)."""
        with self._lock:
            return self._run()

    def _run(self) -> Run:
        chunks = list(self.chunks)
        state = self.state
        if self.held.height:
            tail, state, _ = logparse.scan_lines(self.held, state, final=True)
            chunks.append(tail)
        tables = logparse.finalize(chunks)
        n_lines = state.line_no + (1 if self.partial else 0)
        if self.partial:
            tables["problems"] = pl.concat(
                [
                    tables["problems"],
                    schema.conform(
                        pl.DataFrame(
                            {
                                "line_no": [state.line_no + 1],
                                "text": [
                                    self.partial.decode("utf-8", errors="replace")[
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
        facts = RunMeta(
            truncated=bool(self.partial),
            n_lines=n_lines,
            invalid_utf8=self.invalid_utf8,
            line_kinds=logparse.line_kinds(chunks),
            live=True,
        )
        stats = (self.directory or self.log.parent) / "stats.json"
        run = build_run(tables, facts, name=self.name, source=self.log, stats_path=stats)
        attach_hparams(run, self.directory)
        return run


def _merge(chunks: list[logparse.RawChunk]) -> logparse.RawChunk:
    names = {n for c in chunks for n in c.tables}
    return logparse.RawChunk(
        {
            n: pl.concat([c.tables[n] for c in chunks if n in c.tables], how="vertical_relaxed")
            for n in names
        }
    )
