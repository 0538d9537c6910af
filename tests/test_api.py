"""The package's public names: what notebooks and scripts call, whatever the layout inside."""

from __future__ import annotations

from pathlib import Path

import ponder_parse


def test_flat_analysis_names_reach_the_analysis_modules(sample_runs: Path) -> None:
    run = ponder_parse.load_run(sample_runs / "baseline,seed=0")
    shares = ponder_parse.patterns.pattern_shares(run, by=["phase"])
    assert set(shares["phase"].unique()) <= {"force_warmup", "gate_learning", "economic"}
    assert "economic" in set(shares["phase"])
    findings = ponder_parse.flags.red_flags(run)
    assert "rule" in findings.columns
    assert ponder_parse.flags is ponder_parse.analysis.red_flags
    assert run.meta["kmax"] == 4


def test_all_names_exist() -> None:
    missing = [name for name in ponder_parse.__all__ if not hasattr(ponder_parse, name)]
    assert missing == []
