"""The writers print the lines that real logs hold and the guide does not show, byte for
byte as the trainer printed them (the examples are the real logs' own lines)."""

from __future__ import annotations

from ponder_parse.format import grammar, writer

INSTANT_JUMP = "⏩ Instant Jump: Slicing dataset from row 1908 to 50000"
RESTORED_PRICE = "📈 Restored compute price λ_p = 1.0600e-02"
START = "🚀 Starting Training Loop..."
CHECKPOINT = "💾 Checkpoint saved: checkpoints/kronecker_latest.pt (step=1500, λ_p=1.20e-03)"
MILESTONE = "💾 Checkpoint saved: checkpoints/kronecker_checkpoint_step_1000.pt (λ_p=1.00e-04)"
PAUSE_SIGNAL = "[PAUSE] Received signal 2. Pausing after current step..."
PAUSE_SAVING = "[PAUSE] Saving checkpoint at step 933 and exiting..."
GEN_FAILED = "Generation failed: index 65535 is out of bounds: 65535, range 0 to 65535"


def test_resume_lines_of_real_logs() -> None:
    assert writer.format_instant_resume_lines(1908, 50_000, 1.06e-2) == [
        INSTANT_JUMP,
        RESTORED_PRICE,
        START,
    ]
    assert writer.format_start_line() == START


def test_both_checkpoint_forms() -> None:
    assert writer.format_checkpoint_line("checkpoints/kronecker_latest.pt", 1500, 1.2e-3) == (
        CHECKPOINT
    )
    assert writer.format_milestone_checkpoint_line("kronecker", 1000, 1e-4) == MILESTONE


def test_pause_and_failure_lines() -> None:
    assert writer.format_pause_signal_line() == PAUSE_SIGNAL
    assert writer.format_pause_saving_line(933) == PAUSE_SAVING
    message = "index 65535 is out of bounds: 65535, range 0 to 65535"
    assert writer.format_generation_failed_line(message) == GEN_FAILED


def test_markers_are_the_printed_literals() -> None:
    """Each new line kind carries the literal its event marker looks for."""
    markers = {kind: [m.text for m in ms] for kind, ms in grammar.EVENT_MARKERS}
    assert grammar.INSTANT_JUMP in markers["resume"] and grammar.INSTANT_JUMP in INSTANT_JUMP
    assert grammar.RESTORED_PRICE in markers["restored_lambda"]
    assert grammar.RESTORED_PRICE in RESTORED_PRICE
    assert grammar.CHECKPOINT_SAVED in MILESTONE
    assert PAUSE_SIGNAL.startswith(grammar.PAUSE) and GEN_FAILED.startswith(
        grammar.GENERATION_FAILED
    )
