"""Trainer log text → typed tables, vectorized with Polars.

Every line ends up in exactly one place: a data table (`steps`, `layers`, `traces`,
`quality`, `lr_checks`, `generations`), the `events` table (run-level lines and the
stderr noise mixed into the file), or `problems` (with its line number and a reason).
Blank lines are the only lines that leave no row.

Parsing is split in two so a growing log can be followed cheaply:
`scan_lines` turns a chunk of complete lines into raw rows (the string work, proportional
to the chunk), carrying a small `ScanState` across chunks; `finalize` concatenates raw
chunks and resolves resumed steps (cheap Polars operations). Run metadata is derived from
the finished tables in `meta.py`.
"""

from __future__ import annotations

import functools
import io
import operator
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from ponder_parse import schema
from ponder_parse.format import grammar as fmt
from ponder_parse.parse import encoding
from ponder_parse.run import RunMeta

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

PROBLEM_TEXT_MAX = 300
# Data lines whose step is not known: they are reported, never given to another step.
UNREADABLE_STEP_LINE = "belongs to a step line that could not be read"
NO_STEP_LINE = "before any step line"


@functools.cache
def _event_markers() -> tuple[tuple[str, pl.Expr], ...]:
    """The grammar's event markers as expressions, in its order (the first kind wins)."""
    t = pl.col("text")

    def test(m: fmt.Marker) -> pl.Expr:
        if m.how == "starts":
            return t.str.starts_with(m.text)
        return t.str.contains(m.text, literal=m.how == "contains")

    return tuple(
        (kind, functools.reduce(operator.or_, (test(m) for m in markers)))
        for kind, markers in fmt.EVENT_MARKERS
    )


@dataclass(frozen=True)
class ScanState:
    """What a chunk needs to know about the lines before it."""

    line_no: int = 0  # lines consumed so far (the next line is line_no + 1)
    step: int | None = None  # step of the latest step line, for lines that follow it
    segment: int = 0  # resume segment of the latest step line
    resume_pending: bool = False  # a resume line was seen after the latest step line
    broken: bool = False  # the latest step line could not be read: the step is unknown


@dataclass
class RawChunk:
    """Rows produced from one chunk of lines, not yet deduplicated across resumes."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)


def read_lines(data: bytes | Path) -> tuple[pl.DataFrame, str, bool]:
    """Complete lines as a frame (`text`, CRLF already stripped) and the unterminated
    remainder: a line still being written, which must not be parsed as data. The
    remainder is its bytes as they stand, decoded with replacement characters (it can end
    inside a character, or in the `\r` of a progress bar), as a live reader shows it.

    A file without a single `\n` whose lines end in `\r` (`encoding.cr_terminated`) is
    read with `\r` as its line end.

    Polars' line reader is several times faster than splitting in Python; it refuses
    invalid UTF-8, so such input is decoded with replacement characters first (the third
    value says so; only complete lines count).
    """
    invalid = False
    if isinstance(data, Path):
        if not _ends_with_newline(data):  # a line still being written: read its bytes
            return read_lines(data.read_bytes())
        # Read by Polars straight from the file: no second copy of a large log in memory.
        try:
            return pl.read_lines(data, name="text"), "", invalid
        except Exception:  # noqa: BLE001 - invalid UTF-8: take the careful path below
            return read_lines(data.read_bytes())
    cut = data.rfind(b"\n") + 1
    if not cut and encoding.cr_terminated(data):
        data = data.replace(b"\r", b"\n")
        cut = data.rfind(b"\n") + 1
    rest = data[cut:].decode("utf-8", errors="replace")
    if rest:
        data = data[:cut]
    try:
        df = pl.read_lines(io.BytesIO(data), name="text")
    except Exception:  # noqa: BLE001 - invalid UTF-8, or a Polars without read_lines
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            invalid = True
        lines = data.decode("utf-8", errors="replace").split("\n")[:-1]
        df = pl.DataFrame(
            {"text": [ln.removesuffix("\r") for ln in lines]}, schema={"text": pl.String}
        )
    return df, rest, invalid


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        if fh.seek(0, 2) == 0:
            return True
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def _lines_frame(lines: pl.DataFrame, first_line_no: int) -> pl.DataFrame:
    df = lines.select(pl.col("text").cast(pl.String)).with_row_index(
        "line_no", offset=first_line_no
    )
    df = df.with_columns(pl.col("line_no").cast(pl.Int64))
    t = pl.col("text")
    # A byte-order mark opens a file written by some Windows tools, and every file
    # concatenated after one: it is not part of the line.
    if df.height and df["text"].str.starts_with(BOM).any():
        df = df.with_columns(t.str.strip_prefix(BOM))
    # CRLF endings are gone already (`read_lines`); carriage-return overwrites (progress
    # bars) remain: each CR-separated segment is looked at on its own, under the
    # physical line's number. Empty segments say nothing (a bar starts with `\r`); a line
    # of nothing but carriage returns keeps one, a blank line. Model output is the
    # exception: inside a generation block a `\r` is part of the text, never a line end.
    if df.height and df["text"].str.contains("\r", literal=True).any():
        empty = t == ""
        df = (
            df.with_columns(
                pl.when(_in_generation_body())
                .then(pl.concat_list(t))
                .otherwise(t.str.split("\r"))
                .alias("text")
            )
            .explode("text")
            .filter(~empty | (empty.all().over("line_no") & pl.col("line_no").is_first_distinct()))
        )
    return df.with_row_index("_i")


BOM = "\ufeff"
# A header is the last state of its physical line (a progress bar may have been drawn on
# the line before the trainer printed it).
_GEN_HEADER_LAST = "(?:^|\r)" + fmt.GEN_HEADER.removeprefix("^")


def _in_generation_body() -> pl.Expr:
    """The physical lines after a generation header, up to its closing rule: the block
    structure of `_rest_kinds`, read before lines are split on `\r` (content lines are
    never data lines, so every one of these reaches `_rest_kinds` whole)."""
    t = pl.col("text")
    hdr = t.str.contains(_GEN_HEADER_LAST)
    close = t.str.contains(fmt.GEN_CLOSE)
    content = functools.reduce(
        operator.or_,
        (t.str.starts_with(s) for s in fmt.GEN_CONTENT_STARTS),
        t.str.strip_chars() == "",
    )
    brk = hdr | ~(content | close) | close.shift(1, fill_value=False)
    in_gen = pl.when(brk).then(hdr).forward_fill().fill_null(False)
    return in_gen & ~hdr


# Codes of the line kinds `_main_kind` tells apart (small integers partition fastest).
_MAIN_KINDS = ("step", "layer", "trace", "quality", "lr_check", "rest")
_PATTERN_KINDS = (fmt.LAYER_LINE, fmt.TRACE_LINE, fmt.QUALITY_LINE)  # indented: by regex


def _main_kind() -> pl.Expr:
    """The data kinds, recognised by anchored prefixes over every line (the bulk of a log),
    as an index into `_MAIN_KINDS`.

    Leading-space counts are exact so that indented model output (four spaces) can never
    pass for a data line.
    """
    t = pl.col("text")
    step = fmt.STEP_LINE.start
    tests = (
        t.str.starts_with(step) | t.str.starts_with(fmt.GUIDE_AUDIT_PREFIX + step),
        *(t.str.contains(line.start_pattern) for line in _PATTERN_KINDS),
        t.str.starts_with(fmt.LR_CHECK_LINE.start),
    )
    kind: Then | ChainedThen = pl.when(tests[0]).then(pl.lit(0, pl.UInt8))
    for code, test in enumerate(tests[1:], start=1):
        kind = kind.when(test).then(pl.lit(code, pl.UInt8))
    return kind.otherwise(pl.lit(len(tests), pl.UInt8))


def _classify(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The lines split by data kind (a frame per kind); `rest` holds every other line."""
    kinds = df.with_columns(_kind=_main_kind())
    parts = kinds.partition_by("_kind", as_dict=True, include_key=False)
    return {_MAIN_KINDS[int(code)]: f for (code,), f in parts.items()}


def _rest_kinds(rest: pl.LazyFrame) -> pl.LazyFrame:
    """The finer look at the non-data lines, usually a few hundred.

    Generation and stderr blocks claim their lines first, then event markers, then the
    leftovers. Blocks are contiguous runs of lines, so "the block's first line is a
    header" is a forward fill from each break (a scan, far cheaper than a windowed
    group-by).
    """
    t = pl.col("text")
    blank = t.str.strip_chars() == ""
    # A data line between two other lines ends any block: rows that are not adjacent.
    adjacent = (pl.col("_i").diff() == 1).fill_null(False)
    rest = rest.with_columns(
        _blank=blank,
        _gh=t.str.contains(fmt.GEN_HEADER),
        _gc=t.str.contains(fmt.GEN_CLOSE),
        _gcontent=functools.reduce(
            operator.or_, (t.str.starts_with(s) for s in fmt.GEN_CONTENT_STARTS), blank
        ),
        _tb=t.str.starts_with("Traceback (most recent call last)")
        | t.str.starts_with("During handling of the above exception")
        | t.str.starts_with("The above exception was the direct cause"),
        _warn=(t.str.contains(fmt.WARNING_MARK, literal=True) & ~t.str.starts_with(" "))
        | t.str.starts_with("WARNING:")  # Python's logging module
        | t.str.starts_with("[W "),  # PyTorch's C++ warnings: `[W socket.cpp:...]`
        _prog=t.str.contains(fmt.PROGRESS),
        _adj=adjacent,
    )
    # Generation block: a header, then content lines, up to and including a closing
    # rule of `=`. Anything else ends the block early (a crashed generation).
    gen_break = (
        pl.col("_gh")
        | ~(pl.col("_gcontent") | pl.col("_gc"))
        | pl.col("_gc").shift(1, fill_value=False)
        | ~pl.col("_adj")
    )
    rest = rest.with_columns(_gbrk=gen_break).with_columns(
        _ggrp=pl.col("_gbrk").cum_sum(),
        _in_gen=pl.when(pl.col("_gbrk")).then(pl.col("_gh")).forward_fill().fill_null(False),
    )
    # stderr block: a traceback or warning, then indented lines (not progress bars).
    start = pl.col("_tb") | pl.col("_warn")
    tb_content = t.str.starts_with(" ") & ~pl.col("_blank") & ~pl.col("_prog") & pl.col("_adj")
    block_kind = (
        pl.when(pl.col("_tb"))
        .then(pl.lit("traceback"))
        .when(pl.col("_warn"))
        .then(pl.lit("warning"))
        .otherwise(pl.lit(""))  # a break that starts no block: not null, or the fill leaks
    )
    rest = rest.with_columns(_tbrk=start | ~tb_content).with_columns(
        _tgrp=pl.col("_tbrk").cum_sum(),
        _block=pl.when(pl.col("_tbrk")).then(block_kind).forward_fill(),
    )
    rest = rest.with_columns(_in_tb=(pl.col("_block") != "") & ~pl.col("_in_gen"))
    kind: Then | ChainedThen = pl.when(pl.col("_in_gen")).then(pl.lit("generation"))
    kind = kind.when(pl.col("_prog")).then(pl.lit("progress"))
    kind = kind.when(pl.col("_in_tb")).then(pl.col("_block"))
    for name, expr in _event_markers():
        kind = kind.when(expr).then(pl.lit(name))
    label = (
        kind.when(pl.col("_blank"))
        .then(pl.lit("blank"))
        .when(t.str.contains(fmt.EXCEPTION))
        .then(pl.lit("traceback"))
        .otherwise(pl.lit("unknown"))
    )
    return rest.select(
        "_i", "line_no", "text", label.alias("kind"), "_in_gen", "_gc", "_ggrp", "_in_tb", "_tgrp"
    )


@functools.cache
def _no_rest() -> pl.DataFrame:
    """The (empty) result of `_rest_kinds` for a chunk of data lines only."""
    lines = pl.DataFrame(schema={"_i": pl.UInt32, "line_no": pl.Int64, "text": pl.String})
    return _rest_kinds(lines.lazy()).collect()


def _own(e: pl.Expr) -> pl.Expr:
    """A copy of a string column. Strings cut from the log share its text buffers, so a
    handful of event lines kept in a `Run` would otherwise keep the whole log's text in
    memory (several MB per run in a sweep)."""
    return pl.concat_str([e, pl.lit("")])


def _problem_rows(df: pl.LazyFrame, reason: pl.Expr) -> pl.LazyFrame:
    return df.select(
        "line_no",
        _own(pl.col("text").str.slice(0, PROBLEM_TEXT_MAX)).alias("text"),
        reason.alias("reason"),
    )


# Fast field extraction. The fields of a step, layer or quality line sit at fixed
# positions between literal separators, so plain splits and exact-label strips read them
# several times faster than regex capture groups. Where each field sits and what label is
# in front of it come from the grammar (`fmt.pieces`), built into expressions once.
# Validation is structural: the line must have exactly the parts its format has, every
# label must be where the format puts it (a different label leaves text in front of the
# number and the cast fails; a part of several values needs all its labels, in order),
# every suffix must be there, and every number must parse. A line failing any of that is
# a problem.

Piece = list[fmt.Item | str]


def _num(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.Float64, strict=False)


def _val(e: pl.Expr, label: str, suffix: str = "", *, padded: bool = False) -> pl.Expr:
    """The number after an exact label (and before a suffix) in one part of a line."""
    e = e.str.strip_prefix(label)
    if padded:  # right-aligned by the trainer's format: `dt:  420.00ms`
        e = e.str.strip_chars_start(" ")
    if suffix:  # required: `P_NR: 3.2` without its `%` is not the trainer's line
        return pl.when(e.str.ends_with(suffix)).then(_num(e.str.strip_suffix(suffix)))
    return _num(e)


def _part(i: int | pl.Expr) -> pl.Expr:
    return pl.col("_p").list.get(i, null_on_oob=True)


def _scaled(e: pl.Expr, f: fmt.Field) -> pl.Expr:
    # `* 0.01`, never `/ 100`: Polars divides exactly on 1-2 row frames but through the
    # reciprocal on longer ones, so small live chunks would differ from a full parse.
    return e * 0.01 if f.percent else e


def _pattern_piece(
    e: pl.Expr, piece: Piece, lead: str, dtypes: schema.TableSchema
) -> dict[str, pl.Expr]:
    """A part holding plain-digit integers (`STEP: 1500 [AUDIT]`, `L3: k_exec=2`), read
    with one anchored pattern: a cast alone would take `+5` or ` 5`. A flag counts when
    its text appears anywhere in the part (the guide prints `[AUDIT]` before `STEP:`)."""
    pattern: list[str] = [f"^{lead}"]
    groups: list[fmt.Field] = []
    flags: list[fmt.Flag] = []
    for item in piece:
        if isinstance(item, str):
            pattern.append(re.escape(item))
        elif isinstance(item, fmt.Flag):
            pattern.append(f"(?:{re.escape(item.text)})?")
            flags.append(item)
        else:
            pattern.append(f"(?P<{item.name}>{fmt.INT})")
            groups.append(item)
    regex = "".join(pattern) + "$"
    out: dict[str, pl.Expr] = {}
    if len(groups) == 1:
        out[groups[0].name] = e.str.extract(regex).cast(dtypes[groups[0].name], strict=False)
    else:
        m = e.str.extract_groups(regex)
        for f in groups:
            out[f.name] = m.struct.field(f.name).cast(dtypes[f.name], strict=False)
    for flag in flags:
        out[flag.name] = e.str.contains(flag.text.strip(), literal=True)
    return out


def _pop_label(items: Piece, at: int) -> str:
    """The label text at `at`, taken out of `items`; "" where a value sits there instead."""
    item = items[at]
    if isinstance(item, str):
        del items[at]
        return item
    return ""


def _piece(e: pl.Expr, piece: Piece, lead: str, dtypes: schema.TableSchema) -> dict[str, pl.Expr]:
    """The values of one part of a line, by its items in the grammar.

    One field: strip its exact label, read the number, require the suffix. Several
    (`PONDER: a (RAW: b, RWD: c)`): require the opening label and the closing text, then
    cut at each inner label in order, so every label must be there in its place. A
    trailing flag (`[DB]`) is the part ending with its text.
    """
    fields = [i for i in piece if isinstance(i, fmt.Field)]
    if any(f.integer for f in fields):
        return _pattern_piece(e, piece, lead, dtypes)
    out: dict[str, pl.Expr] = {}
    items = list(piece)
    flag = items[-1]
    if isinstance(flag, fmt.Flag):
        items.pop()
        out[flag.name] = e.str.ends_with(flag.text)
        e = e.str.strip_suffix(flag.text)
    first = _pop_label(items, 0)
    end = _pop_label(items, -1)
    if len(fields) == 1:
        f = fields[0]
        out[f.name] = _scaled(_val(e, first, end, padded=f.padded), f)
        return out
    # The opening label is required too: without it the first value would be read from
    # whatever text sits there.
    has_ends = e.str.starts_with(first) & e.str.ends_with(end) if end else e.str.starts_with(first)
    rest: pl.Expr = pl.when(has_ends).then(e.str.strip_prefix(first).str.strip_suffix(end))
    texts: list[pl.Expr] = []
    for item in items[1:]:
        if isinstance(item, str):  # an inner label: the value before it is complete
            cut = rest.str.splitn(item, 2)
            texts.append(cut.struct.field("field_0"))
            rest = cut.struct.field("field_1")
    texts.append(rest)
    for f, text in zip(fields, texts, strict=True):
        if f.choices:
            out[f.name] = pl.when(text.is_in(f.choices)).then(_own(text))
        else:
            out[f.name] = _scaled(_num(text), f)
    return out


def _line_dtypes(line: fmt.LineFormat) -> schema.TableSchema:
    """The table columns a line kind's integers are cast to."""
    tables = {
        "step": schema.STEPS,
        "layer": schema.LAYERS,
        "trace": schema.TRACES,
        "quality": schema.QUALITY,
        "lr_check": schema.LR_CHECKS,
    }
    return tables[line.kind]


def _block_pieces(line: fmt.LineFormat, block: fmt.Block) -> list[Piece]:
    """A block's parts as a split of the whole line on its separator cuts them."""
    return fmt.pieces(replace(line, blocks=(block,)))


def _has_baton(steps: pl.DataFrame) -> bool:
    """Whether any step line of a chunk has the BATON block (some smollm runs): when
    none has, its string work is skipped. The other optional blocks are common enough
    to always be looked for."""
    mark = fmt.STEP_LINE.sep + fmt.STEP_BATON.fields[0].label
    return bool(steps.height and steps["text"].str.contains(mark, literal=True).any())


@functools.cache
def _step_exprs(baton_block: bool = True) -> tuple[tuple[pl.Expr, ...], pl.Expr]:
    """The step line's field and validity expressions, built once per `baton_block`.

    Parts are split on ` | `. The blocks before the optional ones sit at fixed parts; an
    optional block sits after the blocks found before it, except the last optional block
    and the closing ones, which are read from the end. A line has an optional block when
    its first value reads where the block would be; otherwise the block's fields are
    null, and the part count must match the blocks found.
    """
    line = fmt.STEP_LINE
    dtypes = _line_dtypes(line)
    lead = f"(?:{re.escape(fmt.GUIDE_AUDIT_PREFIX)})?"
    optional = [b for b in line.blocks if b.optional]
    tail_from = line.blocks.index(optional[-1])
    n_fixed = sum(len(b.segments) for b in line.blocks if not b.optional)
    values: dict[str, pl.Expr] = {}
    at: int | pl.Expr = 0  # where the next block starts, counted from the front
    from_end = -sum(len(b.segments) for b in line.blocks[tail_from:])
    for bi, block in enumerate(line.blocks):
        parts = _block_pieces(line, block)
        if block.name == fmt.STEP_BATON.name and not baton_block:
            values |= {f.name: pl.lit(None, pl.Float64) for f in block.fields}
            continue
        start: int | pl.Expr = from_end if bi >= tail_from else at
        read: dict[str, pl.Expr] = {}
        for j, piece in enumerate(parts):
            index = start + j
            e = _part(index)
            if isinstance(index, int) and index == -1:  # the line's end: trailing spaces
                e = e.str.strip_chars_end()
            read |= _piece(e, piece, lead, dtypes)
        found: pl.Expr | None = None
        if block.optional:
            first = block.fields[0].name
            found = read[first].is_not_null()
            read = {k: (v if k == first else pl.when(found).then(v)) for k, v in read.items()}
        if bi >= tail_from:
            from_end += len(parts)
        elif found is not None:
            at = at + pl.when(found).then(pl.lit(len(parts))).otherwise(pl.lit(0))
        else:
            at = at + len(parts)
        values |= read
    fields = (
        pl.col("line_no"),
        pl.col("text"),
        *(values[name].alias(name) for name in schema.STEPS if name in values),
        pl.col("_p").list.len().alias("_n"),
    )
    # Validity reads the selected columns: a block is there when its first value is.
    n_parts = pl.lit(n_fixed)
    ok = pl.all_horizontal(pl.col(c).is_not_null() for c in line.required)
    for block in optional:
        has = pl.col(block.fields[0].name).is_not_null()
        complete = pl.all_horizontal(pl.col(f.name).is_not_null() for f in block.fields)
        n_parts = n_parts + has.cast(pl.Int32) * len(block.segments)
        ok = ok & (~has | complete)
    ok = ok & (pl.col("_n") == n_parts)
    return fields, ok.fill_null(False)


def _step_fields(df: pl.LazyFrame, baton_block: bool = True) -> pl.LazyFrame:
    fields, ok = _step_exprs(baton_block)
    return (
        df.with_columns(_p=pl.col("text").str.split(fmt.STEP_LINE.sep))
        .select(fields)
        .with_columns(_ok=ok)
        .drop("_n")
    )


# The per-layer line is read flat: ` | ` turned into `, `, then split on `, `.
_LAYER_SEPS = (", ", fmt.LAYER_LINE.sep)


@functools.cache
def _layer_exprs() -> tuple[tuple[pl.Expr, ...], pl.Expr]:
    """The per-layer line's field and validity expressions, built once."""
    line = fmt.LAYER_LINE
    dtypes = _line_dtypes(line)
    lead = f" {{0,{len(line.indent)}}}"
    parts = fmt.pieces(line, _LAYER_SEPS)
    values: dict[str, pl.Expr] = {}
    for i, piece in enumerate(parts):
        values |= _piece(_part(i), piece, lead, dtypes)
    fields = (
        pl.col("line_no"),
        pl.col("text"),
        *(values[name].alias(name) for name in schema.LAYERS if name in values),
        pl.col("_p").list.len().alias("_n"),
    )
    ok = pl.all_horizontal(pl.col(c).is_not_null() for c in values) & (pl.col("_n") == len(parts))
    return fields, ok.fill_null(False)


def _layer_fields(df: pl.LazyFrame) -> pl.LazyFrame:
    fields, ok = _layer_exprs()
    sep, inner = _LAYER_SEPS[0], _LAYER_SEPS[1]
    return (
        df.with_columns(
            _p=pl.col("text")
            .str.strip_chars_end()
            .str.replace_all(inner, sep, literal=True)
            .str.split(sep)
        )
        .select(fields)
        .with_columns(_ok=ok)
        .drop("_n")
    )


def _pattern_fields(df: pl.LazyFrame, pattern: str, key: str, *fields: pl.Expr) -> pl.LazyFrame:
    """Lines read with one anchored pattern (the rarer kinds: traces, LR checks); a line
    is valid when the pattern matched it."""
    return (
        df.with_columns(_m=pl.col("text").str.extract_groups(pattern))
        .unnest("_m")
        .select("line_no", "text", pl.col(key).is_not_null().alias("_ok"), *fields)
    )


def _trace_fields(df: pl.LazyFrame) -> pl.LazyFrame:
    values = fmt.TRACE_LINE.field("s_trace")
    return _pattern_fields(
        df,
        fmt.TRACE,
        "layer",
        pl.col("layer").cast(schema.TRACES["layer"], strict=False),
        pl.col(values.name)
        .str.strip_chars()
        .str.split(values.sep.strip())
        .list.eval(pl.element().str.strip_chars().cast(pl.Float64, strict=False))
        .alias(values.name),
    )


def _lr_fields(df: pl.LazyFrame) -> pl.LazyFrame:
    return _pattern_fields(
        df,
        fmt.LR_CHECK,
        "step",
        pl.col("step").cast(schema.LR_CHECKS["step"], strict=False),
        pl.col("lr").cast(pl.Float64, strict=False),
        _own(pl.col("phase")).alias("phase"),
    )


@functools.cache
def _quality_exprs() -> tuple[tuple[pl.Expr, ...], pl.Expr]:
    """`  RECURRENCE QUALITY: ΔCE=… | ΔH=… | COUPON: … [STATUS][ [CONFIDENCE+]]`"""
    line = fmt.QUALITY_LINE
    parts = fmt.pieces(line)
    values: dict[str, pl.Expr] = {}
    for i, piece in enumerate(parts):
        values |= _piece(_part(i), piece, "", _line_dtypes(line))
    fields = (
        pl.col("line_no"),
        pl.col("text"),
        *(values[name].alias(name) for name in schema.QUALITY if name in values),
        (pl.col("_p").list.len() == len(parts)).alias("_shape"),
    )
    ok = pl.all_horizontal(pl.col(c).is_not_null() for c in values) & pl.col("_shape")
    return fields, ok.fill_null(False)


def _quality_fields(df: pl.LazyFrame) -> pl.LazyFrame:
    fields, ok = _quality_exprs()
    out = df.with_columns(_p=pl.col("text").str.strip_chars().str.split(fmt.QUALITY_LINE.sep))
    return out.select(fields).with_columns(_ok=ok).drop("_shape")


_FIELD_QUERIES = {
    "steps": ("step", _step_fields),
    "layers": ("layer", _layer_fields),
    "quality": ("quality", _quality_fields),
    "traces": ("trace", _trace_fields),
    "lr_checks": ("lr_check", _lr_fields),
}

# What moves the step context (`scan_lines`), as the codes of its marks.
_GOOD, _BROKEN, _LR, _RESUME = range(4)
_HIDDEN_STEP = re.escape(fmt.STEP_LINE.start) + "[0-9]"

_KIND_LABELS = {
    "steps": "step",
    "layers": "layer",
    "quality": "RECURRENCE QUALITY",
    "traces": "s_trace",
    "lr_checks": "LR CHECK",
}


def scan_lines(
    lines: pl.DataFrame, state: ScanState = ScanState(), *, final: bool = True
) -> tuple[RawChunk, ScanState, int]:
    """Parse a chunk of complete lines.

    Returns the raw rows, the state for the next chunk, and how many lines were consumed.
    When `final` is false, an open generation or stderr block at the end of the chunk is
    left unconsumed, so the caller can offer those lines again once more have arrived.

    The work runs as two batches of lazy queries (fields of every kind and the finer look
    at the other lines; then the step context, events and problems), so a chunk costs
    about a dozen Polars calls whatever its size. Each call has a fixed cost (planning,
    dispatch) of tenths of a millisecond, which is most of the time spent on the small
    chunks a growing log is followed in.
    """
    frame = _lines_frame(lines, state.line_no + 1)
    parts = _classify(frame)

    # --- batch 1: the string work (kinds the chunk holds only: a live chunk is small) --
    queries = {
        name: parts[kind].lazy().pipe(fields)
        for name, (kind, fields) in _FIELD_QUERIES.items()
        if kind in parts
    }
    if "step" in parts:
        queries["steps"] = parts["step"].lazy().pipe(_step_fields, _has_baton(parts["step"]))
    if "rest" in parts:
        queries["_rest"] = _rest_kinds(parts["rest"].lazy())
    results = dict(zip(queries, pl.collect_all(list(queries.values())), strict=True))
    rest = results.pop("_rest", None)
    if rest is None:
        rest = _no_rest()

    consumed = lines.height
    if not final and frame.height and rest.height and rest["_i"][-1] == frame.height - 1:
        last = rest.row(rest.height - 1, named=True)
        hold_from: int | None = None
        if last["_in_gen"] and not last["_gc"]:
            hold_from = schema.as_int(
                rest.filter(pl.col("_ggrp") == last["_ggrp"])["line_no"].min()
            )
        elif last["_in_tb"]:
            hold_from = schema.as_int(
                rest.filter(pl.col("_tgrp") == last["_tgrp"])["line_no"].min()
            )
        if hold_from is not None and hold_from > state.line_no + 1:
            consumed = hold_from - state.line_no - 1
            keep = pl.col("line_no") < hold_from
            results = {k: f.filter(keep) for k, f in results.items()}
            rest = rest.filter(keep)
            parts = {k: f.filter(keep) for k, f in parts.items()}
        elif hold_from is not None:
            # The whole chunk is one open block: nothing can be decided yet.
            return RawChunk({}), state, 0

    # --- batch 2: the step/segment context every line inherits, events, problems --------
    # The context is the latest step line. A valid one gives its step; one that could not
    # be read leaves the step unknown (its layer, trace and quality lines are reported,
    # never handed to the step before it) until the next valid step line, or an LR CHECK
    # line, which names its step. A step line starts a new segment when its number does
    # not exceed the previous valid step's (the log was appended after a resume) or a
    # resume line stands between the two.
    lazy = {k: f.lazy() for k, f in results.items()}
    rest_lf = rest.lazy()
    resumes = rest_lf.filter(pl.col("kind") == "resume").select("line_no")
    no_marks = pl.LazyFrame(schema={"line_no": pl.Int64, "step": pl.Int64})
    step_marks = (
        lazy["steps"].select("line_no", "step", "_ok")
        if "steps" in lazy
        else no_marks.with_columns(_ok=pl.lit(True))
    )
    lr_marks = (
        no_marks
        if "lr_checks" not in lazy
        else lazy["lr_checks"].filter(pl.col("_ok")).select("line_no", "step")
    )
    # A step line with text in front of it (stderr without its newline) is not a step
    # line to the grammar, but the lines after it are still not the previous step's.
    hidden = rest_lf.filter(
        (pl.col("kind") == "unknown") & pl.col("text").str.contains(_HIDDEN_STEP)
    ).select("line_no")
    code = pl.col("_mark")

    def mark(c: int) -> pl.Expr:
        return pl.lit(c, pl.UInt8)

    no_step = pl.lit(None, pl.Int64)
    marks = pl.concat(
        [
            step_marks.select(
                "line_no",
                pl.when(pl.col("_ok")).then(pl.col("step")).alias("step"),
                _mark=pl.when(pl.col("_ok")).then(mark(_GOOD)).otherwise(mark(_BROKEN)),
            ),
            hidden.select("line_no", step=no_step, _mark=mark(_BROKEN)),
            lr_marks.with_columns(_mark=mark(_LR)),
            resumes.select("line_no", step=no_step, _mark=mark(_RESUME)),
        ]
    ).sort("line_no", maintain_order=True)
    # An LR CHECK moves the context only where it is unknown: the first one after an
    # unreadable step line (the step lines before this chunk: `state.broken`).
    stepish = code <= _BROKEN
    marks = (
        marks.with_columns(
            _head=pl.when(stepish).then(code == _BROKEN).forward_fill().fill_null(state.broken),
            _grp=stepish.cum_sum(),
        )
        .with_columns(
            _first_lr=(code == _LR).cast(pl.Int32).cum_sum().over("_grp") == 1,
        )
        .filter((code != _LR) | (pl.col("_head") & pl.col("_first_lr")))
        .drop("_head", "_grp", "_first_lr")
    )
    valid = marks.filter(code != _BROKEN).with_columns(_resume=code == _RESUME)
    valid = valid.with_columns(
        _resumes=pl.col("_resume").cum_sum().cast(pl.Int64) + int(state.resume_pending)
    )
    prev_step = pl.col("step").shift(1, fill_value=pl.lit(state.step, dtype=pl.Int64))
    prev_resumes = pl.col("_resumes").shift(1, fill_value=0)
    new_seg = (pl.col("step") <= prev_step).fill_null(False) | (
        (pl.col("_resumes") > prev_resumes) & prev_step.is_not_null()
    )
    valid_rows = valid.filter(~pl.col("_resume")).select(
        "line_no",
        pl.col("step").alias("_ctx_step"),
        (new_seg.cast(pl.Int32).cum_sum() + state.segment).cast(pl.Int32).alias("segment"),
        _broken=pl.lit(False),
    )
    broken_rows = marks.filter(code == _BROKEN).select(
        "line_no",
        _ctx_step=pl.lit(None, pl.Int64),
        segment=pl.lit(None, pl.Int32),
        _broken=pl.lit(True),
    )
    srows = (
        pl.concat([valid_rows, broken_rows])
        .sort("line_no", maintain_order=True)
        .with_columns(pl.col("segment").forward_fill().fill_null(state.segment))
        .collect()
    )
    before = None if state.broken else state.step  # the step of rows before any mark

    def with_context(df: pl.LazyFrame) -> pl.LazyFrame:
        """The step and segment of the latest step line at or before each row (a null step
        where that line could not be read, or before the first), and `_broken` for the
        former."""
        return df.join_asof(srows.lazy(), on="line_no", strategy="backward").with_columns(
            pl.when(pl.col("_broken").is_null())
            .then(pl.lit(before, dtype=pl.Int64))
            .otherwise(pl.col("_ctx_step"))
            .alias("_ctx_step"),
            pl.col("segment").fill_null(state.segment).cast(pl.Int32),
            pl.col("_broken").fill_null(state.broken),
        )

    out: dict[str, pl.LazyFrame] = {}
    unattributed: list[pl.LazyFrame] = []
    for name, lf in lazy.items():
        good = with_context(lf.filter(pl.col("_ok")).drop("_ok"))
        if name in ("steps", "lr_checks"):  # these carry their own step
            out[name] = good.drop("text", "_ctx_step", "_broken")
            continue
        out[name] = (
            good.filter(pl.col("_ctx_step").is_not_null())
            .drop("text", "_broken")
            .rename({"_ctx_step": "step"})
        )
        unattributed.append(
            _problem_rows(
                good.filter(pl.col("_ctx_step").is_null()),
                pl.when(pl.col("_broken"))
                .then(pl.lit(UNREADABLE_STEP_LINE))
                .otherwise(pl.lit(NO_STEP_LINE)),
            )
        )
    problems = [
        _problem_rows(lf.filter(~pl.col("_ok")), pl.lit(f"malformed {_KIND_LABELS[name]} line"))
        for name, lf in lazy.items()
    ] + unattributed
    if rest.height:
        out["generations"] = _generations(rest_lf.filter(pl.col("kind") == "generation"))
        not_events = pl.col("kind").is_in(["generation", "blank", "unknown"])
        ev = with_context(rest_lf.filter(~not_events).select("line_no", "text", "kind"))
        # A progress bar redraws itself many times on one line: keep its last state.
        ev = ev.filter((pl.col("kind") != "progress") | pl.col("line_no").is_last_distinct())
        out["events"] = ev.select(
            "line_no", _event_step().alias("step"), "kind", _own(pl.col("text")).alias("text")
        )
        problems.append(
            _problem_rows(rest_lf.filter(pl.col("kind") == "unknown"), pl.lit("unrecognized line"))
        )
        # The accounting of every line by kind (a line some of whose parts were unreadable
        # counts under its kind and shows in `problems` too; a physical line split by
        # carriage returns counts once under each kind it held).
        out["_rest_kinds"] = rest_lf.group_by("kind").agg(n=pl.col("line_no").n_unique())
        out["_last_resume"] = resumes.select(pl.col("line_no").max())
    if problems:
        out["problems"] = pl.concat(problems).sort("line_no", maintain_order=True)
    done = dict(zip(out, pl.collect_all(list(out.values())), strict=True))

    tables = {k: v for k, v in done.items() if not k.startswith("_") and v.height}
    kinds = {
        kind: parts[kind]["line_no"].n_unique()
        for kind, _ in _FIELD_QUERIES.values()
        if kind in parts and parts[kind].height
    }
    if "_rest_kinds" in done:
        kinds.update(dict(done["_rest_kinds"].iter_rows()))
    tables["line_kinds"] = pl.DataFrame(
        {"kind": list(kinds), "n": list(kinds.values())},
        schema={"kind": pl.String, "n": pl.Int64},
    )

    # --- state for the next chunk ------------------------------------------------------------
    new_state = replace(state, line_no=state.line_no + consumed)
    last_resume = done["_last_resume"].item() if "_last_resume" in done else None
    if srows.height:
        new_state = replace(new_state, broken=bool(srows["_broken"][-1]))
    good_rows = srows.filter(~pl.col("_broken"))
    if good_rows.height:
        line_no, step, segment, _ = good_rows.row(-1)
        new_state = replace(
            new_state,
            step=step,
            segment=segment,
            resume_pending=last_resume is not None and last_resume > line_no,
        )
    elif last_resume is not None:
        new_state = replace(new_state, resume_pending=state.step is not None)
    return RawChunk(tables), new_state, consumed


def _event_step() -> pl.Expr:
    """The step an event line belongs to: the one it names, else the latest step line's."""
    t = pl.col("text")
    named = (
        pl.when(pl.col("kind") == "checkpoint")
        .then(t.str.extract(fmt.CHECKPOINT_STEP))
        .when(pl.col("kind").is_in(["resume", "pause"]))
        .then(t.str.extract(fmt.NAMED_STEP))
        .cast(pl.Int64, strict=False)
    )
    return pl.coalesce(named, pl.col("_ctx_step"))


def _generations(gen: pl.LazyFrame) -> pl.LazyFrame:
    """Generation blocks → one row per sample. Model output is text, never data."""
    t = pl.col("text")
    g = gen.with_columns(
        _hdr=t.str.extract(fmt.GEN_HEADER).cast(pl.Int64, strict=False),
        _sample=t.str.extract(fmt.GEN_SAMPLE).cast(pl.Int32, strict=False),
        _ptok=t.str.extract(fmt.GEN_PROMPT).cast(pl.Int32, strict=False),
        _otok=t.str.extract(fmt.GEN_OUTPUT).cast(pl.Int32, strict=False),
    ).with_columns(
        _block=pl.col("_hdr").is_not_null().cum_sum(),
    )
    g = g.with_columns(
        _gstep=pl.col("_hdr").forward_fill().over("_block"),
        _sample=pl.col("_sample").forward_fill().over("_block"),
        _section=pl.when(pl.col("_ptok").is_not_null())
        .then(pl.lit("prompt"))
        .when(pl.col("_otok").is_not_null())
        .then(pl.lit("output"))
        .when(
            pl.col("_sample").is_not_null()
            & pl.col("text").str.starts_with(fmt.GEN_CONTENT_STARTS[0])
        )
        .then(pl.lit("none"))
        .otherwise(None),
    ).with_columns(pl.col("_section").forward_fill().over("_block"))
    content = (
        pl.col("_section").is_in(["prompt", "output"])
        & pl.col("_ptok").is_null()
        & pl.col("_otok").is_null()
        & ~t.str.contains(fmt.GEN_CLOSE)
    )
    g = g.filter(pl.col("_sample").is_not_null()).with_columns(
        _content=pl.when(content).then(t.str.strip_prefix(fmt.GEN_TEXT_INDENT))
    )
    out = g.group_by("_block", "_sample", maintain_order=True).agg(
        pl.col("line_no").first(),
        pl.col("_gstep").first().alias("step"),
        pl.col("_sample").first().alias("sample"),
        pl.col("_ptok").drop_nulls().first().alias("prompt_tokens"),
        pl.col("_content")
        .filter(pl.col("_section") == "prompt")
        .drop_nulls()
        .str.join("\n")
        .alias("prompt"),
        pl.col("_otok").drop_nulls().first().alias("output_tokens"),
        pl.col("_content")
        .filter(pl.col("_section") == "output")
        .drop_nulls()
        .str.join("\n")
        .alias("output"),
    )
    return out.select(
        "line_no",
        "step",
        "sample",
        "prompt_tokens",
        _own(pl.col("prompt").str.strip_chars_end("\n")).alias("prompt"),
        "output_tokens",
        _own(pl.col("output").str.strip_chars_end("\n")).alias("output"),
    )


def _concat(chunks: list[RawChunk], name: str) -> pl.DataFrame | None:
    parts = [c.tables[name] for c in chunks if name in c.tables]
    if not parts:
        return None
    return pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]


def _latest(df: pl.DataFrame | None, keys: list[str], s: schema.TableSchema) -> pl.DataFrame:
    """Keep the later occurrence of each key (a resumed run re-logs steps) and sort."""
    if df is None:
        return schema.empty(s)
    if not _in_key_order(df, keys):
        df = (
            df.sort("line_no", maintain_order=True)
            .unique(keys, keep="last", maintain_order=True)
            .sort(keys)
        )
    return schema.conform(df, s)


def _by_line(df: pl.DataFrame) -> pl.DataFrame:
    return df if df["line_no"].is_sorted() else df.sort("line_no", maintain_order=True)


def _in_key_order(df: pl.DataFrame, keys: list[str]) -> bool:
    """Rows already strictly increasing by key (no resume repeated a step): the common
    case, checked with two native passes instead of a sort and a de-duplication."""
    if df.height < 2:
        return True
    key = df[keys[0]].cast(pl.Int64)
    if len(keys) == 2:  # (step, layer) or (step, sample): small second parts
        minor = df[keys[1]].cast(pl.Int64)
        if schema.as_int(minor.min()) < 0 or schema.as_int(minor.max()) >= 1 << 20:
            return False
        key = key * (1 << 20) + minor
    return key.null_count() == 0 and key.is_sorted() and key.n_unique() == key.len()


def line_kinds(chunks: list[RawChunk]) -> dict[str, int]:
    """How many lines of each kind the chunks held (blank lines included)."""
    kinds = _concat(chunks, "line_kinds")
    if kinds is None:
        return {}
    agg = kinds.group_by("kind").agg(pl.col("n").sum()).sort("n", descending=True)
    return {str(k): int(n) for k, n in agg.iter_rows()}


def finalize(chunks: list[RawChunk]) -> dict[str, pl.DataFrame]:
    """Raw chunk rows → the `Run` tables, with resumed steps resolved."""
    events = _concat(chunks, "events")
    problems = _concat(chunks, "problems")
    generations = _concat(chunks, "generations")
    return {
        "steps": _latest(_concat(chunks, "steps"), ["step"], schema.STEPS),
        "layers": _latest(_concat(chunks, "layers"), ["step", "layer"], schema.LAYERS),
        "traces": _latest(_concat(chunks, "traces"), ["step", "layer"], schema.TRACES),
        "quality": _latest(_concat(chunks, "quality"), ["step"], schema.QUALITY),
        "lr_checks": _latest(_concat(chunks, "lr_checks"), ["step"], schema.LR_CHECKS),
        "generations": _latest(generations, ["step", "sample"], schema.GENERATIONS),
        "events": schema.empty(schema.EVENTS)
        if events is None
        else schema.conform(_by_line(events), schema.EVENTS),
        "problems": schema.empty(schema.PROBLEMS)
        if problems is None
        else schema.conform(_by_line(problems), schema.PROBLEMS),
    }


def parse_bytes(data: bytes | Path) -> tuple[dict[str, pl.DataFrame], RunMeta]:
    """Parse a whole log (its bytes, or the path of a plain file). Returns the tables and
    facts about the text itself.

    A last line without its newline is a line still being written: it is reported as a
    problem and never parsed as data (a cut-off number would parse as a wrong value).
    """
    data, wide, undecodable = decode(data)
    lines, rest, invalid = read_lines(data)
    chunk, _, _ = scan_lines(lines, ScanState(), final=True)
    tables = finalize([chunk])
    n = lines.height
    facts = RunMeta(
        truncated=bool(rest),
        n_lines=n + bool(rest),
        invalid_utf8=invalid or undecodable,
        line_kinds=line_kinds([chunk]),
    )
    if wide is not None:
        facts["encoding"] = wide
    if rest:
        tables["problems"] = pl.concat(
            [
                tables["problems"],
                schema.conform(
                    pl.DataFrame(
                        {
                            "line_no": [n + 1],
                            "text": [rest[:PROBLEM_TEXT_MAX]],
                            "reason": ["incomplete last line (log still being written?)"],
                        }
                    ),
                    schema.PROBLEMS,
                ),
            ]
        )
    return tables, facts


def decode(data: bytes | Path) -> tuple[bytes | Path, str | None, bool]:
    """A log in a wide encoding (UTF-16/32) as UTF-8 bytes, with the encoding's name and
    whether some of it could not be decoded; any other log as it is."""
    codec, skip = (
        encoding.sniff_file(data)
        if isinstance(data, Path)
        else encoding.sniff(data[: encoding.SNIFF_BYTES])
    )
    if codec is None:
        return data, None, False
    utf8, invalid = encoding.to_utf8(data, codec, skip)
    return utf8, encoding.NAMES[codec], invalid


def parse_text(text: str) -> tuple[dict[str, pl.DataFrame], RunMeta]:
    """`parse_bytes` for text already in memory."""
    return parse_bytes(text.encode("utf-8", errors="surrogatepass"))
