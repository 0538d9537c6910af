"""Where a run store keeps its files, and how it writes them so nothing is ever seen half-done.

The layout is plain Hive partitioning (`TABLE/run_id=ID/part-N.parquet`), so DuckDB,
Polars and Spark read any table with no code of ours. Folders whose names start with `_`
(locks) are skipped by those engines, as Hive readers skip `_`- and `.`-prefixed names.

Every file is written to a temporary file in the store's `_tmp` folder (the same
filesystem, and outside the table folders, which engines list), flushed to disk, and
renamed over its target (`os.replace` is atomic within a filesystem), so a reader sees the
old file or the new one, never a mix; a crash leaves at most a file in `_tmp`.

The part files of one version are written as a batch (`atomic_write_parquets`): all of
them to `_tmp` first, then all renamed into place; the row that names them (the commit
record, see `ingest`) is written after them. What reaches the disk when:

- A writer that is killed or fails at any point leaves the previous version whole: what a
  process wrote stays in the kernel's cache after it dies, and a rename is atomic.
- The row is flushed to disk (file and folder) before an ingest returns, so a committed
  version survives a power loss or an operating-system crash.
- Its parts are flushed too only with `sync=True` (`ponder-parse ingest --fsync`): each
  is then on disk under its final name before the row is written. Without it (the
  default: a store is a cache of what the logs say), a power loss can leave a row whose
  parts did not all reach the disk. The row records each part's size, and the next ingest
  of that run checks them (a `stat`, as for an unchanged run) and parses the run again;
  until then, reading that run fails with an error about its files. A part left at its
  full size with its bytes zeroed (some filesystems can leave that) is not caught by its
  size; `sync=True` rules it out.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import polars as pl

from ponder_parse import schema

STORE_FORMAT = 1
MARKER = "_ponder_store.json"
RUNS = "runs"
# The run tables a store holds, each partitioned by run: the `Run`'s tables.
RUN_TABLES: tuple[str, ...] = (*schema.TABLES, "snapshot_layers")
ROW_GROUP_ROWS = 16_384  # small enough for step-range pushdown to skip row groups
TMP_DIR = "_tmp"


class StoreError(Exception):
    """A folder that is not a run store, or a store that cannot be written."""


class StoreLockedError(StoreError):
    """Another writer holds a run's lock for longer than we are willing to wait."""


STORE_ENV = "PONDER_STORE"


def default_store_dir() -> Path:
    """`$PONDER_STORE`, else the per-user cache (`$XDG_CACHE_HOME`, else `~/.cache`): a
    store is a cache of what the logs say, so it can always be rebuilt from them."""
    given = os.environ.get(STORE_ENV, "").strip()
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ponder-parse" / "store"


def run_id_for(path: Path) -> str:
    """A run's id: stable for its absolute path, so re-ingesting updates the same run.

    The leading letter keeps engines that infer partition types (Spark, DuckDB) from
    reading an all-digit id as a number.
    """
    digest = hashlib.blake2b(str(path).encode("utf-8", "surrogatepass"), digest_size=8)
    return "r" + digest.hexdigest()


def partition_dir(root: Path, table: str, run_id: str) -> Path:
    return root / table / f"run_id={run_id}"


def part_path(root: Path, table: str, run_id: str, part: int) -> Path:
    return partition_dir(root, table, run_id) / f"part-{part}.parquet"


def runs_row_path(root: Path, run_id: str) -> Path:
    """The run's row in the `runs` table: also its commit record (see `ingest`)."""
    return partition_dir(root, RUNS, run_id) / "part-0.parquet"


def lock_path(root: Path, run_id: str) -> Path:
    return root / "_locks" / f"{run_id}.lock"


def ensure_store(root: Path) -> None:
    """Create the store folder and its marker (what tells a store from any folder)."""
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    if marker.exists():
        check_store(root)
        return
    # Written whole under a private name, then renamed into place: a second writer
    # creating the same store at the same moment reads either no marker or a complete one
    # (both write the same bytes, so whichever rename lands last changes nothing).
    tmp = root / f".{MARKER}.{secrets.token_hex(8)}"
    try:
        with tmp.open("wb") as fh:
            fh.write(json.dumps({"format": STORE_FORMAT}).encode())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, marker)
    finally:
        remove_quietly(tmp)
    _fsync_dir(root)


def check_store(root: Path) -> None:
    marker = root / MARKER
    try:
        info = json.loads(marker.read_text())
    except FileNotFoundError as exc:
        raise StoreError(f"{root}: not a run store (no {MARKER})") from exc
    except (OSError, ValueError) as exc:
        raise StoreError(f"{root}: unreadable store marker ({exc})") from exc
    if info.get("format") != STORE_FORMAT:
        raise StoreError(
            f"{root}: store format {info.get('format')!r}, this version reads {STORE_FORMAT}"
        )


def write_parquet(df: pl.DataFrame, fh: IO[bytes]) -> None:
    """The one place Parquet is written (tests make it fail to simulate a crash)."""
    df.write_parquet(fh, statistics=True, row_group_size=ROW_GROUP_ROWS)


def tmp_dir(root: Path) -> Path:
    return root / TMP_DIR


def atomic_write_parquet(df: pl.DataFrame, path: Path, root: Path, run_id: str) -> None:
    """Write `path` so that readers see the previous file or the complete new one, and
    flush it (and its rename) to disk."""
    atomic_write_parquets([(df, path)], root, run_id, sync=True)


def atomic_write_parquets(
    items: Sequence[tuple[pl.DataFrame, Path]], root: Path, run_id: str, *, sync: bool
) -> None:
    """Write every `(frame, path)` so that readers see each previous file or the complete
    new one; with `sync`, every file is flushed before any is renamed, and every folder
    once after the renames (batched: the filesystem can commit them together). On any
    failure no target has been replaced by a partial file and every temporary file is
    removed; targets already renamed into place stay (the caller removes them: they are
    fresh names no committed version refers to)."""
    if not items:
        return
    scratch = tmp_dir(root)
    scratch.mkdir(exist_ok=True)
    tmps: list[Path] = []
    try:
        with contextlib.ExitStack() as files:
            handles: list[IO[bytes]] = []
            for df, _ in items:
                tmp = scratch / f"{run_id}.{os.getpid()}.{secrets.token_hex(6)}.parquet"
                tmps.append(tmp)
                out: IO[bytes] = files.enter_context(open(tmp, "wb"))
                write_parquet(df, out)
                out.flush()
                handles.append(out)
            if sync:
                for fh in handles:
                    os.fsync(fh.fileno())
        folders: dict[Path, None] = {}
        for tmp, (_, path) in zip(tmps, items, strict=True):
            if path.parent not in folders:
                path.parent.mkdir(parents=True, exist_ok=True)
                folders[path.parent] = None
            os.replace(tmp, path)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    if sync:
        for folder in folders:
            _fsync_dir(folder)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """One writer per run at a time, across threads, processes and machines.

    The lock is a file created with `O_CREAT | O_EXCL` (atomic on local and network
    filesystems), holding who took it. A lock left by a writer that died is taken over:
    on the same host when its process is gone, elsewhere once it is older than
    `stale_after` seconds.
    """

    def __init__(self, path: Path, timeout: float = 600.0, stale_after: float = 3600.0) -> None:
        self.path = path
        self.timeout = timeout
        self.stale_after = stale_after
        self.token = secrets.token_hex(8)
        self.host = socket.gethostname()

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._break_if_stale():
                    continue
                if time.monotonic() > deadline:
                    raise StoreLockedError(
                        f"run is locked by another writer ({self._holder_text()}); "
                        f"remove {self.path} if that writer is gone"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.25)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(
                    {"token": self.token, "host": self.host, "pid": os.getpid(), "t": time.time()},
                    fh,
                )
            return self

    def __exit__(self, *exc: object) -> None:
        holder = self._holder()
        if holder is not None and holder.get("token") == self.token:
            remove_quietly(self.path)

    def _holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _holder_text(self) -> str:
        h = self._holder() or {}
        return f"host {h.get('host', '?')}, pid {h.get('pid', '?')}"

    def _break_if_stale(self) -> bool:
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True  # released meanwhile: try again at once
        holder = self._holder()
        if holder is None:
            # Created but not yet written, or cut short by a crash: only old ones are stale.
            stale = age > 10.0
        elif holder.get("host") == self.host and isinstance(holder.get("pid"), int):
            stale = not _pid_alive(holder["pid"])
        else:
            stale = age > self.stale_after
        if not stale:
            return False
        # Move the stale lock aside, then make sure it was the one judged stale: another
        # waiter may have broken it and taken a fresh lock in between.
        aside = self.path.with_name(f"{self.path.name}.stale-{self.token}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True
        try:
            moved = json.loads(aside.read_text())
        except (OSError, ValueError):
            moved = None
        if holder is not None and moved is not None and moved.get("token") != holder.get("token"):
            with contextlib.suppress(OSError):
                os.link(aside, self.path)  # put a live lock back (fails if retaken)
        remove_quietly(aside)
        return True


@contextlib.contextmanager
def run_lock(root: Path, run_id: str, timeout: float = 600.0) -> Iterator[RunLock]:
    with RunLock(lock_path(root, run_id), timeout=timeout) as lock:
        yield lock


def leftover_files(root: Path, run_id: str, keep: set[Path]) -> list[Path]:
    """Files in a run's partitions that no committed version names: parts of a writer
    that died between writing them and committing, and old temporary files."""
    out: list[Path] = []
    for table in RUN_TABLES:
        d = partition_dir(root, table, run_id)
        try:
            entries = list(d.iterdir())
        except FileNotFoundError:
            continue
        out.extend(p for p in entries if p.is_file() and p not in keep)
    with contextlib.suppress(FileNotFoundError):
        out.extend(p for p in tmp_dir(root).iterdir() if p.name.startswith(f"{run_id}."))
    return out
