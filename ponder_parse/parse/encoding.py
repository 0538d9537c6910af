"""Which encoding and line ends a log uses, and turning a wide-encoded log into UTF-8.

The trainer writes UTF-8, but a log can pass through tools that re-encode it: Windows
PowerShell's `Tee-Object` and `>` write UTF-16 with a byte-order mark, some editors save
UTF-16 or UTF-32 without one, and an old Mac tool ends lines with `\\r` alone. Read as
UTF-8 such a file gives no step at all and a problem per line with no hint why, so the
encoding is recognised here (by its byte-order mark, or by the NUL bytes that ASCII text
has in a wide encoding) and the log decoded before it is parsed.

Decoding goes through an incremental decoder in bounded pieces, so a wide log costs its
UTF-8 text plus one piece, never a second full copy as a Python string.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path

SNIFF_BYTES = 4096
DECODE_PIECE = 1 << 20

# Longest first: UTF-32LE's mark starts with UTF-16LE's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_UNIT = {"utf-32-le": 4, "utf-32-be": 4, "utf-16-le": 2, "utf-16-be": 2}
NAMES = {
    "utf-32-le": "UTF-32LE",
    "utf-32-be": "UTF-32BE",
    "utf-16-le": "UTF-16LE",
    "utf-16-be": "UTF-16BE",
}
# C0 controls a text log can hold: tab, line ends, backspace, form feed, ANSI escapes.
_TEXT_CONTROLS = frozenset("\t\n\r\b\f\x1b")


def head_as_utf8(head: bytes) -> bytes:
    """The first bytes of a file as UTF-8, for sniffing its content: decoded when they are
    in a wide encoding (cut to whole code units), as they are otherwise."""
    codec, skip = sniff(head)
    if codec is None:
        return head
    unit = _UNIT[codec]
    body = head[skip:]
    return body[: len(body) - len(body) % unit].decode(codec, errors="replace").encode("utf-8")


def sniff(head: bytes) -> tuple[str | None, int]:
    """The wide encoding the first bytes of a file are in (a codec name), and the length of
    its byte-order mark; `(None, 0)` for UTF-8 (or anything else read as UTF-8).

    Without a mark, a file is wide only when it has NUL bytes, decodes cleanly in that
    encoding, holds no NUL or stray control character once decoded, and is mostly ASCII:
    what a log in that encoding looks like and UTF-8 text never does (it has no NULs).
    """
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    if b"\x00" not in head:
        return None, 0
    for codec, unit in _UNIT.items():
        n = len(head) - len(head) % unit
        text: str | None = None
        for cut in (n, n - 2):  # the head may end inside a UTF-16 surrogate pair
            try:
                text = head[: max(cut, 0)].decode(codec)
                break
            except UnicodeDecodeError:
                continue
        if not text:
            continue
        controls = sum(1 for ch in text if ch < " " and ch not in _TEXT_CONTROLS)
        ascii_ = sum(1 for ch in text if " " <= ch < "\x7f" or ch in _TEXT_CONTROLS)
        if controls == 0 and 2 * ascii_ >= len(text):
            return codec, 0
    return None, 0


def sniff_file(path: Path) -> tuple[str | None, int]:
    with path.open("rb") as fh:
        return sniff(fh.read(SNIFF_BYTES))


def to_utf8(data: bytes | Path, codec: str, skip: int) -> tuple[bytes, bool]:
    """A wide-encoded log as UTF-8 bytes, and whether any of it could not be decoded.

    Bytes of a last character still being written (a file cut inside a code unit) become
    one U+FFFD at the very end: they belong to the unterminated last line, which is never
    read as data, and are not counted as invalid.
    """
    out = io.BytesIO()
    decoder = codecs.getincrementaldecoder(codec)("strict")
    invalid = False
    with data.open("rb") if isinstance(data, Path) else io.BytesIO(data) as fh:
        fh.seek(skip)
        while piece := fh.read(DECODE_PIECE):
            state = decoder.getstate()
            try:
                text = decoder.decode(piece)
            except UnicodeDecodeError:
                invalid = True
                decoder = codecs.getincrementaldecoder(codec)("replace")
                decoder.setstate(state)
                text = decoder.decode(piece)
            out.write(text.encode("utf-8"))
    if decoder.getstate()[0]:
        out.write("\ufffd".encode())
    return out.getvalue(), invalid


def cr_terminated(data: bytes) -> bool:
    """Lines end in `\\r` alone (old Mac style): no `\\n` anywhere, and either two `\\r` or
    a last line ended by one. A file that starts with `\\r` is a progress bar redrawing
    itself before the first line was printed (tqdm writes `\\r` before each state), not
    a log of `\\r`-ended lines."""
    if b"\n" in data or data.startswith(b"\r"):
        return False
    return data.count(b"\r") >= 2 or data.endswith(b"\r")
