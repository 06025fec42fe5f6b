"""The two-person rule in JupyterLab: the first changing cell shows who may approve, waits with
a progress bar, and carries on by itself once the second person approves."""

from __future__ import annotations

from pathlib import Path

from rollback_helpers.runbook import path_a
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.ui.interactive import RecordingScreen

DISPATCH = "POST /repos/renewa/renewa-one/actions/workflows/promote-image.yml/dispatches"


def test_the_walkthrough_waits_for_approval_by_name_then_carries_on(tmp_path: Path) -> None:
    create_world("approval-granted", tmp_path)
    screen = RecordingScreen()
    run = path_a.start({"env": "production", "interactive": True, "sandbox_dir": str(tmp_path),
                        "operator": "dana"}, screen=screen)
    run.current_state()
    run.resolve_target()
    run.plan()
    run.approve('button "Roll back production" after typing \'production\'')  # the operator's press
    report = run.dispatch()  # waits here until alice approves, then dispatches
    assert report.title == "Dispatched"
    shown = screen.texts()
    assert any("Waiting for approval by alice (write access to renewa/renewa-one), not dana" in t
               for t in shown)
    approvals = [d for d in run.ctx.decisions if d.step == "approval"]
    assert [d.who for d in approvals] == ["alice"]
    world = World.load(tmp_path)
    calls = [c["call"] for c in world.calls()]
    approval_at = approvals[0].how.split("written ")[1][:20]
    [dispatch] = [c for c in world.calls() if c["call"] == DISPATCH]
    assert approval_at <= dispatch["t"] and calls.count(DISPATCH) == 1
    run.watch()
    run.verify()
    assert {m["image"] for m in World.load(tmp_path).state["fly"]["apps"]["renewa-one"]["machines"]} \
        == {"v41"}
    assert digest_for("v41") in str(run.target.image if run.target else "")
