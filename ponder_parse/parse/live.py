"""Following a log that is still being written.

`LiveLog.poll()` reads only the bytes appended since the last poll and parses only the
complete lines among them, so following a long run costs what was appended, not the file.
A line still being written, or a generation/stderr block still open, waits for its end.
The resulting `Run` equals what a full re-parse of the same bytes gives.

Appending is the only change that can be followed piece by piece. Anything else makes
the reader start over from the first byte: the file replaced (another inode), cut
(smaller than what was read), rewritten in place (the same size with a new mtime, or
different bytes at the start or just before the read offset, which catches a rewrite
that grew past the old offset between two polls), or a different log chosen for the run
folder (`find_log`, as the normal loader picks it). A compressed or UTF-16/32 log cannot
be tailed (a byte offset into it is not a line boundary): it is re-read whole whenever it
changes.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from ponder_parse import schema
from ponder_parse.files.loader import RunLoadError, attach_hparams, build_run, find_log, open_bytes
from ponder_parse.parse import encoding
from ponder_parse.parse import scan as logparse
from ponder_parse.run import Run, RunMeta

# Raw chunks are merged once there are this many, so finalizing stays one concat away.
MERGE_EVERY = 8
# The bytes kept to recognise the file on the next poll: its start, and what was read
# last (a rewrite almost always differs in one of them).
FINGERPRINT_BYTES = 4096


@dataclass(frozen=True)
class _Stamp:
    """What `stat` says about the file as it was read."""

    ident: tuple[int, int]  # device and inode: another file under the same name
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> _Stamp:
        return cls((st.st_dev, st.st_ino), st.st_size, st.st_mtime_ns)


class LiveLog:
    """Incremental reader for one run's log."""

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        p = Path(path)
        self.directory = p if p.is_dir() else None
        log = find_log(p) if self.directory is not None else p
        if log is None:
            raise FileNotFoundError(f"{p}: no trainer log here")
        self.log = log
        self.name = name or (p.name if self.directory is not None else log.stem)
        self._lock = threading.RLock()
        # How many times reading started over: with `offset`, what identifies the content
        # read (a same-size replacement leaves the offset as it was).
        self.generation = 0
        self.reset()

    def reset(self) -> None:
        """Start over (the file was replaced, truncated or rewritten)."""
        self.generation += 1
        self.offset = 0  # bytes consumed from the file
        self.partial = b""  # bytes after the last line end: a line still being written
        self.held = pl.DataFrame(schema={"text": pl.String})  # complete lines not yet decided
        self.state = logparse.ScanState()
        self.chunks: list[logparse.RawChunk] = []
        self.invalid_utf8 = False
        self.bytes_parsed = 0  # what the last poll actually parsed (for tests and benchmarks)
        self._stamp: _Stamp | None = None
        self._head = b""  # the file's first bytes, as read
        self._tail = b""  # the last bytes read, ending at `offset`
        self._cr = False  # lines end in `\r` alone (`encoding.cr_terminated`)
        # Decided on one `\r` ending the file so far: what follows can undo it (`\r\x00`
        # is one line to the full parse), so the next append decides again from the start.
        self._cr_tentative = False
        self._whole: tuple[dict[str, pl.DataFrame], RunMeta, list[str]] | None = None

    def poll(self) -> bool:
        """Read what was appended; returns whether anything new was parsed.

        Safe to call from several threads (an app serving several sessions shares one
        reader per log): polls and snapshots take turns.
        """
        with self._lock:
            return self._poll()

    def _poll(self) -> bool:
        if self.directory is not None:
            chosen = find_log(self.directory)
            if chosen is not None and chosen != self.log:
                self.log = chosen
                self.reset()
        try:
            fh = self.log.open("rb")
        except FileNotFoundError as exc:
            self.reset()
            raise RunLoadError(f"{self.log.name}: the log file is gone") from exc
        with fh:
            stamp = _Stamp.of(os.fstat(fh.fileno()))
            head = _pread(fh, 0, min(FINGERPRINT_BYTES, stamp.size))
            if self._stamp is not None and self._replaced(fh, stamp, head):
                self.reset()
            if _whole_file(self.log, head):
                if self._whole is None and self.offset:  # was followed as lines before
                    self.reset()
                return self._poll_whole(stamp)
            if self._whole is not None:  # was whole-file before: no longer
                self.reset()
            if stamp.size == self.offset:
                self._stamp = stamp
                self.bytes_parsed = 0
                return False
            new = _pread(fh, self.offset, stamp.size - self.offset)
        self._stamp = _Stamp(stamp.ident, self.offset + len(new), stamp.mtime_ns)
        if self._cr and (self._cr_tentative or b"\n" in new):
            # a `\n` after all, or a decision taken on a single `\r`: read it all again
            self.reset()
            return self._poll()
        self.offset += len(new)
        self._head = (self._head + new[: FINGERPRINT_BYTES - len(self._head)])[:FINGERPRINT_BYTES]
        self._tail = (self._tail + new)[-FINGERPRINT_BYTES:]
        data = self.partial + new
        if not self._cr and self.state.line_no == 0 and not self.held.height:
            # Nothing read as lines yet, so `data` is the whole file.
            self._cr = b"\n" not in data and encoding.cr_terminated(data)
            self._cr_tentative = self._cr and data.count(b"\r") < 2
        end = b"\r" if self._cr else b"\n"
        cut = data.rfind(end)
        if cut < 0:
            self.partial = data
            self.bytes_parsed = 0
            return False
        complete, self.partial = data[: cut + 1], data[cut + 1 :]
        self.bytes_parsed = len(complete)
        if self._cr:
            complete = complete.replace(b"\r", b"\n")
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

    def _replaced(self, fh: BinaryIO, stamp: _Stamp, head: bytes) -> bool:
        """Whether the file is no longer the one read so far, grown by appends."""
        old = self._stamp
        assert old is not None
        if stamp.ident != old.ident or stamp.size < self.offset:
            return True
        if stamp.size == old.size:
            return stamp.mtime_ns != old.mtime_ns  # rewritten in place, same length
        if self._whole is not None:
            return False  # read whole on any change anyway
        if head[: len(self._head)] != self._head:
            return True
        start = self.offset - len(self._tail)
        return _pread(fh, start, len(self._tail)) != self._tail

    def _poll_whole(self, stamp: _Stamp) -> bool:
        """A log that cannot be tailed, parsed whole when it has changed."""
        if self._whole is not None and stamp == self._stamp:
            self.bytes_parsed = 0
            return False
        data, note = open_bytes(self.log)
        tables, facts = logparse.parse_bytes(data)
        self._whole = (tables, facts, [note] if note else [])
        self._stamp = stamp
        self.offset = stamp.size
        self.bytes_parsed = len(data)
        return True

    def run(self) -> Run:
        """The run as read so far (held-back lines are parsed as they stand, not committed)."""
        with self._lock:
            return self._run()

    def _run(self) -> Run:
        notes: list[str] = []
        if self._whole is not None:
            tables, facts, notes = self._whole
            facts = facts.copy()
            facts["live"] = True
        else:
            tables, facts = self._tables()
        stats = (self.directory or self.log.parent) / "stats.json"
        run = build_run(
            tables, facts, name=self.name, source=self.log, stats_path=stats, extra_problems=notes
        )
        attach_hparams(run, self.directory)
        return run

    def _tables(self) -> tuple[dict[str, pl.DataFrame], RunMeta]:
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
        return tables, facts


def _pread(fh: BinaryIO, start: int, n: int) -> bytes:
    """`n` bytes from `start` (fewer at the end of the file)."""
    out = b""
    fd = fh.fileno()
    while len(out) < n:
        piece = os.pread(fd, n - len(out), start + len(out))
        if not piece:
            break
        out += piece
    return out


def _whole_file(log: Path, head: bytes) -> bool:
    """A compressed or wide-encoded log: read whole, as `load_run` reads it."""
    if log.suffix.lower() == ".gz" or head[:2] == b"\x1f\x8b":
        return True
    return encoding.sniff(head)[0] is not None


def _merge(chunks: list[logparse.RawChunk]) -> logparse.RawChunk:
    names = {n for c in chunks for n in c.tables}
    return logparse.RawChunk(
        {
            n: pl.concat([c.tables[n] for c in chunks if n in c.tables], how="vertical_relaxed")
            for n in names
        }
    )
