"""Decisions: who confirmed what, when and how, carried in a report's output metadata."""

from __future__ import annotations

import pytest

from rollback_helpers.ui.decisions import decision_report, default_operator, make_decision
from rollback_helpers.ui.display import METADATA_KEY


def test_a_decision_is_stamped_with_the_time_given_and_reads_as_one_line() -> None:
    decision = make_decision("roll back staging", how="button", step="plan", who="ana",
                             at=1_780_000_000.0, run_id="r1")
    assert decision.at == "2026-05-28T20:26:40Z"
    assert decision.line() == "roll back staging — button, by ana at 2026-05-28T20:26:40Z"
    assert decision.as_dict()["run_id"] == "r1"


def test_a_decision_report_carries_its_decisions_for_the_archive() -> None:
    one = make_decision("a", how="x", step="s", who="w", at=0.0)
    two = make_decision("b", how="y", step="s", who="w", at=0.0)
    report = decision_report("Checklist", [one, two], status="pending")
    assert report.status == "pending"
    saved = report.metadata[METADATA_KEY]["decisions"]
    assert [d["what"] for d in saved] == ["a", "b"] and saved[0]["id"] != saved[1]["id"]


def test_the_operator_is_the_variable_else_the_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLBACK_OPERATOR", "dana")
    assert default_operator() == "dana"
    monkeypatch.delenv("ROLLBACK_OPERATOR")
    assert default_operator() not in ("", "dana")
