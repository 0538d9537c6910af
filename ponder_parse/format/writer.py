"""Lines as the trainer prints them, written from the grammar.

The simulator prints its logs with these and the tests build their inputs with them, so
both follow the format the parser reads; `tests/format/` holds them to the trainer's real
example lines byte for byte.

Writers take the values as the parsed tables hold them (percent fields as fractions), so
a written line parses back to its values at print precision. A template per line kind and
set of optional blocks is built once: a simulated run prints tens of thousands of lines.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from ponder_parse.format import grammar as g

Values = Mapping[str, Any]


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


_BY_KIND = {line.kind: line for line in g.DATA_LINES}


@functools.cache
def _template(kind: str, present: tuple[str, ...]) -> str:
    """A `str.format` template of the line with the named blocks. Flags and lists are
    filled in as text, percent values scaled first (see `_conversions`). Keyed by kind:
    hashing a whole line description on every call would cost more than the print."""
    line = _BY_KIND[kind]
    out: list[str] = [_literal(line.indent)]
    first = True
    for block in line.blocks:
        if block.optional and block.name not in present:
            continue
        for segment in block.segments:
            if not first:
                out.append(_literal(line.sep))
            first = False
            for item in segment:
                if isinstance(item, g.Flag):
                    out.append(f"{{{item.name}}}")
                    continue
                spec = "" if item.sep or item.text else item.spec
                value = f"{{{item.name}:{spec}}}" if spec else f"{{{item.name}}}"
                out.append(_literal(item.label) + value + _literal(item.suffix))
    return "".join(out)


@functools.cache
def _conversions(kind: str) -> tuple[tuple[str, str, Any], ...]:
    """The values that are not printed as given: flags (their text or nothing), lists
    (joined), and percent values the trainer multiplies by 100 itself."""
    out: list[tuple[str, str, Any]] = []
    for _, _, item in g.field_items(_BY_KIND[kind]):
        if isinstance(item, g.Flag):
            out.append((item.name, "flag", item.text))
        elif item.sep:
            out.append((item.name, "list", item))
        elif item.percent and not item.spec.endswith("%"):
            out.append((item.name, "percent", None))
    return tuple(out)


def format_line(line: g.LineFormat, values: Values) -> str:
    """Any data line kind from its values; an optional block is printed when its first
    field's value is given (not None)."""
    present = tuple(
        b.name for b in line.blocks if b.optional and values.get(b.fields[0].name) is not None
    )
    fill = dict(values)
    for name, how, extra in _conversions(line.kind):
        if how == "flag":
            fill[name] = extra if values.get(name) else ""
        elif how == "list":
            fill[name] = extra.sep.join(format(v, extra.spec) for v in values[name])
        elif fill.get(name) is not None:
            # as the trainer computes it before printing `{pl:.2f}%`
            fill[name] = 100.0 * fill[name]
    return _template(line.kind, present).format_map(fill)


def format_step_line(values: Values) -> str:
    """`STEP: …` — keys are the `steps` columns; `audit` and `deadband_active` print their
    flags; `mtp_loss`, `baton`, `pl_lm` given (not None) print their optional blocks."""
    return format_line(g.STEP_LINE, values)


def format_layer_line(values: Values) -> str:
    """` L{i}: …` — keys are the `layers` columns."""
    return format_line(g.LAYER_LINE, values)


def format_trace_line(layer: int, s_trace: Sequence[float]) -> str:
    return format_line(g.TRACE_LINE, {"layer": layer, "s_trace": s_trace})


def format_lr_check_line(step: int, lr: float, phase: str) -> str:
    return format_line(g.LR_CHECK_LINE, {"step": step, "lr": lr, "phase": phase})


def quality_status(delta_ce: float, delta_h: float, audit: bool) -> tuple[str, bool]:
    """The status label and CONFIDENCE+ the trainer prints for a step's quality values."""
    if audit:
        return ("AUDIT-POS" if delta_ce > 0 else "AUDIT-NEG"), False
    if delta_ce > 0:
        return "ECONOMIC WIN", delta_h < 0
    return "TAX ONLY", False


def format_quality_line(
    delta_ce: float, delta_h: float, coupon: float, status: str, confidence: bool
) -> str:
    return format_line(
        g.QUALITY_LINE,
        {
            "delta_ce": delta_ce,
            "delta_h": delta_h,
            "coupon": coupon,
            "status": status,
            "confidence": confidence,
        },
    )


def format_init_line(variant: str, **facts: Any) -> str:
    """The first line of a fresh run: model3b takes params, emb, d_model, n_layers_cfg,
    n_heads, experts, ponder; smollm takes params and K."""
    template = g.INIT_MODEL3B if variant == "model3b" else g.INIT_SMOLLM
    return template.format(**facts)


def format_deadband_lines(
    variant: str, lam: float, patience: int, target_k: float, lower: float, upper: float
) -> list[str]:
    """The deadband engagement block (after an empty line); bounds are fractions."""
    bounds = g.BOUNDS_LINE.format(target_k=target_k, lower_pct=lower * 100, upper_pct=upper * 100)
    return [
        "",
        g.DEADBAND_LINE.format(lam=lam, patience=patience),
        g.BOUNDS_LEADS[variant] + bounds,
    ]


def format_checkpoint_line(path: str, step: int, lam: float) -> str:
    return g.CHECKPOINT_LINE.format(path=path, step=step, lam=lam)


def format_milestone_checkpoint_line(stem: str, step: int, lam: float) -> str:
    """The milestone form: the step is in the file name (`kronecker_checkpoint_step_1000.pt`),
    the parentheses hold λ_p only."""
    path = g.CHECKPOINT_MILESTONE_PATH.format(stem=stem, step=step)
    return g.CHECKPOINT_MILESTONE_LINE.format(path=path, lam=lam)


def format_resume_lines(path: str, step: int, lam: float, loss: float) -> list[str]:
    """What a restarted trainer prints after its INIT line, up to the training loop."""
    lines = [t.format(path=path, step=step, lam=lam, loss=loss) for t in g.RESUME_LINES]
    return [*lines, g.START_LINE]


def format_start_line() -> str:
    return g.START_LINE


def format_instant_resume_lines(row: int, total_rows: int, lam: float) -> list[str]:
    """What the trainer build of the real logs prints when it resumes, after its INIT line:
    no checkpoint or step is named; the dataset is fast-forwarded, the price restored, and
    the loop starts again (its step numbers restart from the checkpoint's)."""
    return [
        g.INSTANT_JUMP_LINE.format(row=row, total=total_rows),
        g.RESTORED_PRICE_LINE.format(lam=lam),
        g.START_LINE,
    ]


def format_pause_signal_line(signal: int = 2) -> str:
    return g.PAUSE_SIGNAL_LINE.format(signal=signal)


def format_pause_saving_line(step: int) -> str:
    return g.PAUSE_SAVING_LINE.format(step=step)


def format_generation_failed_line(message: str) -> str:
    return g.GENERATION_FAILED_LINE.format(message=message)


def format_generation_block(
    step: int, samples: Sequence[tuple[int, Sequence[str], int, Sequence[str]]]
) -> list[str]:
    """A generation block; each sample is (prompt tokens, prompt lines, output tokens,
    output lines)."""
    out = [g.GEN_HEADER_LINE.format(step=step)]
    for n, (prompt_tokens, prompt, output_tokens, output) in enumerate(samples, start=1):
        out.append(g.GEN_SAMPLE_LINE.format(sample=n))
        out.append(g.GEN_PROMPT_LINE.format(tokens=prompt_tokens))
        out += [g.GEN_TEXT_INDENT + ln for ln in prompt]
        out.append(g.GEN_OUTPUT_LINE.format(tokens=output_tokens))
        out += [g.GEN_TEXT_INDENT + ln for ln in output]
    out.append(g.GEN_CLOSE_LINE)
    return out
