"""The trainer's line format as data: every data line kind, field by field, and the
literal markers of the event lines.

The parser (`ponder_parse.parse.scan`), the writers (`ponder_parse.format.writer`, which
the simulator and the tests print with) and the reference regexes below are all derived
from these descriptions, so adding or renaming a field is one edit here. The shapes are
the trainers' own f-strings (see the log format notes); the tests in `tests/format/` hold
the writers to real example lines byte for byte.

A line is a sequence of segments joined by ` | `; a segment is a sequence of items, each
a field (its label, the value printed with the trainer's format spec, a suffix) or a flag
(a literal printed when a condition holds). Blocks group segments the trainer prints
together and, when optional, only sometimes.

All patterns are Rust-regex compatible (no look-around, no back-references) because
Polars evaluates them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ponder_parse import schema

# Data-line patterns use ASCII classes ([0-9], [ \t]): Unicode \d and \s make the regex
# automaton several times larger and the match measurably slower.
# A number as Python formats it: fixed, exponent, signed, or a non-finite value
# (`nan`, `+nan`, `inf`, `-inf`) from a diverged run. Non-finite values are data.
NUM = r"[-+]?(?:[nN]a[nN]|[iI]nf|[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)"
INT = r"[0-9]+"  # integers the trainer prints (steps, layer ids, pass counts) have no sign


@dataclass(frozen=True)
class Field:
    """One printed value.

    `spec` is the trainer's format spec; `"d"` marks an integer, `"s"` a word (one of
    `choices` when given). A field printed with a `%` (by its spec, or as its suffix) is
    stored as a fraction: `P_NR: 3.2%` is 0.032.
    """

    name: str  # column of the parsed tables (the stats.json vocabulary)
    label: str  # literal text right before the value, inside its segment
    spec: str
    suffix: str = ""  # literal text right after the value
    choices: tuple[str, ...] = ()
    sep: str = ""  # a list of values joined by this (the survival trace)

    @property
    def integer(self) -> bool:
        return self.spec == "d"

    @property
    def text(self) -> bool:
        return self.spec == "s"

    @property
    def percent(self) -> bool:
        return self.spec.endswith("%") or self.suffix == "%"

    @property
    def padded(self) -> bool:
        """Right-aligned to a width (`dt: {dt:7.2f}ms` prints `dt:  420.00ms`)."""
        return self.spec[:1].isdigit()

    @property
    def end(self) -> str:
        """The literal text after the value as printed (a `%` spec prints its own `%`)."""
        return ("%" if self.spec.endswith("%") else "") + self.suffix


@dataclass(frozen=True)
class Flag:
    """A literal the trainer prints when a condition holds (`[DB]`, `[AUDIT]`)."""

    name: str  # boolean column
    text: str


Item = Field | Flag
Segment = tuple[Item, ...]


@dataclass(frozen=True)
class Block:
    """Segments printed together; an optional block is present when its first field is."""

    name: str
    segments: tuple[Segment, ...]
    optional: bool = False

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(i for seg in self.segments for i in seg if isinstance(i, Field))


@dataclass(frozen=True)
class LineFormat:
    """One data line kind.

    `indent` is what the trainer prints in front (a reader accepts up to that many
    spaces); `start` is the regex that makes a line this kind, so a line that starts like
    one but does not parse is reported as a malformed line of this kind.
    """

    kind: str
    start: str
    blocks: tuple[Block, ...]
    indent: str = ""
    sep: str = " | "

    def block(self, name: str) -> Block:
        return next(b for b in self.blocks if b.name == name)

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(f for b in self.blocks for f in b.fields)

    @property
    def flags(self) -> tuple[Flag, ...]:
        return tuple(
            i for b in self.blocks for seg in b.segments for i in seg if isinstance(i, Flag)
        )

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def required(self) -> tuple[str, ...]:
        """Fields every valid line has (those outside optional blocks)."""
        return tuple(f.name for b in self.blocks if not b.optional for f in b.fields)

    @property
    def start_pattern(self) -> str:
        """The anchored recogniser: at most the trainer's indent, then `start`."""
        lead = f" {{0,{len(self.indent)}}}" if self.indent else ""
        return f"^{lead}{self.start}"


def pieces(line: LineFormat, seps: tuple[str, ...] = (" | ",)) -> list[list[Item | str]]:
    """The items of a line as the parser's split cuts it: the text is split on every one
    of `seps`, so literal text (labels, suffixes, segment separators) is cut where it
    holds one. This gives each field's part number and the exact label in front of it."""
    out: list[list[Item | str]] = [[]]

    def add_text(text: str) -> None:
        for sep in seps[1:]:
            text = text.replace(sep, seps[0])
        first, *rest = text.split(seps[0])
        if first:
            out[-1].append(first)
        for chunk in rest:
            out.append([chunk] if chunk else [])

    for n, (_, segment, item) in enumerate(field_items(line)):
        if n and item is segment[0]:
            add_text(line.sep)
        if isinstance(item, Flag):
            out[-1].append(item)
            continue
        add_text(item.label)
        out[-1].append(item)
        if item.end:
            add_text(item.end)
    return out


# --- Level 1: the step line ------------------------------------------------------------

AUDIT_FLAG = "[AUDIT]"
# The guide prints the audit flag before `STEP:`; real logs after the step number. A
# reader accepts both.
GUIDE_AUDIT_PREFIX = f"{AUDIT_FLAG} "
DEADBAND_FLAG = "[DB]"

STEP_CORE = Block(
    "core",
    (
        (Field("step", "STEP: ", "d"), Flag("audit", f" {AUDIT_FLAG}")),
        (Field("tot_loss", "TOT: ", ".4f"),),
        (Field("lm_loss", "LM: ", ".4f"),),
        (
            Field("total_ponder", "PONDER: ", ".6f"),  # relu(raw - rwd): never below 0
            Field("ponder_raw", " (RAW: ", ".6f"),
            Field("reward", ", RWD: ", ".6f", suffix=")"),
        ),
        (Field("lr", "LR: ", ".4e"),),
        (Field("grad_norm", "GRAD: ", ".4f"),),
        (Field("lambda_p", "λ_p: ", ".2e"), Flag("deadband_active", DEADBAND_FLAG)),
        (Field("ctrl_err", "CTRL_ERR: ", "+.3f"),),  # avg_k - TARGET_K
        (Field("p_near_clamp", "P_NR: ", ".1%"),),
    ),
)
# model3b only.
STEP_MTP = Block(
    "mtp",
    ((Field("mtp_loss", "MTP: ", ".4f"),), (Field("aux_loss", "AUX: ", ".4f"),)),
    optional=True,
)
# smollm, when the model reports it.
STEP_BATON = Block(
    "baton",
    ((Field("baton", "BATON: ", ".3f"), Field("baton_lam", " (lam=", ".3f", suffix=")")),),
    optional=True,
)
# When per-layer stats exist. The trainer prints PL/LM already in percent.
STEP_AVGS = Block(
    "avgs",
    (
        (Field("pl_lm", "PL/LM: ", ".2f", suffix="%"),),
        (
            Field("avg_exec", "AVGS: exec=", ".2f"),
            Field("avg_k", ", k=", ".2f"),
            Field("avg_gap", ", gap=", ".2f"),
        ),
    ),
    optional=True,
)
STEP_TIMING = Block(
    "timing",
    (
        (Field("dt_ms", "dt: ", "7.2f", suffix="ms"),),
        (Field("tok_per_sec", "tok/sec: ", "9.2f"),),
    ),
)
STEP_LINE = LineFormat("step", "STEP: ", (STEP_CORE, STEP_MTP, STEP_BATON, STEP_AVGS, STEP_TIMING))

# --- Level 2: the per-layer line -------------------------------------------------------
# The λ_p here is the applied price (0 before the ponder phase), not the controller state.

LAYER_LINE = LineFormat(
    "layer",
    r"L[0-9]+: ",
    (
        Block(
            "layer",
            (
                (
                    Field("layer", "L", "d"),  # can have two digits
                    Field("k_exec", ": k_exec=", "d"),
                    Field("k", ", expected_k=", ".2f"),
                    Field("s_final", ", s_fin=", ".3f"),
                ),
                (
                    Field("avg_exec_token", "tok: avg=", ".2f"),
                    Field("p95_exec_token", ", p95=", ".2f"),
                ),
                (
                    Field("frac_ge2", "tail: ≥2:", ".2%"),
                    Field("frac_ge3", ", ≥3:", ".2%"),
                    Field("frac_ge4", ", ≥4:", ".2%"),
                ),
                (Field("ent", "ent=", ".4f"),),
                (
                    Field("p_mean", "p_mu=", ".2f"),
                    Field("p_std", ", p_std=", ".3f"),
                    Field("d_rel", ", d_rel=", ".3f"),
                ),
                (Field("h_diff", "Δh=", ".3f"), Field("p_diff", ", Δp=", ".2f")),
                (Field("ponder_signal", "ponder=", ".3f"), Field("lambda_p", ", λ_p=", ".2e")),
            ),
        ),
    ),
    indent=" ",
)

# --- Level 3: survival trace and LR check ------------------------------------------------
# One trace value per pass that ran: at most Kmax, fewer when the loop stopped early.

TRACE_LINE = LineFormat(
    "trace",
    r"L[0-9]+ s_trace:",
    (
        Block(
            "trace",
            (
                (
                    Field("layer", "L", "d"),
                    Field("s_trace", " s_trace: [", ".2f", suffix="]", sep=", "),
                ),
            ),
        ),
    ),
    indent="  ",
)
LR_PHASES = ("warmup", "cosine", "done")
LR_CHECK_LINE = LineFormat(
    "lr_check",
    "LR CHECK:",
    (
        Block(
            "lr_check",
            (
                (
                    Field("step", "LR CHECK: (", "d"),
                    Field("lr", ", ", ".2e"),
                    Field("phase", ", phase=", "s", suffix=")"),
                ),
            ),
        ),
    ),
)

# --- Level 4: recurrence quality -------------------------------------------------------
# ECONOMIC WIN / TAX ONLY on policy steps (ΔCE > 0 is a win), AUDIT-POS / AUDIT-NEG on
# audit steps; CONFIDENCE+ iff ΔCE > 0 and ΔH < 0 on a policy step.

QUALITY_STATUSES = schema.QUALITY_STATUSES
QUALITY_LINE = LineFormat(
    "quality",
    "RECURRENCE QUALITY:",
    (
        Block(
            "quality",
            (
                (Field("delta_ce", "RECURRENCE QUALITY: ΔCE=", ".6f"),),
                (Field("delta_h", "ΔH=", ".4f"),),
                (
                    Field("coupon", "COUPON: ", ".6f"),
                    Field("status", " [", "s", suffix="]", choices=QUALITY_STATUSES),
                    Flag("confidence", " [CONFIDENCE+]"),
                ),
            ),
        ),
    ),
    indent="  ",
)

DATA_LINES = (STEP_LINE, LAYER_LINE, TRACE_LINE, QUALITY_LINE, LR_CHECK_LINE)


# --- reference regexes, derived ----------------------------------------------------------


def _value_pattern(f: Field) -> str:
    if f.integer:
        return INT
    if f.choices:
        return "|".join(re.escape(c) for c in f.choices)
    if f.text:
        return r"\w+"
    if f.sep:  # a possibly empty list, spaces tolerated around the separators
        sep = re.escape(f.sep.strip())
        return rf"[ \t]*(?:{NUM}(?:[ \t]*{sep}[ \t]*{NUM})*)?[ \t]*"
    return NUM


def _items_pattern(segments: tuple[Segment, ...]) -> str:
    out: list[str] = []
    for n, segment in enumerate(segments):
        if n:
            out.append(re.escape(" | "))
        for item in segment:
            if isinstance(item, Flag):
                out.append(f"(?P<{item.name}>{re.escape(item.text)})?")
                continue
            pad = " *" if item.padded else ""  # right-aligned: spaces before the number
            value = f"{pad}(?P<{item.name}>{_value_pattern(item)})"
            out.append(re.escape(item.label) + value + re.escape(item.end))
    return "".join(out)


def line_pattern(line: LineFormat) -> str:
    """The whole-line regex of a line kind, every field a named group."""
    lead = "[ \\t]*" if line.indent else ""
    body: list[str] = []
    for n, block in enumerate(line.blocks):
        text = _items_pattern(block.segments)
        if n:
            text = re.escape(line.sep) + text
        body.append(f"(?:{text})?" if block.optional else text)
    head = f"(?P<audit_pre>{re.escape(GUIDE_AUDIT_PREFIX)})?" if line is STEP_LINE else ""
    return f"^{lead}{head}{''.join(body)}[ \\t]*$"


STEP = line_pattern(STEP_LINE)
LAYER = line_pattern(LAYER_LINE)
TRACE = line_pattern(TRACE_LINE)
LR_CHECK = line_pattern(LR_CHECK_LINE)
QUALITY = line_pattern(QUALITY_LINE)


# --- run-level lines ---------------------------------------------------------------------

INIT_LEAD = "INIT |"
# What a fresh run prints first; the two trainers print different facts.
INIT_MODEL3B = (
    "INIT | PARAMS: {params} | EMB: {emb} | D={d_model} L={n_layers_cfg} H={n_heads} "
    "EXPERTS={experts} | PONDER={ponder}"
)
INIT_SMOLLM = "INIT | PARAMS: {params} | K: {K}"
INIT_PARAMS = r"PARAMS: (\d+)"
# Read by search, leniently: the INIT line is informational and varies between versions.
INIT_FIELDS = {
    "emb": r"EMB: ([^|]+?)\s*(?:\||$)",
    "d_model": r"\bD=(\d+)\s",
    "n_layers_cfg": r"\bL=(\d+)",
    "n_heads": r"\bH=(\d+)",
    "experts": r"EXPERTS=(\S+)",
    "ponder": r"PONDER=(\w+)",
    "K": r"\bK: (\d+)",
}

# Event lines: the literal texts the trainer prints, which the writers print and the
# parser looks for.
DEADBAND_ENGAGED = "[DEADBAND ENGAGED]"
DEADBAND_LINE = "🔒 " + DEADBAND_ENGAGED + " λ_p={lam:.2e} stable for {patience} steps"
# The bounds line after it: model3b `   Asymmetric bounds: `, smollm
# `   Controller now uses asymmetric bounds: `.
BOUNDS_LEADS = {
    "model3b": "   Asymmetric bounds: ",
    "smollm": "   Controller now uses asymmetric bounds: ",
}
BOUNDS_LINE = "TARGET_K={target_k:.2f} ± [-{lower_pct:.1f}%, +{upper_pct:.1f}%]"
BOUNDS_MARK = r"^\s*(?:Controller now uses a|A)symmetric bounds: TARGET_K="
CHECKPOINT_SAVED = "Checkpoint saved:"
CHECKPOINT_LINE = "💾 " + CHECKPOINT_SAVED + " {path} (step={step}, λ_p={lam:.2e})"
# Milestone checkpoints name their step in the file name, not in the parentheses.
CHECKPOINT_MILESTONE_PATH = "checkpoints/{stem}_checkpoint_step_{step}.pt"
CHECKPOINT_MILESTONE_LINE = "💾 " + CHECKPOINT_SAVED + " {path} (λ_p={lam:.2e})"
LOADING_CHECKPOINT = "Loading checkpoint:"
LOADED_CHECKPOINT = "Loaded checkpoint from"
RESUMING_FROM = "Resuming from step"
STARTING_LOOP = "Starting Training Loop"
RESTORED_LAMBDA = "Restored λ_p"
RESTORED_PRICE = "Restored compute price"
RESTORED_PRICE_LINE = "📈 " + RESTORED_PRICE + " λ_p = {lam:.4e}"
# A resumed run fast-forwards its dataset to where the checkpoint left off.
INSTANT_JUMP = "Instant Jump:"
INSTANT_JUMP_LINE = "⏩ " + INSTANT_JUMP + " Slicing dataset from row {row} to {total}"
CLI_OVERRIDE = "CLI Override:"
RESUME_LINES = (
    "🔄 " + LOADING_CHECKPOINT + " {path}",
    "✅ " + LOADED_CHECKPOINT + " {path} at step {step}",
    "   📊 " + RESTORED_LAMBDA + " = {lam:.2e}",
    "⏩ " + RESUMING_FROM + " {step} (loss: {loss:.4f})",
)
START_LINE = "🚀 " + STARTING_LOOP + "..."
PAUSE = "[PAUSE]"
PAUSE_SIGNAL_LINE = PAUSE + " Received signal {signal}. Pausing after current step..."
PAUSE_SAVING_LINE = PAUSE + " Saving checkpoint at step {step} and exiting..."
JSON_DUMP_FAILED = "JSON Dump failed:"
GENERATION_FAILED = "Generation failed:"
GENERATION_FAILED_LINE = GENERATION_FAILED + " {message}"

# Generation samples: a header, per sample `[GEN n]`, prompt and output headers, text
# lines indented by four spaces, and a closing rule of 60 `=`.
GEN_RULE = "=" * 20
GEN_HEADER_LINE = GEN_RULE + " GENERATION STEP {step} " + GEN_RULE
GEN_CLOSE_LINE = "=" * 60
GEN_SAMPLE_LINE = "[GEN {sample}]"
GEN_PROMPT_LINE = "  Prompt ({tokens} tokens):"
GEN_OUTPUT_LINE = "  Output ({tokens} tokens):"
GEN_TEXT_INDENT = "    "
GEN_CONTENT_STARTS = ("[GEN ", "  Prompt (", "  Output (", GEN_TEXT_INDENT)

TARGET_K = rf"TARGET_K=({NUM})"
LAMBDA_VALUE = rf"λ_p\s*=\s*({NUM})"
# `(step=1500, …)`, or a milestone's file name `…_checkpoint_step_1000.pt`.
CHECKPOINT_STEP = r"(?:\(step=|_checkpoint_step_)(\d+)"
# The step a resume or pause line names: "Resuming from step 1250", "... at step 812".
NAMED_STEP = rf"(?:{RESUMING_FROM}|at step) (\d+)"
GEN_HEADER = r"^=+ GENERATION STEP (\d+) =+\s*$"
GEN_CLOSE = r"^={20,}\s*$"
GEN_SAMPLE = r"^\[GEN (\d+)\]\s*$"
GEN_PROMPT = r"^  Prompt \((\d+) tokens\):\s*$"
GEN_OUTPUT = r"^  Output \((\d+) tokens\):\s*$"


@dataclass(frozen=True)
class Marker:
    """How an event line is recognised: a literal it starts with or contains, or a regex."""

    text: str
    how: str = "contains"  # "contains", "starts" or "regex"


# Event kinds in order: where one line could carry two markers, the first kind wins.
EVENT_MARKERS: tuple[tuple[str, tuple[Marker, ...]], ...] = (
    ("init", (Marker(INIT_LEAD, "starts"),)),
    ("deadband", (Marker(DEADBAND_ENGAGED),)),
    ("deadband_bounds", (Marker(BOUNDS_MARK, "regex"),)),
    ("checkpoint", (Marker(CHECKPOINT_SAVED),)),
    (
        "resume",
        (
            Marker(LOADING_CHECKPOINT),
            Marker(LOADED_CHECKPOINT),
            Marker(RESUMING_FROM),
            Marker(INSTANT_JUMP),
            Marker(STARTING_LOOP),
        ),
    ),
    ("restored_lambda", (Marker(RESTORED_LAMBDA), Marker(RESTORED_PRICE))),
    ("cli_override", (Marker(CLI_OVERRIDE),)),
    ("pause", (Marker(PAUSE, "starts"),)),
    ("json_dump_failed", (Marker(JSON_DUMP_FAILED, "starts"),)),
    ("generation_failed", (Marker(GENERATION_FAILED, "starts"),)),
)

# Lines that other processes write into the same file (stderr redirected).
PROGRESS = r"\d+%\||\d+(?:\.\d+)?(?:it/s|s/it)\]"
WARNING_MARK = "Warning: "  # `file.py:12: UserWarning: ...`, matched literally (fast)
EXCEPTION = r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)\b(?::.*)?\s*$"


def field_items(line: LineFormat) -> Iterator[tuple[Block, Segment, Item]]:
    """Every item of a line kind with its block and segment, in print order."""
    for block in line.blocks:
        for segment in block.segments:
            for item in segment:
                yield block, segment, item
