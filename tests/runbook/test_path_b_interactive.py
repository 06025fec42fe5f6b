"""Path B in JupyterLab: nothing is restored until the engineer presses the button."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_helpers.runbook import path_b
from rollback_helpers.sandbox import discard
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.ui.interactive import RecordingScreen


@pytest.fixture
def world_dir(tmp_path: Path):  # type: ignore[no-untyped-def]
    tmp_path.chmod(0o755)
    create_world("b-default", tmp_path)
    yield tmp_path
    discard(tmp_path)


def test_the_restore_waits_for_the_button_and_the_click_is_recorded(world_dir: Path) -> None:
    """Before approval the changing steps are skipped; the press is a recorded decision; then it restores."""
    screen = RecordingScreen()
    run = path_b.start({"env": "staging", "interactive": True, "sandbox_dir": str(world_dir)},
                       screen=screen)
    run.resolve()
    assert run.plan() is None  # shown with its gate instead of returned
    assert any("Restore staging's pre-deploy backup" in t for t in screen.texts())
    skipped = run.restore()
    assert skipped is not None and "not approved" in skipped.title and run.new_cluster is None
    decision = run.approve("button (test)")
    assert decision in run.ctx.decisions and "restore backup_" in decision.what
    assert run.restore() is not None and run.new_cluster is not None
    run.wait_until_ready()
    run.verify_new_cluster()
    assert run.checklist() is None  # the report and a checklist widget are shown instead
    assert any("Manual flip" in t for t in screen.texts())
