"""Quality lines across runs: policy steps, the status mix, the audit summary."""

from __future__ import annotations

import polars as pl
import pytest
from analysis_helpers import make_run

from ponder_parse import schema
from ponder_parse.analysis import economics
from ponder_parse.run import Run


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    return [make_run("a"), make_run("b", seed=4), Run(name="empty")]


def test_quality_of_names_every_line_by_run(runs: list[Run]) -> None:
    q = economics.quality_of(runs)
    assert q.schema == pl.Schema(economics.QUALITY_OF_RUNS_SCHEMA)
    assert q.height == runs[0].quality.height + runs[1].quality.height
    assert q["run"].unique(maintain_order=True).to_list() == ["a", "b"]
    assert economics.quality_of([]).schema == pl.Schema(economics.QUALITY_OF_RUNS_SCHEMA)


def test_policy_steps_leave_audits_out(runs: list[Run]) -> None:
    q = economics.quality_of(runs)
    p = economics.policy_steps(q)
    assert set(p["status"]) == set(schema.POLICY_STATUSES)
    assert p.height == q.height - q["status"].is_in(schema.AUDIT_STATUSES).sum() > 0


def test_status_mix_counts_every_line(runs: list[Run]) -> None:
    q = economics.quality_of(runs)
    mix = economics.status_mix(q)
    assert mix.columns == ["run", "status", "n"]
    assert mix["n"].sum() == q.height
    a = runs[0].quality
    got = dict(mix.filter(pl.col("run") == "a").select("status", "n").iter_rows())
    assert got == {s: int((a["status"] == s).sum()) for s in schema.QUALITY_STATUSES}
    assert mix["run"].unique(maintain_order=True).to_list() == ["a", "b"]  # stable order


def test_audit_summary(runs: list[Run]) -> None:
    q = economics.quality_of(runs)
    t = economics.audit_summary(q)
    assert t.schema == pl.Schema(economics.AUDIT_SUMMARY_SCHEMA)
    assert t["run"].to_list() == ["a", "b"]
    audits = runs[0].quality.filter(pl.col("status").is_in(schema.AUDIT_STATUSES))
    row = t.row(0, named=True)
    assert row["audit steps"] == audits.height > 0
    assert row["AUDIT-POS share"] == pytest.approx((audits["status"] == "AUDIT-POS").mean())
    assert row["mean ΔCE"] == pytest.approx(audits["delta_ce"].mean())
    no_audits = economics.policy_steps(q)
    assert economics.audit_summary(no_audits).is_empty()
