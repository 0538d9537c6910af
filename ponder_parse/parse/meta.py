"""What a log says about its run as a whole: model size, layers, Kmax, TARGET_K, restarts.

Derived after parsing from the events and tables, so it is the same however the text
arrived (whole file, or appended chunks of a live run).
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from ponder_parse.format import grammar as fmt
from ponder_parse.run import RunMeta
from ponder_parse.schema import as_int


def _first_event(events: pl.DataFrame, kind: str) -> dict[str, Any] | None:
    rows = events.filter(pl.col("kind") == kind)
    return rows.row(0, named=True) if rows.height else None


def _num(pattern: str, text: str) -> float | None:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else None


def _init_fields(text: str) -> RunMeta:
    """The model facts of the INIT line; a field the line lacks stays absent."""
    out = RunMeta(init=text.strip())
    if m := re.search(fmt.INIT_PARAMS, text):
        out["params"] = int(m.group(1))
    found = {
        key: m.group(1).strip()
        for key, pattern in fmt.INIT_FIELDS.items()
        if (m := re.search(pattern, text))
    }
    texts = {"emb", "experts", "ponder"}
    ints = {k: int(v) for k, v in found.items() if k not in texts and v.isdigit()}
    if "emb" in found:
        out["emb"] = found["emb"]
    if "experts" in found:
        out["experts"] = found["experts"]
    if "ponder" in found:
        out["ponder"] = found["ponder"]
    if "d_model" in ints:
        out["d_model"] = ints["d_model"]
    if "n_layers_cfg" in ints:
        out["n_layers_cfg"] = ints["n_layers_cfg"]
    if "n_heads" in ints:
        out["n_heads"] = ints["n_heads"]
    if "K" in ints:
        out["K"] = ints["K"]
    return out


def detect_variant(filename: str, tables: dict[str, pl.DataFrame]) -> str:
    """model3b (Kronecker trainer) or smollm (Fourier trainer), from the strongest clue."""
    name = filename.lower()
    if "kronecker" in name:
        return "model3b"
    if "fourier" in name:
        return "smollm"
    init = _first_event(tables["events"], "init")
    if init is not None:
        if "EMB:" in init["text"] or "EXPERTS=" in init["text"]:
            return "model3b"
        if re.search(fmt.INIT_FIELDS["K"], init["text"]):
            return "smollm"
    steps = tables["steps"]
    if steps.height:
        if steps["mtp_loss"].is_not_null().any():
            return "model3b"
        return "smollm"
    return "model3b"


def target_k(events: pl.DataFrame, steps: pl.DataFrame) -> tuple[float, str] | None:
    """TARGET_K and where it was read (`deadband` or `ctrl_err`); None if the log never
    says. The one derivation: analyses of a run built without parsing call it too."""
    bounds = _first_event(events, "deadband_bounds")
    target = _num(fmt.TARGET_K, bounds["text"]) if bounds else None
    if target is not None:
        return target, "deadband"
    if not steps.height:
        return None
    # CTRL_ERR = avg_k - TARGET_K, both printed rounded: the median of the
    # difference, rounded to the print precision, recovers the constant.
    rec = steps.select((pl.col("avg_k") - pl.col("ctrl_err")).alias("t")).filter(
        pl.col("t").is_finite()
    )
    if not rec.height:
        return None
    return round(float(rec.select(pl.col("t").median()).item()), 2), "ctrl_err"


def resume_steps(events: pl.DataFrame, steps: pl.DataFrame | None = None) -> list[int]:
    """Steps the trainer resumed from, in log order.

    A trainer that names them (`Resuming from step 1250`) is read as it says. The build of
    the real logs names none: it prints `Starting Training Loop` again and its step numbers
    restart from the checkpoint, so there the resume step is the first step of each later
    segment of `steps` (whose rows are the later occurrences: they won)."""
    resumes = events.filter(
        (pl.col("kind") == "resume") & pl.col("text").str.contains(fmt.RESUMING_FROM, literal=True)
    )
    named = [int(s) for s in resumes["step"].drop_nulls().to_list()]
    if steps is None or not steps.height:
        return named
    n_segments = int(steps.select(pl.col("segment").max()).item() or 0)
    if len(named) >= n_segments:
        return named
    starts = (
        steps.filter(pl.col("segment") > 0)
        .group_by("segment")
        .agg(pl.col("step").min())
        .sort("segment")
    )
    return [int(s) for s in starts["step"].to_list()]


def checkpoints(events: pl.DataFrame) -> pl.DataFrame:
    """The checkpoints the log reports saving, in log order: `step`, `lambda_p`, `path`.

    Both of the trainer's forms: `… kronecker_latest.pt (step=1500, λ_p=1.20e-03)` and the
    milestone `… kronecker_checkpoint_step_1000.pt (λ_p=1.00e-04)`, whose step is in the
    file name (the event's step, read by the parser from either place)."""
    rows = events.filter(pl.col("kind") == "checkpoint")
    text = pl.col("text")
    return rows.select(
        "step",
        text.str.extract(fmt.LAMBDA_VALUE).cast(pl.Float64, strict=False).alias("lambda_p"),
        text.str.extract(rf"{re.escape(fmt.CHECKPOINT_SAVED)}\s*(\S+)").alias("path"),
    )


def kmax_of(tables: dict[str, pl.DataFrame], snapshot_layers: pl.DataFrame) -> int | None:
    """Kmax: the most passes the loop may run. The trainer stops a layer's loop early once
    nothing survives, so a trace or a layer line may show fewer passes than that (the most
    common trace length of a real run is 2 at Kmax 4): the longest trace and the largest
    `k_exec` the log shows are the run's Kmax as far as the log can tell."""
    found: list[int] = []
    traces = tables["traces"]
    for frame in (traces, snapshot_layers):
        if "s_trace" in frame.columns and frame["s_trace"].is_not_null().any():
            found.append(int(frame.select(pl.col("s_trace").list.len().max()).item()))
    layers = tables["layers"]
    if "k_exec" in layers.columns and layers["k_exec"].is_not_null().any():
        found.append(int(layers.select(pl.col("k_exec").max()).item()))
    return max(found) if found else None


def derive_meta(
    tables: dict[str, pl.DataFrame], facts: RunMeta, snapshot_layers: pl.DataFrame
) -> RunMeta:
    """The run's facts: those of its text (`facts`, from the parser) and those its
    events and tables state."""
    events, steps = tables["events"], tables["steps"]
    meta = RunMeta(**facts)

    init = _first_event(events, "init")
    if init is not None:
        meta.update(_init_fields(init["text"]))

    target = target_k(events, steps)
    if target is not None:
        meta["target_k"], meta["target_k_source"] = target

    deadband = _first_event(events, "deadband")
    if deadband is not None:
        meta["deadband_step"] = deadband["step"]
        meta["deadband_lambda_p"] = _num(fmt.LAMBDA_VALUE, deadband["text"])
    cli = _first_event(events, "cli_override")
    if cli is not None:
        meta["cli_lambda_p"] = _num(fmt.LAMBDA_VALUE, cli["text"])

    resumes = resume_steps(events, steps)
    segments = as_int(steps["segment"].max() or 0) if steps.height else 0
    meta["resume_steps"] = resumes
    meta["restarts"] = max(len(resumes), segments)
    saved = checkpoints(events)
    if saved.height:
        meta["last_checkpoint_step"] = saved["step"][-1]
        meta["last_checkpoint_lambda_p"] = saved["lambda_p"][-1]

    layers = tables["layers"]
    if layers.height:
        meta["n_layers"] = as_int(layers["layer"].max()) + 1
    elif snapshot_layers.height:
        meta["n_layers"] = snapshot_layers.height
    kmax = kmax_of(tables, snapshot_layers)
    if kmax is not None:
        meta["kmax"] = kmax
    if steps.height:
        meta["first_step"] = as_int(steps["step"].min())
        meta["last_step"] = as_int(steps["step"].max())
    return meta
