"""How much of one input the loader may read, sized to the machine it runs on.

A log's cost is its lines, not its bytes: the parser holds about `BYTES_PER_LINE` bytes
of memory per line, so a few kilobytes of gzipped newlines could otherwise ask for
gigabytes. Each log may use `MEMORY_FRACTION` of the machine's memory (its RAM, or the
container's limit when lower): that gives a cap on lines and one on decompressed bytes,
both checked while the bytes are read or decompressed, before the parser allocates
anything. `PONDER_MAX_LOG_LINES` and `PONDER_MAX_LOG_BYTES` override them (a number,
optionally with a K/M/G suffix).

Side files (`stats.json`, config files) are small by nature; they are read only from
regular files below a size cap, so a FIFO cannot hang a load and a link to a device
cannot stream forever.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

BYTES_PER_LINE = 110  # the parser's memory per line, measured on blank and real lines
MEMORY_FRACTION = 1 / 8  # of the machine's memory, per log
MAX_LOG_BYTES_CEILING = 4 * 2**30  # decompressed; a 10 000-step log is about 6 MB
MAX_SNAPSHOT_BYTES = 16 * 2**20  # stats.json: a few KiB per layer
FALLBACK_MEMORY = 8 * 2**30  # when the machine does not say
CHUNK = 2**20

ENV_MAX_LINES = "PONDER_MAX_LOG_LINES"
ENV_MAX_BYTES = "PONDER_MAX_LOG_BYTES"
_SIZE = re.compile(r"^\s*(\d+)\s*([kKmMgGtT]?)i?[bB]?\s*$")
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class InputTooLarge(Exception):
    """An input larger than the machine can be asked to hold; the message says which cap
    and how to raise it."""


class NotARegularFile(Exception):
    """A path that is a FIFO, a device, a socket or a folder where a file was expected."""


@dataclass(frozen=True)
class LogLimits:
    max_lines: int
    max_bytes: int

    def too_many_lines(self, what: str) -> InputTooLarge:
        return InputTooLarge(
            f"{what} has more than {self.max_lines:,} lines, more than this machine can "
            f"hold while parsing (about {BYTES_PER_LINE} bytes a line); set {ENV_MAX_LINES} "
            "to raise the cap"
        )

    def too_many_bytes(self, what: str) -> InputTooLarge:
        return InputTooLarge(
            f"{what} is larger than {size_text(self.max_bytes)} (decompressed); set "
            f"{ENV_MAX_BYTES} to raise the cap"
        )


def size_text(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} GiB"


def machine_memory() -> int:
    """Physical memory, or the cgroup's memory limit when it is lower (a container)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = FALLBACK_MEMORY
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and 0 < int(raw) < total:
            total = int(raw)
    return total if total > 0 else FALLBACK_MEMORY


def _env_size(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if not raw:
        return None
    m = _SIZE.match(raw)
    if m is None or int(m.group(1)) <= 0:
        logger.warning("%s=%r is not a positive number: using the default", name, raw)
        return None
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


def log_limits(env: Mapping[str, str] | None = None) -> LogLimits:
    """The caps for one log on this machine (environment overrides applied)."""
    env = os.environ if env is None else env
    budget = int(machine_memory() * MEMORY_FRACTION)
    lines = _env_size(env, ENV_MAX_LINES) or max(1, budget // BYTES_PER_LINE)
    size = _env_size(env, ENV_MAX_BYTES) or min(budget, MAX_LOG_BYTES_CEILING)
    return LogLimits(max_lines=lines, max_bytes=size)


class LineCounter:
    """Counts lines the way the parser splits them (LF, CRLF and lone CR all end one),
    fed chunk by chunk, so a cap can stop a stream as soon as it is crossed."""

    def __init__(self) -> None:
        self.lines = 0
        self._cr_pending = False  # the last chunk ended in CR: a LF next is the same break

    def feed(self, chunk: bytes) -> int:
        if not chunk:
            return self.lines
        breaks = chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
        if self._cr_pending and chunk[:1] == b"\n":
            breaks -= 1
        self._cr_pending = chunk[-1:] == b"\r"
        self.lines += breaks
        return self.lines


def check_log_bytes(data: bytes, limits: LogLimits, what: str) -> None:
    """Refuse a log already in memory that is too large to parse."""
    if len(data) > limits.max_bytes:
        raise limits.too_many_bytes(what)
    if len(data) > limits.max_lines and LineCounter().feed(data) > limits.max_lines:
        raise limits.too_many_lines(what)


def check_plain_log(path: Path, limits: LogLimits, what: str) -> None:
    """Refuse a plain log too large for the caps before anything is parsed.

    The size is a free bound on the lines; only a file that could hold more lines than
    the cap is read through once to count them.
    """
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise limits.too_many_bytes(what)
    if size + 1 <= limits.max_lines:
        return
    counter = LineCounter()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            if counter.feed(chunk) + 1 > limits.max_lines:
                raise limits.too_many_lines(what)


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """A small file's bytes, only if it is a regular file (a link to one is fine) of at
    most `max_bytes`.

    Checked with `stat` before opening (a device is never opened) and again on the open
    descriptor (the path may have been swapped in between); opened non-blocking, so even
    a FIFO slipped in at that moment cannot hang the read.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotARegularFile("not a regular file")
    if st.st_size > max_bytes:
        raise InputTooLarge(f"larger than {size_text(max_bytes)}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile("not a regular file")
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise InputTooLarge(f"larger than {size_text(max_bytes)}")
    return data
