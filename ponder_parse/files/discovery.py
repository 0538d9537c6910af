"""Which files are trainer logs and which folders are runs.

A log is recognised by its name (`log_*.txt`, `*.log`, either `.gz`) or, for a `.txt`, by a
line in its first 64 KiB that only the trainer prints. The loader, the upload unpacker and
the live follower all ask here, so they agree on what a run is.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ponder_parse.parse import encoding

SNIFF_BYTES = 64 * 1024
FIND_MAX_DEPTH = 6
# Every suffix a log file may have; `.gz` logs are decompressed whole, never followed live.
LOG_SUFFIXES = (".txt", ".log", ".txt.gz", ".log.gz")

_LOG_NAME = re.compile(r"^(?:log_.+\.txt|.+\.log)(?:\.gz)?$", re.IGNORECASE)
_LOG_LINE = re.compile(rb"^(?:\xef\xbb\xbf)?(?:(?:\[AUDIT\] )?STEP: |INIT \| PARAMS: )", re.M)


def head_has_log_line(head: bytes) -> bool:
    """Whether the start of a file holds a line only the trainer prints.

    `INIT | PARAMS:` counts too, so a run that has only just started is still a run. A
    head in a wide encoding (a log re-encoded as UTF-16/32 on the way) is decoded first.
    """
    head = encoding.head_as_utf8(head)
    return _LOG_LINE.search(head.replace(b"\r", b"\n")) is not None


def is_log_name(name: str) -> bool:
    """Named like a log whatever its content: `log_*.txt`, `*.log`, either `.gz`."""
    return not name.startswith(".") and _LOG_NAME.match(name) is not None


def gunzip_head(data: bytes | IO[bytes]) -> bytes:
    """The first `SNIFF_BYTES` of a gzip stream: bounded, so a gzip bomb costs nothing."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data) if isinstance(data, bytes) else data) as g:
            return g.read(SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        return b""


def content_is_log(name: str, head: Callable[[], bytes]) -> bool:
    """A log by name, or a `.txt` whose head (read only if needed) holds a trainer line."""
    low = name.lower()
    if name.startswith("."):
        return False
    if is_log_name(name):
        return True
    if low.endswith((".txt", ".txt.gz")):
        return head_has_log_line(head())
    return False


def is_log_file(path: Path) -> bool:
    """Whether `path` is a trainer log: named like one, or a `.txt` (or `.txt.gz`) whose
    first 64 KiB hold a `STEP: ` / `[AUDIT] STEP: ` (or `INIT | PARAMS: `) line.

    Dotfiles are never logs (macOS `._log_x.txt` resource forks look like one by name).
    """

    def head() -> bytes:
        try:
            with path.open("rb") as f:
                if path.name.lower().endswith(".gz"):
                    return gunzip_head(f)
                return f.read(SNIFF_BYTES)
        except OSError:
            return b""

    try:
        if not path.is_file():
            return False
    except OSError:
        return False
    return content_is_log(path.name, head)


def ignored_name(name: str) -> bool:
    """Dotfiles and macOS archive debris are never runs or logs."""
    return name.startswith(".") or name == "__MACOSX"


def _natural_key(path: Path) -> tuple[tuple[int, str, int], ...]:
    """`seed2` before `seed10`: sorted the way a person reads run names."""
    out: list[tuple[int, str, int]] = []
    for piece in re.split(r"(\d+)", str(path)):
        if piece.isdigit():
            out.append((1, "", int(piece)))
        elif piece:
            out.append((0, piece.lower(), 0))
    return tuple(out)


@dataclass
class Walk:
    """What a search for run folders looked at, so a caller can tell later, with a `stat`
    each, whether searching again could find anything else: the folders it listed (a new
    entry changes a folder's mtime) and the `.txt` files it read and found not to be logs
    yet (a run that has just started writes its first step line later). Folders it could
    not read, and text files it could not open to tell whether they are logs, are in
    `errors`, with the reason."""

    folders: list[Path] = field(default_factory=list)
    sniffed: list[Path] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)

    def deny(self, folder: Path, exc: OSError) -> None:
        if all(folder != f for f, _ in self.errors):
            self.errors.append((folder, f"cannot be read ({exc.strerror or type(exc).__name__})"))


def find_run_dirs(
    root: Path, max_depth: int = FIND_MAX_DEPTH, walk: Walk | None = None
) -> list[Path]:
    """Run folders under `root`: a folder holding a log is a run (its subfolders are not
    searched further); a folder of run folders expands to each of them.

    Searches `max_depth` levels below `root`, skips `__MACOSX` and dotfiles, visits each
    real folder once (symlinked folders are followed, cycles are not), and returns the
    runs in natural order (`seed2` before `seed10`). A log file given as `root` stands for
    its folder. A folder that cannot be listed, or whose entries cannot be looked at, is
    passed over; given a `walk`, it is recorded there (with what else was looked at).
    """
    root = Path(root)
    walk = walk if walk is not None else Walk()
    try:
        if root.is_file():
            return [root.parent] if is_log_file(root) else []
        if not root.is_dir():
            return []
    except OSError as exc:
        walk.deny(root, exc)
        return []
    found: list[Path] = []
    seen: set[Path] = set()

    def visit(folder: Path, depth: int) -> None:
        try:
            real = folder.resolve()
            if real in seen:
                return
            seen.add(real)
            entries = [e for e in folder.iterdir() if not ignored_name(e.name)]
        except OSError as exc:
            walk.deny(folder, exc)
            return
        walk.folders.append(folder)
        dirs: list[Path] = []
        files: list[Path] = []
        for entry in entries:
            try:
                (dirs if entry.is_dir() else files).append(entry)
            except OSError as exc:  # listed but not enterable: its entries cannot be looked at
                walk.deny(folder, exc)
        if any(is_log_file(e) for e in files):
            found.append(folder)
            return
        texts = [e for e in files if e.name.lower().endswith((".txt", ".txt.gz"))]
        for e in texts:
            try:  # a text file that could be a log but cannot be read is said, not skipped
                e.open("rb").close()
            except OSError as exc:
                walk.deny(e, exc)
        walk.sniffed.extend(texts)
        if depth >= max_depth:
            return
        for entry in dirs:
            visit(entry, depth + 1)

    visit(root, 0)
    walk.errors.sort(key=lambda e: _natural_key(e[0]))
    return sorted(found, key=_natural_key)
