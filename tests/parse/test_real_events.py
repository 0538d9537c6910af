"""Run-level lines of real logs read as events: the resume of a build that names no step,
both checkpoint forms, pauses and failed generations. Inputs are the real logs' lines."""

from __future__ import annotations

import polars as pl

from ponder_parse.files.loader import parse_run
from ponder_parse.parse import meta as run_meta
from ponder_parse.parse.scan import parse_text
from tests.format.test_real_lines import (
    CHECKPOINT,
    GEN_FAILED,
    INSTANT_JUMP,
    MILESTONE,
    PAUSE_SAVING,
    PAUSE_SIGNAL,
    RESTORED_PRICE,
    START,
)
from tests.trainer_lines import INIT_MODEL3B, generation_block, step_line


def _steps(a: int, b: int, lm: float = 3.0) -> list[str]:
    return [step_line(s, lm=lm) for s in range(a, b)]


def real_resumed_log() -> list[str]:
    """A real-style log: paused at step 12, resumed (no step named) from 10; steps 10-12
    appear twice and the later ones count."""
    return [
        INIT_MODEL3B,
        START,
        *_steps(0, 10),
        MILESTONE.replace("step_1000", "step_10"),
        *_steps(10, 12),
        PAUSE_SIGNAL,
        step_line(12),
        PAUSE_SAVING.replace("933", "12"),
        CHECKPOINT.replace("step=1500", "step=10"),
        INIT_MODEL3B,
        INSTANT_JUMP,
        RESTORED_PRICE,
        START,
        *_steps(10, 20, lm=2.0),
    ]


def test_real_resume_lines_are_events_not_problems() -> None:
    tables, _ = parse_text("\n".join(real_resumed_log()) + "\n")
    assert tables["problems"].is_empty(), tables["problems"]
    ev = tables["events"]
    kinds = dict(zip(ev["text"].to_list(), ev["kind"].to_list(), strict=False))
    assert kinds[INSTANT_JUMP] == "resume"
    assert kinds[RESTORED_PRICE] == "restored_lambda"
    assert kinds[START] == "resume"
    assert kinds[PAUSE_SIGNAL] == "pause" and kinds[PAUSE_SAVING.replace("933", "12")] == "pause"


def test_a_real_resume_restarts_the_steps_and_is_recorded() -> None:
    run = parse_run("\n".join(real_resumed_log()) + "\n", name="r")
    steps = run.steps
    assert steps["step"].to_list() == list(range(20))
    assert steps.filter(pl.col("step") < 10)["segment"].unique().to_list() == [0]
    assert steps.filter(pl.col("step") >= 10)["segment"].unique().to_list() == [1]
    # The later occurrence of a re-run step wins.
    assert steps.filter(pl.col("step").is_between(10, 12))["lm_loss"].to_list() == [2.0] * 3
    assert run.meta["resume_steps"] == [10]
    assert run.meta["restarts"] == 1


def test_the_first_start_line_is_no_resume() -> None:
    run = parse_run("\n".join([INIT_MODEL3B, START, *_steps(0, 5)]) + "\n", name="r")
    assert run.meta["resume_steps"] == [] and run.meta["restarts"] == 0
    assert (run.steps["segment"] == 0).all()


def test_two_real_resumes_each_recorded() -> None:
    lines = [
        INIT_MODEL3B,
        START,
        *_steps(0, 8),
        INIT_MODEL3B,
        INSTANT_JUMP,
        START,
        *_steps(5, 15),
        INIT_MODEL3B,
        INSTANT_JUMP,
        RESTORED_PRICE,
        START,
        *_steps(12, 18),
    ]
    run = parse_run("\n".join(lines) + "\n", name="r")
    assert run.meta["resume_steps"] == [5, 12] and run.meta["restarts"] == 2
    assert run.steps["segment"].to_list() == [0] * 5 + [1] * 7 + [2] * 6


def test_named_resumes_are_still_read_as_named() -> None:
    events = pl.DataFrame(
        {
            "line_no": [5],
            "step": [1250],
            "kind": ["resume"],
            "text": ["⏩ Resuming from step 1250 (loss: 3.1234)"],
        }
    )
    steps = pl.DataFrame({"step": [1249, 1250], "segment": [0, 1]})
    assert run_meta.resume_steps(events, steps) == [1250]
    assert run_meta.resume_steps(events) == [1250]


def test_both_checkpoint_forms_give_step_and_price() -> None:
    lines = [INIT_MODEL3B, *_steps(0, 3), CHECKPOINT, MILESTONE, *_steps(3, 5)]
    run = parse_run("\n".join(lines) + "\n", name="r")
    saved = run_meta.checkpoints(run.events)
    assert saved["step"].to_list() == [1500, 1000]
    assert saved["lambda_p"].to_list() == [1.2e-3, 1e-4]
    assert saved["path"].to_list() == [
        "checkpoints/kronecker_latest.pt",
        "checkpoints/kronecker_checkpoint_step_1000.pt",
    ]
    assert run.meta["last_checkpoint_step"] == 1000
    assert run.meta["last_checkpoint_lambda_p"] == 1e-4


def test_a_failed_generation_is_an_event_at_its_step() -> None:
    header = generation_block(500, [])[0]
    lines = [INIT_MODEL3B, *_steps(498, 501), header, GEN_FAILED, *_steps(501, 503)]
    run = parse_run("\n".join(lines) + "\n", name="r")
    assert run.problems.is_empty(), run.problems
    failed = run.events.filter(pl.col("kind") == "generation_failed")
    assert failed.select("step", "text").rows() == [(500, GEN_FAILED)]
    assert run.generations.is_empty()
