"""Trainer log text → typed tables, vectorized with Polars.

Every line ends up in exactly one place: a data table (`steps`, `layers`, `traces`,
`quality`, `lr_checks`, `generations`), the `events` table (run-level lines and the
stderr noise mixed into the file), or `problems` (with its line number and a reason).
Blank lines are the only lines that leave no row.

Parsing is split in two so a growing log can be followed cheaply:
`scan_lines` turns a chunk of complete lines into raw rows (the regex work, proportional
to the chunk), carrying a small `ScanState` across chunks; `finalize` concatenates raw
chunks, resolves resumed steps and derives run metadata (cheap Polars operations).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from ponder_parse import line_formats as fmt
from ponder_parse import schema

PROBLEM_TEXT_MAX = 300

def _event_markers() -> tuple[tuple[str, pl.Expr], ...]:
    t = pl.col("text")
    # Order matters only where one line could carry two markers: the first wins.
    return (
        ("init", t.str.starts_with("INIT |")),
        ("deadband", t.str.contains("[DEADBAND ENGAGED]", literal=True)),
        (
            "deadband_bounds",
            t.str.contains(r"^\s*(?:Controller now uses a|A)symmetric bounds: TARGET_K="),
        ),
        ("checkpoint", t.str.contains("Checkpoint saved:", literal=True)),
        (
            "resume",
            t.str.contains("Loading checkpoint:", literal=True)
            | t.str.contains("Loaded checkpoint from", literal=True)
            | t.str.contains("Resuming from step", literal=True)
            | t.str.contains("Starting Training Loop", literal=True),
        ),
        (
            "restored_lambda",
            t.str.contains("Restored λ_p", literal=True)
            | t.str.contains("Restored compute price", literal=True),
        ),
        ("cli_override", t.str.contains("CLI Override:", literal=True)),
        ("pause", t.str.starts_with("[PAUSE]")),
        ("json_dump_failed", t.str.starts_with("JSON Dump failed:")),
        ("generation_failed", t.str.starts_with("Generation failed:")),
    )


# Line kinds whose content is data: a line of such a kind that does not match its full
# pattern is reported as a problem rather than silently dropped.
DATA_KINDS = ("step", "layer", "trace", "quality", "lr_check")


@dataclass(frozen=True)
class ScanState:
    """What a chunk needs to know about the lines before it."""

    line_no: int = 0  # lines consumed so far (the next line is line_no + 1)
    step: int | None = None  # step of the latest step line, for lines that follow it
    segment: int = 0  # resume segment of the latest step line
    resume_pending: bool = False  # a resume line was seen after the latest step line


@dataclass
class RawChunk:
    """Rows produced from one chunk of lines, not yet deduplicated across resumes."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)


def split_lines(text: str) -> tuple[list[str], str]:
    """Complete lines and the unterminated remainder (a line still being written)."""
    lines = text.split("\n")
    rest = lines.pop()
    return lines, rest


def _lines_frame(lines: list[str], first_line_no: int) -> pl.DataFrame:
    df = pl.DataFrame({"text": lines}, schema={"text": pl.String}).with_row_index(
        "line_no", offset=first_line_no
    )
    df = df.with_columns(pl.col("line_no").cast(pl.Int64))
    # CRLF endings, then carriage-return overwrites (progress bars): each CR-separated
    # segment is looked at on its own, under the physical line's number.
    df = df.with_columns(pl.col("text").str.strip_chars_end("\r"))
    if df.height and df["text"].str.contains("\r", literal=True).any():
        df = (
            df.with_columns(pl.col("text").str.split("\r"))
            .explode("text")
            .filter((pl.col("text") != "") | (pl.col("line_no").is_first_distinct()))
        )
    return df


def _classify(df: pl.DataFrame) -> pl.DataFrame:
    """Give every line a `kind`; generation and stderr blocks claim their lines first."""
    t = pl.col("text")
    blank = t.str.strip_chars() == ""
    step = t.str.starts_with("STEP: ") | t.str.starts_with("[AUDIT] STEP: ")
    layer = t.str.contains(r"^\s*L\d+: ")
    trace = t.str.contains(r"^\s*L\d+ s_trace:")
    quality = t.str.contains(r"^\s*RECURRENCE QUALITY:")
    lr_check = t.str.starts_with("LR CHECK:")
    gen_header = t.str.contains(fmt.GEN_HEADER)
    gen_close = t.str.contains(fmt.GEN_CLOSE)
    gen_content = (
        t.str.starts_with("[GEN ")
        | t.str.starts_with("  Prompt (")
        | t.str.starts_with("  Output (")
        | t.str.starts_with("    ")
        | blank
    )
    tb_start = (
        t.str.starts_with("Traceback (most recent call last)")
        | t.str.starts_with("During handling of the above exception")
        | t.str.starts_with("The above exception was the direct cause")
        | t.str.contains(fmt.WARNING)
    )

    df = df.with_columns(
        _blank=blank,
        _step=step,
        _layer=layer,
        _trace=trace,
        _quality=quality,
        _lr=lr_check,
        _gh=gen_header,
        _gc=gen_close,
        _gcontent=gen_content,
        _tb=tb_start,
    )
    known_data = pl.col("_step") | pl.col("_layer") | pl.col("_trace") | pl.col("_quality")

    # Generation block: a header, then content lines, up to and including a closing
    # rule of `=`. Anything else ends the block early (a crashed generation).
    gen_break = (
        pl.col("_gh")
        | ~(pl.col("_gcontent") | pl.col("_gc"))
        | pl.col("_gc").shift(1, fill_value=False)
    )
    df = df.with_columns(_ggrp=gen_break.cum_sum())
    df = df.with_columns(
        _in_gen=pl.col("_gh").first().over("_ggrp"),
        _gen_closed=pl.col("_gc").last().over("_ggrp"),
    )
    # stderr block: a traceback or warning, then indented lines that are not our own.
    tb_content = t.str.starts_with(" ") & ~known_data & ~pl.col("_blank")
    df = df.with_columns(_tgrp=(pl.col("_tb") | ~tb_content).cum_sum())
    df = df.with_columns(_in_tb=pl.col("_tb").first().over("_tgrp") & ~pl.col("_in_gen"))

    kind = pl.when(pl.col("_in_gen")).then(pl.lit("generation"))
    for name, flag in (
        ("step", "_step"),
        ("layer", "_layer"),
        ("trace", "_trace"),
        ("quality", "_quality"),
        ("lr_check", "_lr"),
    ):
        kind = kind.when(pl.col(flag)).then(pl.lit(name))
    kind = kind.when(pl.col("_in_tb")).then(pl.lit("traceback"))
    for name, expr in _event_markers():
        kind = kind.when(expr).then(pl.lit(name))
    kind = (
        kind.when(pl.col("_blank"))
        .then(pl.lit("blank"))
        .when(t.str.contains(fmt.EXCEPTION))
        .then(pl.lit("traceback"))
        .when(t.str.contains(fmt.PROGRESS))
        .then(pl.lit("progress"))
        .otherwise(pl.lit("unknown"))
    )
    return df.with_columns(kind=kind)


def _extract(df: pl.DataFrame, pattern: str, required: str) -> pl.DataFrame:
    """Named groups of `pattern` as string columns, plus `_ok`: the line matched, which
    shows as the `required` (never optional) group being present."""
    out = df.with_columns(pl.col("text").str.extract_groups(pattern).alias("_m")).unnest("_m")
    return out.with_columns(_ok=pl.col(required).is_not_null())


def _floats(names: list[str] | tuple[str, ...]) -> list[pl.Expr]:
    return [pl.col(n).cast(pl.Float64, strict=False) for n in names]


def _percent(names: tuple[str, ...]) -> list[pl.Expr]:
    return [(pl.col(n) / 100.0).alias(n) for n in names]


def _problem_rows(df: pl.DataFrame, reason: pl.Expr) -> pl.DataFrame:
    return df.select(
        "line_no",
        pl.col("text").str.slice(0, PROBLEM_TEXT_MAX),
        reason.alias("reason"),
    )


def scan_lines(
    lines: list[str], state: ScanState = ScanState(), *, final: bool = True
) -> tuple[RawChunk, ScanState, int]:
    """Parse a chunk of complete lines.

    Returns the raw rows, the state for the next chunk, and how many lines were consumed.
    When `final` is false, an open generation or stderr block at the end of the chunk is
    left unconsumed, so the caller can offer those lines again once more have arrived.
    """
    df = _classify(_lines_frame(lines, state.line_no + 1))
    consumed = len(lines)
    if not final and df.height:
        last = df.row(df.height - 1, named=True)
        hold_from: int | None = None
        if last["_in_gen"] and not last["_gen_closed"]:
            hold_from = int(df.filter(pl.col("_ggrp") == last["_ggrp"])["line_no"].min())
        elif last["kind"] == "traceback" and last["_in_tb"]:
            hold_from = int(df.filter(pl.col("_tgrp") == last["_tgrp"])["line_no"].min())
        if hold_from is not None and hold_from > state.line_no + 1:
            consumed = hold_from - state.line_no - 1
            df = df.filter(pl.col("line_no") < hold_from)
        elif hold_from is not None:
            # The whole chunk is one open block: nothing can be decided yet.
            return RawChunk({}), state, 0

    tables: dict[str, pl.DataFrame] = {}
    problems: list[pl.DataFrame] = []

    # --- steps, and the step/segment context every other line inherits -------------
    step_df = _extract(df.filter(pl.col("kind") == "step"), fmt.STEP, "step")
    problems.append(
        _problem_rows(step_df.filter(~pl.col("_ok")), pl.lit("malformed step line"))
    )
    step_df = step_df.filter(pl.col("_ok"))

    ctx = (
        df.select("line_no", "kind")
        .join(step_df.select("line_no", pl.col("step").cast(pl.Int64)), on="line_no", how="left")
        .unique("line_no", keep="first", maintain_order=True)
    )
    ctx = ctx.with_columns(_resume=pl.col("kind") == "resume")
    # Segment: a step line starts a new segment when its number does not exceed the
    # previous step line's (the log was appended after a resume) or a resume line
    # stands between the two.
    ctx = ctx.with_columns(
        _resumes_before=pl.col("_resume").cum_sum().cast(pl.Int64)
        + (1 if state.resume_pending else 0)
    )
    srows = ctx.filter(pl.col("step").is_not_null())
    prev_step = pl.col("step").shift(1, fill_value=pl.lit(state.step, dtype=pl.Int64))
    prev_resumes = pl.col("_resumes_before").shift(1, fill_value=0)
    new_seg = (
        (pl.col("step") <= prev_step).fill_null(False)
        | ((pl.col("_resumes_before") > prev_resumes) & prev_step.is_not_null())
    )
    srows = srows.with_columns(
        segment=(new_seg.cast(pl.Int32).cum_sum() + state.segment).cast(pl.Int32)
    )
    ctx = ctx.join(srows.select("line_no", "segment"), on="line_no", how="left").with_columns(
        pl.col("step").forward_fill().fill_null(pl.lit(state.step, dtype=pl.Int64)),
        pl.col("segment").forward_fill().fill_null(state.segment).cast(pl.Int32),
    )
    df = df.join(ctx.select("line_no", "step", "segment"), on="line_no", how="left")

    if step_df.height:
        step_df = step_df.join(srows.select("line_no", "segment"), on="line_no", how="left")
        floats = [c for c, d in schema.STEPS.items() if d == pl.Float64]
        tables["steps"] = step_df.select(
            "line_no",
            pl.col("step").cast(pl.Int64),
            (pl.col("audit_pre").is_not_null() | pl.col("audit_post").is_not_null()).alias(
                "audit"
            ),
            *_floats(floats),
            pl.col("db").is_not_null().alias("deadband_active"),
            "segment",
        ).with_columns(_percent(fmt.STEP_PERCENT_COLUMNS))

    # --- per-layer lines --------------------------------------------------------------
    lay = _extract(df.filter(pl.col("kind") == "layer"), fmt.LAYER, "layer")
    problems.append(_problem_rows(lay.filter(~pl.col("_ok")), pl.lit("malformed layer line")))
    lay = lay.filter(pl.col("_ok"))
    if lay.height:
        floats = [c for c, d in schema.LAYERS.items() if d == pl.Float64]
        tables["layers"] = lay.select(
            "line_no",
            "step",
            "segment",
            pl.col("layer").cast(pl.Int32),
            pl.col("k_exec").cast(pl.Int32),
            *_floats(floats),
        ).with_columns(_percent(fmt.LAYER_PERCENT_COLUMNS))

    # --- survival traces --------------------------------------------------------------
    tr = _extract(df.filter(pl.col("kind") == "trace"), fmt.TRACE, "layer")
    problems.append(_problem_rows(tr.filter(~pl.col("_ok")), pl.lit("malformed s_trace line")))
    tr = tr.filter(pl.col("_ok"))
    if tr.height:
        tables["traces"] = tr.select(
            "line_no",
            "step",
            "segment",
            pl.col("layer").cast(pl.Int32),
            pl.col("values")
            .str.strip_chars()
            .str.split(",")
            .list.eval(pl.element().str.strip_chars().cast(pl.Float64, strict=False))
            .alias("s_trace"),
        )

    # --- recurrence quality -------------------------------------------------------------
    q = _extract(df.filter(pl.col("kind") == "quality"), fmt.QUALITY, "delta_ce")
    problems.append(
        _problem_rows(q.filter(~pl.col("_ok")), pl.lit("malformed RECURRENCE QUALITY line"))
    )
    q = q.filter(pl.col("_ok"))
    if q.height:
        tables["quality"] = q.select(
            "line_no",
            "step",
            "segment",
            *_floats(["delta_ce", "delta_h", "coupon"]),
            "status",
            pl.col("conf").is_not_null().alias("confidence"),
        )

    # --- LR checks (carry their own step) -------------------------------------------------
    lr = _extract(df.filter(pl.col("kind") == "lr_check").drop("step"), fmt.LR_CHECK, "step")
    problems.append(_problem_rows(lr.filter(~pl.col("_ok")), pl.lit("malformed LR CHECK line")))
    lr = lr.filter(pl.col("_ok"))
    if lr.height:
        tables["lr_checks"] = lr.select(
            "line_no",
            pl.col("step").cast(pl.Int64),
            "segment",
            pl.col("lr").cast(pl.Float64, strict=False),
            "phase",
        )

    # --- generations ---------------------------------------------------------------------
    gen = df.filter(pl.col("kind") == "generation")
    if gen.height:
        tables["generations"] = _generations(gen)

    # --- events: run-level lines and stderr noise ----------------------------------------
    ev = df.filter(
        ~pl.col("kind").is_in([*DATA_KINDS, "generation", "blank", "unknown"])
    )
    if ev.height:
        # A progress bar redraws itself many times on one line: keep its last state.
        ev = ev.filter(
            (pl.col("kind") != "progress") | pl.col("line_no").is_last_distinct()
        )
        tables["events"] = ev.select(
            "line_no",
            _event_step().alias("step"),
            "kind",
            pl.col("text"),
        )

    unknown = df.filter(pl.col("kind") == "unknown")
    problems.append(_problem_rows(unknown, pl.lit("unrecognized line")))
    problems = [p for p in problems if p.height]
    if problems:
        tables["problems"] = pl.concat(problems).sort("line_no")

    # --- state for the next chunk ------------------------------------------------------------
    last_step_row = srows.tail(1)
    new_state = replace(state, line_no=state.line_no + consumed)
    if last_step_row.height:
        resumes_after = ctx.filter(
            (pl.col("line_no") > last_step_row["line_no"][0]) & pl.col("_resume")
        ).height
        new_state = replace(
            new_state,
            step=int(last_step_row["step"][0]),
            segment=int(last_step_row["segment"][0]),
            resume_pending=resumes_after > 0,
        )
    elif (df["kind"] == "resume").any():
        new_state = replace(new_state, resume_pending=state.step is not None)
    return RawChunk(tables), new_state, consumed


def _event_step() -> pl.Expr:
    """The step an event line belongs to: the one it names, else the latest step line's."""
    t = pl.col("text")
    named = (
        pl.when(pl.col("kind") == "checkpoint")
        .then(t.str.extract(fmt.CHECKPOINT_STEP))
        .when(pl.col("kind").is_in(["resume", "pause"]))
        .then(t.str.extract(r"step (\d+)"))
        .cast(pl.Int64, strict=False)
    )
    return pl.coalesce(named, pl.col("step"))


def _generations(gen: pl.DataFrame) -> pl.DataFrame:
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
        .when(pl.col("_sample").is_not_null() & pl.col("text").str.starts_with("[GEN "))
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
        _content=pl.when(content).then(t.str.strip_prefix("    "))
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
        pl.col("prompt").str.strip_chars_end("\n"),
        "output_tokens",
        pl.col("output").str.strip_chars_end("\n"),
    )


def _concat(chunks: list[RawChunk], name: str) -> pl.DataFrame | None:
    parts = [c.tables[name] for c in chunks if name in c.tables]
    if not parts:
        return None
    return pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]


def _latest(df: pl.DataFrame | None, keys: list[str], s: dict[str, pl.DataType]) -> pl.DataFrame:
    """Keep the later occurrence of each key (a resumed run re-logs steps) and sort."""
    if df is None:
        return schema.empty(s)
    out = df.sort("line_no").unique(keys, keep="last", maintain_order=True).sort(keys)
    return schema.conform(out, s)


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
        else schema.conform(events.sort("line_no"), schema.EVENTS),
        "problems": schema.empty(schema.PROBLEMS)
        if problems is None
        else schema.conform(problems.sort("line_no"), schema.PROBLEMS),
    }


def parse_text(text: str) -> tuple[dict[str, pl.DataFrame], dict[str, Any]]:
    """Parse a whole log. Returns the tables and facts about the text itself.

    A last line without its newline is a line still being written: it is reported as a
    problem and never parsed as data (a cut-off number would parse as a wrong value).
    """
    lines, rest = split_lines(text)
    chunk, _, _ = scan_lines(lines, ScanState(), final=True)
    tables = finalize([chunk])
    facts: dict[str, Any] = {"truncated": bool(rest), "n_lines": len(lines) + bool(rest)}
    if rest:
        tables["problems"] = pl.concat(
            [
                tables["problems"],
                schema.conform(
                    pl.DataFrame(
                        {
                            "line_no": [len(lines) + 1],
                            "text": [rest[:PROBLEM_TEXT_MAX]],
                            "reason": ["incomplete last line (log still being written?)"],
                        }
                    ),
                    schema.PROBLEMS,
                ),
            ]
        )
    return tables, facts
