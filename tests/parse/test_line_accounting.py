"""The product's promise, as properties: every line of a log is parsed into a table or
reported, with its line number, as not understood.

The exact accounting the parser keeps, checked here against a model of the bytes that
shares no code with it:

- A physical line is what ends in `\\n`; a last line without one is still being written:
  it counts in `n_lines`, is reported once ("incomplete last line") and is never read.
  A complete line's one trailing `\\r` (CRLF) is not part of its text.
- Inside a line, `\\r` separates the states of an overwritten line (a progress bar); each
  non-empty segment is read on its own under the line's number. A line of nothing but
  `\\r` is one blank segment.
- `line_kinds` counts, for each kind, the complete lines holding a segment of that kind,
  blank lines included: so `sum(line_kinds) == n_lines - truncated` whenever no line holds
  segments of two kinds (always without `\\r`), and lies between that and the number of
  segments otherwise.
- Each segment ends up in exactly one place: a row of a data table (`steps`, `layers`,
  `traces`, `quality`, `lr_checks`), of `events`, or of `problems`; or nowhere when it is
  blank (whitespace only) or part of a generation block (read into `generations`), or a
  progress state a later one on the same line replaced.
- Inside a generation block (the lines after a header, up to its closing rule) `\r` is
  model output, not a line end: such a line is one segment, and holds no row.
- A layer, trace or quality line belongs to the latest step line before it. When that
  line could not be read (a step line the `steps` table does not hold, or an unrecognized
  line with a step line inside), the line is reported, not given to another step, until
  a valid step line or an LR CHECK line names the step again; before any step line it is
  reported too.
- The file's bytes: a UTF-16/32 log (the encoding the parser names in `encoding`) is read
  as its decoded text; a file without any `\n` whose lines end in `\r` (two or more of
  them, or one at the end, and not a progress bar's leading `\r`) is read with `\r` as
  the line end; a byte-order mark opening a line is not part of it.
"""

from __future__ import annotations

import codecs
import functools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from ponder_parse import load_run, parse_run
from ponder_parse.parse.live import LiveLog
from ponder_parse.parse.scan import PROBLEM_TEXT_MAX, decode, read_lines, scan_lines

SAMPLES = Path(__file__).resolve().parents[2] / "sample_runs"

# What makes a line a data line: the trainer's prefixes (log-format.md), written out
# independently of the parser. Counted kind name -> (raw table, line test).
DATA_KINDS: dict[str, tuple[str, re.Pattern[str]]] = {
    "step": ("steps", re.compile(r"(?:\[AUDIT\] )?STEP: ")),
    "layer": ("layers", re.compile(r" ?L[0-9]+: ")),
    "trace": ("traces", re.compile(r" {0,2}L[0-9]+ s_trace:")),
    "quality": ("quality", re.compile(r" {0,2}RECURRENCE QUALITY:")),
    "lr_check": ("lr_checks", re.compile(r"LR CHECK:")),
}
MALFORMED = {
    "step": "malformed step line",
    "layer": "malformed layer line",
    "trace": "malformed s_trace line",
    "quality": "malformed RECURRENCE QUALITY line",
    "lr_check": "malformed LR CHECK line",
}
UNRECOGNIZED = "unrecognized line"
UNREADABLE_STEP = "belongs to a step line that could not be read"
BEFORE_STEPS = "before any step line"
ATTRIBUTED_KINDS = ("layer", "trace", "quality")
HIDDEN_STEP = re.compile(r"STEP: [0-9]")
WIDE = {
    "UTF-16LE": "utf-16-le",
    "UTF-16BE": "utf-16-be",
    "UTF-32LE": "utf-32-le",
    "UTF-32BE": "utf-32-be",
}
WIDE_BOMS = {
    "utf-16-le": b"\xff\xfe",
    "utf-16-be": b"\xfe\xff",
    "utf-32-le": b"\xff\xfe\x00\x00",
    "utf-32-be": b"\x00\x00\xfe\xff",
}
INCOMPLETE = "incomplete last line (log still being written?)"
NO_ROW_KINDS = ("blank", "generation")
STEP_NUMBER = re.compile(r"(?:\[AUDIT\] )?STEP: ([0-9]+)")
GEN_HEADER = re.compile(r"=+ GENERATION STEP [0-9]+ =+\s*$")
# Unicode White_Space, what "blank" means to the parser (Python's isspace() also takes
# the ASCII separators \x1c-\x1f, which are not blank).
WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)
_WS = "[" + re.escape("".join(sorted(WHITE_SPACE))) + "]"
GEN_HEADER_LAST = re.compile(r"(?:^|\r)=+ GENERATION STEP \d+ =+" + _WS + "*$")
GEN_CLOSE = re.compile("={20,}" + _WS + "*$")
GEN_CONTENT = ("[GEN ", "  Prompt (", "  Output (", "    ")


@dataclass(frozen=True)
class Lines:
    """The model: each complete line's text and segments, and the unterminated rest."""

    texts: list[str]
    rest: bytes
    gen_body: frozenset[int]  # lines inside a generation block, after its header

    @classmethod
    def of(cls, data: bytes, encoding: str | None = None) -> Lines:
        if encoding is not None:
            data = decode_wide(data, WIDE[encoding])
        if (
            b"\n" not in data
            and not data.startswith(b"\r")
            and (data.count(b"\r") >= 2 or data.endswith(b"\r"))
        ):
            data = data.replace(b"\r", b"\n")
        *complete, rest = data.split(b"\n")
        # Invalid UTF-8 never spans a `\n` (an ASCII byte), so lines decode on their own.
        texts = [
            ln.decode("utf-8", "replace").removesuffix("\r").removeprefix("\ufeff")
            for ln in complete
        ]
        return cls(texts, rest, generation_bodies(texts))

    @property
    def n_lines(self) -> int:
        return len(self.texts) + bool(self.rest)

    def segments(self, line_no: int) -> list[str]:
        if line_no in self.gen_body:
            return [self.texts[line_no - 1]]
        parts = [s for s in self.texts[line_no - 1].split("\r") if s]
        return parts or [""]


def decode_wide(data: bytes, codec: str) -> bytes:
    """The text of a wide-encoded file as UTF-8: a byte-order mark dropped, a character
    cut at the end one U+FFFD (it is in the unterminated last line)."""
    data = data.removeprefix(WIDE_BOMS[codec])
    decoder = codecs.getincrementaldecoder(codec)("replace")
    text = decoder.decode(data)
    return (text + ("\ufffd" if decoder.getstate()[0] else "")).encode()


def wide_invalid(data: bytes, codec: str) -> bool:
    try:
        codecs.getincrementaldecoder(codec)("strict").decode(data.removeprefix(WIDE_BOMS[codec]))
    except UnicodeDecodeError:
        return True
    return False


def generation_bodies(texts: list[str]) -> frozenset[int]:
    """Lines after a generation header (the last state of its line) that are content,
    blank or the closing rule, up to and including that rule."""
    body: set[int] = set()
    open_block = False
    for line_no, text in enumerate(texts, start=1):
        if GEN_HEADER_LAST.search(text):
            open_block = True
            continue
        if open_block and (text.startswith(GEN_CONTENT) or is_blank(text) or GEN_CLOSE.match(text)):
            body.add(line_no)
            open_block = not GEN_CLOSE.match(text)
        else:
            open_block = False
    return frozenset(body)


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_blank(text: str) -> bool:
    return all(ch in WHITE_SPACE for ch in text)


def rows_by_line(tables: dict[str, pl.DataFrame]) -> dict[int, list[tuple[str, int]]]:
    """Where each line number has rows: (table, row index) pairs, over the raw tables."""
    out: dict[int, list[tuple[str, int]]] = {}
    for name, df in tables.items():
        if name in ("line_kinds", "generations"):
            continue
        for i, line_no in enumerate(df["line_no"].to_list()):
            out.setdefault(line_no, []).append((name, i))
    return out


def check_accounting(data: bytes, *, strict: bool) -> None:
    """Every invariant of the module docstring for one input. `strict`: the input has no
    `\\r` inside a line (CRLF endings allowed), so every count is exact."""
    run = parse_run(data, name="run")
    meta = run.meta
    wide = meta.get("encoding")
    model = Lines.of(data, wide)
    complete, _, _ = read_lines(decode(data)[0])
    raw, _, consumed = scan_lines(complete)
    tables = raw.tables
    kinds = meta["line_kinds"]
    n = len(model.texts)

    # --- the facts about the text ------------------------------------------------------
    assert meta["n_lines"] == model.n_lines
    assert meta["truncated"] == bool(model.rest)
    if wide is None:
        assert meta["invalid_utf8"] == (not is_utf8(data[: len(data) - len(model.rest)]))
    else:
        assert meta["invalid_utf8"] == wide_invalid(data, WIDE[wide])
    assert consumed == complete.height == n
    assert all(v > 0 for v in kinds.values())
    if strict:
        assert sum(kinds.values()) == meta["n_lines"] - meta["truncated"]
    else:
        n_segments = sum(len(model.segments(i)) for i in range(1, n + 1))
        assert n <= sum(kinds.values()) <= n_segments

    # --- run.problems: once per unread segment, at its line, with its text ---------------
    located = run.problems.filter(pl.col("line_no").is_not_null())
    assert located["line_no"].is_sorted()
    expected = tables["problems"].rows() if "problems" in tables else []
    if model.rest:
        expected.append(
            (model.n_lines, model.rest.decode("utf-8", "replace")[:PROBLEM_TEXT_MAX], INCOMPLETE)
        )
    assert located.rows() == expected
    for line_no, text, reason in located.iter_rows():
        if reason == INCOMPLETE:
            assert line_no == model.n_lines
            continue
        assert 1 <= line_no <= n
        assert text in [s[:PROBLEM_TEXT_MAX] for s in model.segments(line_no)]
        assert reason in (UNRECOGNIZED, UNREADABLE_STEP, BEFORE_STEPS, *MALFORMED.values())
    reasons = Counter(located["reason"])
    assert reasons[INCOMPLETE] == int(bool(model.rest))

    # --- each segment in one place ----------------------------------------------------
    where = rows_by_line(tables)
    assert set(where) <= set(range(1, n + 1))
    for line_no in range(1, n + 1):
        rows = where.get(line_no, [])
        assert len(rows) <= len(model.segments(line_no))
        if is_blank(model.texts[line_no - 1]):
            assert rows == [], (line_no, model.texts[line_no - 1])
    no_row = [i for i in range(1, n + 1) if i not in where]
    assert len(no_row) <= sum(kinds.get(k, 0) for k in NO_ROW_KINDS)
    # A non-blank line without a row belongs to a generation block: going back over
    # lines without rows reaches the block's header.
    without = set(no_row)
    for line_no in no_row:
        if is_blank(model.texts[line_no - 1]):
            continue
        back = line_no
        while back in without and not any(GEN_HEADER.match(s) for s in model.segments(back)):
            back -= 1
        assert back in without, (line_no, model.texts[line_no - 1])

    # --- layer, trace and quality rows: the step of the step line before them ---------
    orphans: dict[int, str] = {}
    if strict:
        orphans = check_attribution(model, tables, located)

    # --- data rows point at lines of their kind ---------------------------------------
    for kind, (table, prefix) in DATA_KINDS.items():
        df = tables.get(table)
        line_nos = [] if df is None else df["line_no"].to_list()
        for line_no in line_nos:
            assert any(prefix.match(s) for s in model.segments(line_no)), (kind, line_no)
        if strict:
            unattributed = sum(1 for k in orphans.values() if k == kind)
            assert kinds.get(kind, 0) == len(line_nos) + reasons[MALFORMED[kind]] + unattributed
    if "steps" in tables:
        for line_no, step in tables["steps"].select("line_no", "step").iter_rows():
            found = [STEP_NUMBER.match(s) for s in model.segments(line_no)]
            assert step in [int(m.group(1)) for m in found if m]
    if strict:
        assert kinds.get("unknown", 0) == reasons[UNRECOGNIZED]
        events = tables.get("events")
        event_kinds: Counter[str] = Counter() if events is None else Counter(events["kind"])
        for kind, count in event_kinds.items():
            assert kinds[kind] == count, kind
        if events is not None:
            for line_no, text in events.select("line_no", "text").iter_rows():
                assert text == model.texts[line_no - 1]
        # Lines without a row: exactly the blank lines and the generation blocks.
        assert len(no_row) == sum(kinds.get(k, 0) for k in NO_ROW_KINDS)
        other = set(kinds) - set(DATA_KINDS) - set(event_kinds) - {"unknown", *NO_ROW_KINDS}
        assert other == set()

    # --- the final tables: one row per step, the later occurrence ------------------------
    if "steps" in tables:
        latest = tables["steps"].sort("line_no").unique("step", keep="last").sort("step")
        assert run.steps["step"].to_list() == latest["step"].to_list()
        assert run.steps["lm_loss"].to_list() == latest["lm_loss"].to_list()
    else:
        assert run.steps.is_empty()


def check_attribution(
    model: Lines, tables: dict[str, pl.DataFrame], problems: pl.DataFrame
) -> dict[int, str]:
    """Walks the lines in order with the step each one belongs to (a step, unknown, or
    none yet) and checks every readable layer, trace and quality line: in its table under
    that step, or reported with the reason. Which step and LR CHECK lines are valid is the
    tables' word (their own tests check it); what follows from it is checked here.
    Returns the kind of each line reported for its step."""
    valid_steps = (
        dict(tables["steps"].select("line_no", "step").iter_rows()) if "steps" in tables else {}
    )
    valid_lr = (
        dict(tables["lr_checks"].select("line_no", "step").iter_rows())
        if "lr_checks" in tables
        else {}
    )
    reported = dict(problems.select("line_no", "reason").iter_rows())
    want: dict[str, list[tuple[int, int]]] = {DATA_KINDS[k][0]: [] for k in ATTRIBUTED_KINDS}
    want_problems: dict[int, str] = {}
    orphans: dict[int, str] = {}
    step: int | None = None
    broken = False
    for line_no, text in enumerate(model.texts, start=1):
        kind = next((k for k, (_, p) in DATA_KINDS.items() if p.match(text)), None)
        if kind == "step" or (reported.get(line_no) == UNRECOGNIZED and HIDDEN_STEP.search(text)):
            step = valid_steps.get(line_no)
            broken = step is None
        elif kind == "lr_check" and broken and line_no in valid_lr:
            step, broken = valid_lr[line_no], False
        elif kind in ATTRIBUTED_KINDS and reported.get(line_no) != MALFORMED[kind]:
            if step is not None:
                want[DATA_KINDS[kind][0]].append((line_no, step))
            else:
                want_problems[line_no] = UNREADABLE_STEP if broken else BEFORE_STEPS
                orphans[line_no] = kind
    for table, rows in want.items():
        got = tables[table].select("line_no", "step").rows() if table in tables else []
        assert got == rows, table
    got_problems = {k: v for k, v in reported.items() if v in (UNREADABLE_STEP, BEFORE_STEPS)}
    assert got_problems == want_problems
    return orphans


@functools.cache
def sample_lines() -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """Lines of the bundled logs (a resumed model3b run and a smollm run): all of them, in
    order, and the distinct rarer ones (everything but step, layer, trace and quality
    lines: INIT, checkpoints, resume lines, generation blocks, the traceback)."""
    lines: list[bytes] = []
    for run in ("crash_at=2377,seed=2", "variant=smollm,kmax=6,seed=0"):
        (log,) = (SAMPLES / run).glob("log_*.txt")
        lines += log.read_bytes().split(b"\n")[:-1]
    common = tuple(re.compile(p.pattern.encode()) for _, p in DATA_KINDS.values())
    rare = sorted({ln for ln in lines if not any(p.match(ln) for p in common)})
    return tuple(lines), tuple(rare)


STDERR_LINES = (
    b"Traceback (most recent call last):",
    b'  File "train.py", line 10, in <module>',
    b"    main()",
    b"RuntimeError: CUDA out of memory",
    b"/usr/lib/python3/torch/x.py:12: UserWarning: something deprecated",
    b"  warnings.warn(",
    b"WARNING:root:something odd",
    b"[W socket.cpp:663] [c10d] no peer",
    " 45%|████▌     | 45/100 [00:01<00:02, 30.00it/s]".encode(),
    "⏩ Instant Jump: Slicing dataset from row 1908 to 50000".encode(),
    b"",
    b"   ",
)


@st.composite
def real_lines(draw: st.DrawFn, *, carriage_returns: bool) -> list[bytes]:
    """Real-format lines, mutated: windows of a bundled log (blocks kept whole or cut),
    its rarer lines, stderr noise and junk, shuffled, duplicated, cut at any byte (also
    inside a character) and interleaved. With `carriage_returns`, lines may also hold
    `\\r` (progress-bar redraws and the like)."""
    everything, rare = sample_lines()
    start = st.integers(0, len(everything) - 1)
    window = st.tuples(start, st.integers(1, 40)).map(
        lambda w: list(everything[w[0] : w[0] + w[1]])
    )
    junk_bytes = (
        st.binary(max_size=40)
        if carriage_returns
        else st.binary(max_size=40).map(lambda b: b.replace(b"\r", b""))
    )
    single = st.sampled_from(rare) | st.sampled_from(STDERR_LINES) | junk_bytes
    pieces = draw(st.lists(window | single.map(lambda b: [b]), max_size=8))
    lines = [ln.replace(b"\n", b"") for piece in pieces for ln in piece]
    if lines and draw(st.booleans()):
        lines = draw(st.permutations(lines))
    out: list[bytes] = []
    for ln in lines:
        how = draw(st.sampled_from(["keep", "keep", "keep", "cut", "twice", "crlf"]))
        if how == "cut":
            ln = ln[: draw(st.integers(0, len(ln)))]
        out.append(ln + b"\r" if how == "crlf" else ln)
        if how == "twice":
            out.append(ln)
    if carriage_returns and out:
        for _ in range(draw(st.integers(0, 3))):
            i = draw(st.integers(0, len(out) - 1))
            at = draw(st.integers(0, len(out[i])))
            out[i] = out[i][:at] + b"\r" + out[i][at:]
    return out


def as_log(lines: list[bytes], tail: bytes) -> bytes:
    return b"".join(ln + b"\n" for ln in lines) + tail


no_cr_tail = st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b""))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_every_line_accounted_for_in_arbitrary_bytes(data: bytes) -> None:
    """Whatever the bytes (invalid UTF-8, NULs, stray `\\r`): the counts, problems and
    rows follow the accounting of the module docstring."""
    check_accounting(data, strict=b"\r" not in data)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_every_line_accounted_for_in_arbitrary_text(text: str) -> None:
    """Any text, including whitespace of every kind and characters the trainer never
    prints."""
    data = text.encode("utf-8", errors="surrogatepass")
    check_accounting(data, strict=b"\r" not in data.replace(b"\r\n", b"\n"))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(real_lines(carriage_returns=False), st.just(b"") | no_cr_tail)
def test_every_line_accounted_for_in_mutated_real_lines(lines: list[bytes], tail: bytes) -> None:
    """Real log lines shuffled, duplicated, cut and mixed with junk, without `\\r` inside a
    line: every count is exact. Examples parse whole blocks of a real log (Polars' time,
    not the code's, so no deadline)."""
    check_accounting(as_log(lines, tail), strict=True)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    real_lines(carriage_returns=True), st.binary(max_size=30).map(lambda b: b.replace(b"\n", b""))
)
def test_every_line_accounted_for_with_carriage_returns(lines: list[bytes], tail: bytes) -> None:
    """The same with `\\r` inside lines: each segment read on its own."""
    check_accounting(as_log(lines, tail), strict=False)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    real_lines(carriage_returns=True),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
    st.lists(st.integers(0, 10**6), max_size=4),
)
def test_a_live_reader_accounts_for_every_line_the_same(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    """The same mutated lines appended in pieces cut anywhere and followed by `LiveLog`:
    after every poll the live run holds the full parse's problems, events and facts (a
    last line still being written, or one ending in `\\r`, included)."""
    data = as_log(lines, tail)
    # A file opening with gzip's magic bytes is read as gzip by `load_run`; `LiveLog`
    # follows plain text only.
    assume(not data.startswith(b"\x1f\x8b"))
    log = tmp_path_factory.mktemp("live") / "log.txt"
    log.write_bytes(b"")
    live = LiveLog(log)
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        with log.open("ab") as fh:
            fh.write(data[start:cut])
        start = max(start, cut)
        live.poll()
        got, want = live.run(), load_run(log)
        assert {**want.meta, "live": True} == got.meta
        for name in ("problems", "events", "steps", "layers", "generations"):
            assert_frame_equal(getattr(got, name), getattr(want, name), check_exact=True)
