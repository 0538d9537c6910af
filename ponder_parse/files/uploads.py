"""Uploaded files and archives -> run folders on disk, without trusting the uploads.

Researchers hand over runs the way they have them: a few loose log files, a log with its
`stats.json`, or a zip / tarball of a sweep's folders. `materialize_uploads` lays all of
that out as ordinary run folders under a directory the caller owns, so the normal loader
reads uploads exactly like folders on disk.

Archives come from anywhere, so extraction assumes hostile input:

- member names are checked, never joined blindly: `..`, absolute paths, drive letters,
  backslash-separated names and control characters are refused, and every target path
  is checked to resolve inside the archive's own folder;
- links, devices and FIFOs are refused (a link could point outside the folder, and a
  later member could then write through it);
- files are created exclusively (`xb`), so nothing is ever written through an existing
  path;
- sizes are counted on the bytes actually decompressed, never taken from headers: a
  member stops at `max_member_bytes`, the whole upload at `max_total_bytes`, and a
  member or archive that expands far beyond its compressed size (a zip bomb) stops at
  `max_ratio`;
- a log's cost is its lines (the parser's memory), which the ratio cannot see: a plain
  log member stops at `max_member_lines` (the loader's cap for this machine, see
  `limits`), counted while it streams;
- members that are not kept are never decompressed where the format allows it (zip);
  in a compressed tar, passing them means inflating them, so those bytes count against
  the archive's bomb ratio too;
- nested archives are not expanded, and only the kinds of files the loader reads (logs,
  JSON, YAML) are written at all: checkpoints next to a log are skipped, not unpacked.

Refusals are messages, never exceptions. A rule that concerns one member (a link, a bad
name, an oversized file) skips that member; a rule that concerns the whole archive (too
many members, total size, bomb ratio, damaged data) discards everything that archive
produced, so a half-extracted archive never shows up as a truncated run.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ponder_parse.files.discovery import (
    LOG_SUFFIXES,
    SNIFF_BYTES,
    content_is_log,
    find_run_dirs,
    gunzip_head,
    ignored_name,
)
from ponder_parse.files.hparams import CONFIG_FILE_NAMES
from ponder_parse.files.limits import LineCounter, log_limits, size_text

_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps on what one `materialize_uploads` call may write.

    `max_total_bytes` is shared by everything in the call (all archives and loose files),
    so many uploads cannot add up past it. The bomb ratio applies only once more than
    `ratio_floor_bytes` came out of an archive or member, so small, very repetitive text
    files are never mistaken for bombs; real training logs compress 5-20x.
    """

    max_members: int = 10_000
    max_total_bytes: int = 2 * 1024**3
    max_member_bytes: int = 1024**3
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 16 * 1024**2
    max_path_depth: int = 32
    max_member_lines: int = field(default_factory=lambda: log_limits().max_lines)


DEFAULT_LIMITS = ArchiveLimits()


@dataclass
class UploadResult:
    """The run folders created (in upload order) and a note for everything not used."""

    run_dirs: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


# --- what uploads keep -----------------------------------------------------------------

_ARCHIVE_SUFFIXES = (
    ".zip",
    ".tar",
    ".tar.gz",
    ".tgz",
    ".tar.bz2",
    ".tbz2",
    ".tbz",
    ".tar.xz",
    ".txz",
)
_NESTED_ARCHIVE_SUFFIXES = (*_ARCHIVE_SUFFIXES, ".7z", ".rar", ".tar.zst")
_KEPT_SUFFIXES = (*LOG_SUFFIXES, ".json", ".yaml", ".yml")
_STATS_NAME = re.compile(r"^(?P<prefix>.*?)stats(?:\s*\(\d+\))?\.json$", re.IGNORECASE)
_CONFIG_NAME = re.compile(
    r"^(?P<prefix>.*?)(?P<canon>"
    + "|".join(re.escape(n[: n.rindex(".")]) for n in dict.fromkeys(CONFIG_FILE_NAMES))
    + r")(?:\s*\(\d+\))?(?P<ext>\.json|\.ya?ml)$",
    re.IGNORECASE,
)


# --- safe names ---------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")


def _member_parts(raw: str, limits: ArchiveLimits) -> tuple[list[str], str | None]:
    """An archive member name as path components, or the rule it breaks."""
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        return [], "name holds control characters"
    name = raw.replace("\\", "/")
    if name.startswith("/"):
        return [], "absolute path"
    if _DRIVE.match(name):
        return [], "Windows drive path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return [], "path climbs out of the archive (..)"
    if not parts:
        return [], "empty name"
    if len(parts) > limits.max_path_depth:
        return [], f"path deeper than {limits.max_path_depth} folders"
    if any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        return [], "name too long"
    return parts, None


def safe_name(name: str, fallback: str = "upload") -> str:
    """An uploaded file's name, reduced to one harmless path component.

    Browsers send bare names, but nothing guarantees it: path parts are dropped, unsafe
    characters replaced, and leading dots removed (a dot-name would be a hidden file that
    the run finder ignores).
    """
    base = re.split(r"[/\\]", name)[-1].strip()
    base = _UNSAFE_CHARS.sub("_", base).lstrip(".").strip()
    if len(base.encode("utf-8", "surrogateescape")) > 200:
        base = base.encode("utf-8", "surrogateescape")[:200].decode("utf-8", "ignore")
    return base or fallback


def _strip_suffixes(name: str, suffixes: Iterable[str]) -> str:
    low = name.lower()
    for suffix in sorted(suffixes, key=len, reverse=True):
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _log_stem(name: str) -> str:
    return _strip_suffixes(name, (".txt.gz", ".log.gz", ".txt", ".log"))


# --- budget and extraction ----------------------------------------------------------------


class _Refused(Exception):
    """The whole archive is rejected; everything it produced is removed."""


class _SkipMember(Exception):
    """One member is rejected (the message says why); the rest of the archive goes on."""


@dataclass
class _Budget:
    limit: int
    used: int = 0


class _Extractor:
    """Writes one archive's members under `root`, enforcing every rule while streaming."""

    def __init__(
        self, label: str, root: Path, size: int, limits: ArchiveLimits, budget: _Budget
    ) -> None:
        self.label = label
        self.root = root
        self.real_root = root.resolve()
        self.size = size
        self.limits = limits
        self.budget = budget
        self.members = 0
        self.written = 0
        self.passed = 0  # bytes inflated only to pass members that are not kept
        self.skipped: dict[str, list[str]] = {}

    def skip(self, reason: str, name: str) -> None:
        self.skipped.setdefault(reason, []).append(name)

    def ratio_cap(self) -> float:
        return max(self.limits.ratio_floor_bytes, self.size * self.limits.max_ratio)

    def pass_over(self, raw: str, size: int) -> None:
        """Account for a member a compressed stream must inflate to get past."""
        self.passed += size
        if self.written + self.passed > self.ratio_cap():
            raise _Refused(
                f"expands more than {self.limits.max_ratio:g}x (a zip bomb?), "
                f"counting members that are not logs ({raw})"
            )

    def count_member(self) -> None:
        self.members += 1
        if self.members > self.limits.max_members:
            raise _Refused(f"more than {self.limits.max_members} members")

    def target(self, raw: str) -> Path | None:
        """Where a regular file member goes, or None (and a note) if it must not be written."""
        parts, problem = _member_parts(raw, self.limits)
        if problem:
            self.skip(f"refused ({problem})", raw)
            return None
        if any(ignored_name(p) for p in parts):
            self.skip("skipped hidden or macOS metadata entries", raw)
            return None
        low = parts[-1].lower()
        if low.endswith(_NESTED_ARCHIVE_SUFFIXES):
            self.skip("nested archives not expanded", raw)
            return None
        if not low.endswith(_KEPT_SUFFIXES):
            self.skip("skipped files that are not logs, JSON or YAML", raw)
            return None
        path = self.root.joinpath(*parts)
        try:
            inside = path.resolve().is_relative_to(self.real_root)
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            self.skip("refused (path resolves outside the archive folder)", raw)
            return None
        return path

    def copy(
        self,
        raw: str,
        path: Path,
        read: Callable[[int], bytes],
        compressed: int | None,
        expected: int | None,
    ) -> None:
        """Stream one member to `path`, counting real bytes against every cap."""
        lim = self.limits
        member_ratio_cap = (
            max(lim.ratio_floor_bytes, compressed * lim.max_ratio) if compressed else None
        )
        archive_ratio_cap = self.ratio_cap() - self.passed
        # Plain logs are parsed whole: their lines are what costs memory.
        lines = LineCounter() if raw.lower().endswith((".txt", ".log")) else None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            self.skip("skipped (a file and a folder share the name)", raw)
            return
        try:
            out = path.open("xb")
        except FileExistsError:
            self.skip("skipped duplicate entries (first one kept)", raw)
            return
        except OSError as exc:
            self.skip(f"skipped ({exc.strerror or 'cannot be written'})", raw)
            return
        kept = 0  # bytes of this member on disk so far
        try:
            with out:
                while chunk := read(_CHUNK):
                    if kept + len(chunk) > lim.max_member_bytes:
                        raise _SkipMember(
                            f"skipped (larger than {_size(lim.max_member_bytes)} per file)"
                        )
                    if lines is not None and lines.feed(chunk) > lim.max_member_lines:
                        raise _SkipMember(
                            f"skipped (more than {lim.max_member_lines:,} lines, more than "
                            "this machine can parse; see PONDER_MAX_LOG_LINES)"
                        )
                    if self.budget.used + len(chunk) > self.budget.limit:
                        raise _Refused(f"unpacks to more than {_size(self.budget.limit)} in total")
                    if member_ratio_cap is not None and kept + len(chunk) > member_ratio_cap:
                        raise _Refused(f"{raw} expands more than {lim.max_ratio:g}x (a zip bomb?)")
                    if self.written + len(chunk) > archive_ratio_cap:
                        raise _Refused(f"expands more than {lim.max_ratio:g}x (a zip bomb?)")
                    out.write(chunk)
                    kept += len(chunk)
                    self.written += len(chunk)
                    self.budget.used += len(chunk)
        except _SkipMember as why:
            path.unlink(missing_ok=True)
            self.written -= kept
            self.budget.used -= kept
            self.skip(str(why), raw)
            return
        if expected is not None and kept != expected:
            raise _Refused(f"{raw} is truncated ({kept} of {expected} bytes)")

    def messages(self) -> list[str]:
        out = []
        for reason, names in self.skipped.items():
            shown = ", ".join(names[:3]) + (f", … ({len(names)} in all)" if len(names) > 3 else "")
            out.append(f"{self.label}: {reason}: {shown}")
        return out


_size = size_text


def _extract_zip(data: bytes, ex: _Extractor) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = zf.infolist()
        if len(infos) > ex.limits.max_members:
            raise _Refused(f"more than {ex.limits.max_members} members")
        for info in infos:
            ex.count_member()
            mode = (info.external_attr >> 16) & 0xFFFF
            kind = stat.S_IFMT(mode)
            if info.is_dir() or kind == stat.S_IFDIR:
                continue
            if kind == stat.S_IFLNK:
                ex.skip("refused symbolic links", info.filename)
                continue
            if kind and kind != stat.S_IFREG:
                ex.skip("refused devices and other special files", info.filename)
                continue
            if info.flag_bits & 0x1:
                ex.skip("skipped encrypted entries", info.filename)
                continue
            path = ex.target(info.filename)
            if path is None:
                continue
            if info.file_size > ex.limits.max_member_bytes:
                ex.skip(
                    f"skipped (larger than {_size(ex.limits.max_member_bytes)} per file)",
                    info.filename,
                )
                continue
            try:
                src = zf.open(info)
            except NotImplementedError:
                ex.skip("skipped entries compressed with an unsupported method", info.filename)
                continue
            with src:
                ex.copy(info.filename, path, src.read, info.compress_size, None)


_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _extract_tar(data: bytes, ex: _Extractor) -> None:
    # A compressed tar is one stream: reaching the next header inflates every byte of
    # the member before it, kept or not.
    compressed = data.startswith(_COMPRESSED_MAGIC)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        while True:
            member = tf.next()
            if member is None:
                break
            ex.count_member()
            if not _extract_tar_member(tf, member, ex) and compressed and member.isreg():
                ex.pass_over(member.name, member.size)


def _extract_tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo, ex: _Extractor) -> bool:
    """Write one member if it is kept; whether its data was read."""
    if member.issym():
        ex.skip("refused symbolic links", member.name)
        return False
    if member.islnk():
        ex.skip("refused hard links", member.name)
        return False
    if member.isdir():
        return False
    if not member.isreg():
        ex.skip("refused devices and other special files", member.name)
        return False
    path = ex.target(member.name)
    if path is None:
        return False
    if member.size > ex.limits.max_member_bytes:
        ex.skip(f"skipped (larger than {_size(ex.limits.max_member_bytes)} per file)", member.name)
        return False
    src = tf.extractfile(member)
    if src is None:
        return False
    with src:
        ex.copy(member.name, path, src.read, None, member.size)
    return True


def _archive_kind(name: str) -> str | None:
    low = name.lower()
    if low.endswith(".zip"):
        return "zip"
    if low.endswith(_ARCHIVE_SUFFIXES):
        return "tar"
    return None


def content_tag(data: bytes) -> str:
    """A short tag for an upload's content (6 hex digits of its SHA-256): what tells
    apart two uploads of the same name, the same way every time they are uploaded."""
    return hashlib.sha256(data).hexdigest()[:6]


def _unique_dir(dest: Path, wanted: str, taken: set[str]) -> Path:
    """A new folder under `dest` named `wanted`, or `wanted (2)`, `wanted (3)`, ...

    Never `wanted-2`: a run's name is read for hyperparameters, and `-2` after a word
    reads as a setting (`adaptive-2`)."""
    n = 1
    name = wanted
    while name.lower() in taken or (dest / name).exists():
        n += 1
        name = f"{wanted} ({n})"
    taken.add(name.lower())
    path = dest / name
    path.mkdir()
    return path


def _extract_archive(
    name: str,
    data: bytes,
    dest: Path,
    taken: set[str],
    limits: ArchiveLimits,
    budget: _Budget,
    messages: list[str],
) -> list[Path]:
    kind = _archive_kind(name)
    folder = safe_name(_strip_suffixes(name, _ARCHIVE_SUFFIXES), fallback="archive")
    try:
        root = _unique_dir(dest, folder, taken)
    except OSError as exc:
        messages.append(f"{name}: could not be unpacked ({exc.strerror or exc})")
        return []
    ex = _Extractor(name, root, len(data), limits, budget)
    try:
        if kind == "zip":
            _extract_zip(data, ex)
        else:
            _extract_tar(data, ex)
    except _Refused as exc:
        _discard(root, ex, budget)
        messages.append(f"{name}: refused, {exc}; nothing from it was loaded")
        return []
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        _discard(root, ex, budget)
        messages.append(
            f"{name}: not a readable archive ({_reason(exc)}); nothing from it was loaded"
        )
        return []
    except Exception as exc:  # noqa: BLE001 - an upload must never crash the app
        _discard(root, ex, budget)
        messages.append(
            f"{name}: could not be unpacked ({_reason(exc)}); nothing from it was loaded"
        )
        return []
    messages.extend(ex.messages())
    runs = find_run_dirs(root)
    if not runs:
        messages.append(
            f"{name}: no training log inside (expected log_*.txt, *.log, or .txt with STEP lines)"
        )
        shutil.rmtree(root, ignore_errors=True)
    return runs


def _reason(exc: BaseException) -> str:
    """The exception as one short line a user can act on."""
    if isinstance(exc, EOFError):
        return "it ends early: an incomplete upload or copy?"
    if isinstance(exc, tarfile.ReadError) and "could not be opened" in str(exc):
        return "not a tar, tar.gz, tar.bz2 or tar.xz file"
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _discard(root: Path, ex: _Extractor, budget: _Budget) -> None:
    # Safe to delete recursively: extraction never creates links, so everything under
    # `root` is ours.
    shutil.rmtree(root, ignore_errors=True)
    budget.used -= ex.written


# --- loose files --------------------------------------------------------------------------


def _match_key(text: str) -> str:
    """What two related upload names share: `log_seed1.txt` and `seed1_stats.json` both
    give `seed1`."""
    key = re.sub(r"\s*\(\d+\)$", "", text.lower().strip())
    key = re.sub(r"^log[_\-.]", "", key)
    return key.strip("._- ")


@dataclass
class _Sidecar:
    upload_name: str
    canonical: str
    key: str
    data: bytes


def _sidecar(name: str, data: bytes) -> _Sidecar | None:
    m = _STATS_NAME.match(name)
    if m:
        return _Sidecar(name, "stats.json", _match_key(m.group("prefix")), data)
    m = _CONFIG_NAME.match(name)
    if m:
        canon = f"{m.group('canon').lower()}{m.group('ext').lower()}"
        if canon not in CONFIG_FILE_NAMES:
            return None
        return _Sidecar(name, canon, _match_key(m.group("prefix")), data)
    return None


def _pair(side: _Sidecar, logs: dict[Path, str]) -> Path | None:
    """The run folder a loose `stats.json` / config belongs to, by shared name prefix.

    One name must be a prefix of the other (after dropping `log_` and the sidecar's own
    name), and the longest such match must be unique: otherwise it is left unassigned
    rather than attached to the wrong run.
    """
    if not side.key:
        return None
    scored: list[tuple[int, Path]] = []
    for folder, key in logs.items():
        if key and (key.startswith(side.key) or side.key.startswith(key)):
            scored.append((min(len(key), len(side.key)), folder))
    if not scored:
        return None
    best = max(s for s, _ in scored)
    winners = [f for s, f in scored if s == best]
    return winners[0] if len(winners) == 1 else None


def _write_loose(
    name: str, data: bytes, path: Path, limits: ArchiveLimits, budget: _Budget
) -> str | None:
    if len(data) > limits.max_member_bytes:
        return f"{name}: refused, larger than {_size(limits.max_member_bytes)} per file"
    if (
        path.name.lower().endswith((".txt", ".log"))
        and len(data) > limits.max_member_lines
        and LineCounter().feed(data) > limits.max_member_lines
    ):
        return (
            f"{name}: refused, more than {limits.max_member_lines:,} lines, more than this "
            "machine can parse (see PONDER_MAX_LOG_LINES)"
        )
    if budget.used + len(data) > budget.limit:
        return f"{name}: refused, the uploads add up to more than {_size(budget.limit)}"
    try:
        with path.open("xb") as out:
            out.write(data)
    except OSError as exc:
        return f"{name}: could not be written ({exc.strerror or exc})"
    budget.used += len(data)
    return None


def materialize_uploads(
    files: Iterable[tuple[str, bytes]],
    dest: Path,
    limits: ArchiveLimits | None = None,
) -> UploadResult:
    """Write uploaded files under `dest` as run folders the loader can read.

    - an archive (`.zip`, `.tar`, `.tar.gz`/`.tgz`, also `.tar.bz2`/`.tar.xz`) is extracted
      safely into its own folder (named after the archive) and contributes every run
      folder found inside it;
    - each loose log file becomes its own run folder, named by the file's stem; logs that
      share a name get a short tag of their content after it (`log_kronecker_adaptive
      #3f9a2c`), so each reads distinctly and keeps its name when uploaded again;
    - a loose `stats.json` or config file (`config.json`, `config.yaml`, ...; also
      `<prefix>_stats.json` / `<prefix>_config.yaml`) goes, under its canonical name, into
      the folder of the only loose log, or with several logs into the one whose name it
      shares a prefix with; otherwise it is reported as unassigned;
    - anything else is reported as skipped.

    Returns the run folders (upload order; an archive's runs in natural order) and
    messages. Never raises on bad uploads; `dest` is created if needed and nothing is
    written outside it.
    """
    dest = Path(dest)
    limits = limits or ArchiveLimits()
    result = UploadResult()
    budget = _Budget(limits.max_total_bytes)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        taken = {p.name.lower() for p in dest.iterdir()}
    except OSError as exc:
        result.messages.append(f"the upload folder cannot be used ({exc.strerror or exc})")
        return result

    files = [(n, bytes(d)) for n, d in files]
    stems = [
        safe_name(_log_stem(safe_name(n)), fallback="run").lower()
        for n, _ in files
        if not _archive_kind(safe_name(n))
    ]
    shared = {stem for stem in stems if stems.count(stem) > 1}
    # Sidecars wait until the end: they can only be paired once every loose log is known.
    slots: list[list[Path]] = []
    logs: dict[Path, str] = {}
    sidecars: list[_Sidecar] = []
    for raw_name, raw_data in files:
        data = bytes(raw_data)
        name = safe_name(raw_name)
        if _archive_kind(name):
            runs = _extract_archive(raw_name, data, dest, taken, limits, budget, result.messages)
            slots.append(runs)
            continue
        side = _sidecar(name, data)
        if side is not None:
            sidecars.append(side)
            continue
        low = name.lower()

        def head(d: bytes = data, gz: bool = low.endswith(".gz")) -> bytes:
            return gunzip_head(d) if gz else d[:SNIFF_BYTES]

        if not content_is_log(name, head):
            why = (
                "a text file without trainer STEP lines"
                if low.endswith((".txt", ".txt.gz"))
                else "not a training log, stats.json, config file or archive"
            )
            result.messages.append(f"{raw_name}: skipped, {why}")
            continue
        wanted = safe_name(_log_stem(name), fallback="run")
        if wanted.lower() in shared:
            wanted = f"{wanted} #{content_tag(data)}"
        try:
            folder = _unique_dir(dest, wanted, taken)
        except OSError as exc:
            result.messages.append(f"{raw_name}: could not be written ({exc.strerror or exc})")
            continue
        if folder.name != safe_name(_log_stem(name), fallback="run"):
            result.messages.append(
                f"{raw_name}: another upload has the same name; loaded as {folder.name}"
            )
        problem = _write_loose(raw_name, data, folder / name, limits, budget)
        if problem:
            result.messages.append(problem)
            shutil.rmtree(folder, ignore_errors=True)
            continue
        logs[folder] = _match_key(_log_stem(name))
        slots.append([folder])

    for side in sidecars:
        if len(logs) == 1:
            target: Path | None = next(iter(logs))
        else:
            target = _pair(side, logs)
        if target is None:
            where = (
                "no log file was uploaded with it"
                if not logs
                else "cannot tell which uploaded log it belongs to (name it like the log, "
                "e.g. <log name>_stats.json, or upload the run folder as an archive)"
            )
            result.messages.append(f"{side.upload_name}: unassigned, {where}")
            continue
        if (target / side.canonical).exists():
            result.messages.append(
                f"{side.upload_name}: unassigned, {target.name} already has a {side.canonical}"
            )
            continue
        problem = _write_loose(side.upload_name, side.data, target / side.canonical, limits, budget)
        if problem:
            result.messages.append(problem)

    result.run_dirs = [p for slot in slots for p in slot]
    return result
