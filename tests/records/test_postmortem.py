"""The postmortem draft from a record alone: who decided, the impact window, no secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from rollback_helpers.records.postmortem import Verification, draft
from rollback_helpers.records.store import open_store
from tests.records.history_builder import Run, archive

T0 = datetime(2026, 9, 2, 4, 0, tzinfo=UTC)


def record(tmp_path: Path, run: Run, **block: object) -> tuple[str, bytes]:
    location = archive(open_store(str(tmp_path / "incidents")), tmp_path, "r.ipynb", run)
    data = Path(location).read_bytes()
    if block:
        nb = json.loads(data)
        nb["metadata"]["rollback_runbook"].update(block)
        data = json.dumps(nb).encode()
    return location, data


def test_path_b_names_who_decided_from_its_timeline_and_leaves_the_flip_to_people(
        tmp_path: Path) -> None:
    """No decision list: the timeline's `decision: … by ben` names him; the flip is people's."""
    run = Run("path-b", "staging", T0, 2020)
    run.at(0, "path-b started on staging (LIVE, backend real)")
    run.at(0.5, "bad deploy: record #2020, deployed 2026-09-02T03:40:00Z")
    run.at(1, "decision: restore backup_1_ab into a new cluster (parameter dry_run=False, by ben)")
    run.at(2, "restore requested: backup_1_ab → new cluster zz9")
    run.at(22, "cluster zz9 ready 1200s after the restore request")
    text = draft(*record(tmp_path, run), Verification(True, "checked"))
    assert "its timeline logs ben at 2026-09-02T04:01:00Z" in text
    assert "**people decided:** ben" in text
    assert "- **from:** 2026-09-02T03:40:00Z (the bad deploy, record #2020)" in text
    assert "the flip (secrets, cluster map, redeploy)" in text
    assert "- **waiting on restore:** 20m00s" in text
    assert "- **bad deploy → rollback started:** 20m00s" in text


def test_no_secret_reaches_the_draft(tmp_path: Path) -> None:
    """A password in the reason is masked, as in every output."""
    run = Run("path-a", "production", T0, 3005).at(0, "path-a started on production")
    location, data = record(tmp_path, run, parameters={
        "reason": "db down: postgres://app:Hunter2Secret9@db.internal/app", "operator": "ana"})
    text = draft(location, data, Verification(False, "not verified"))
    assert "Hunter2Secret9" not in text and "**Record NOT VERIFIED:** not verified" in text
    assert "- **operator:** ana" in text
