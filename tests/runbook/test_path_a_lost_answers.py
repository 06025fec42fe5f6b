"""Path A end to end when GitHub loses answers or moves the record: one run, one comment, the
right issue. Runs the real CLI (``rollback-runbook drill path-a``) at instant speed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.sandbox.core.world import World

pytestmark = pytest.mark.e2e


def drill(tmp_path: Path, scenario: str) -> tuple[int, World]:
    sandbox = tmp_path / "sandbox"
    code = cli.main(["drill", "path-a", "--env", "staging", "--scenario", scenario, "--speed", "0",
                     "--sandbox-dir", str(sandbox), "--incidents-dir", str(tmp_path / "incidents"),
                     "--quiet"])
    return code, World.load(sandbox)


def mutations(world: World) -> list[tuple[str, int, str]]:
    return [(c["call"].split("/renewa-one/")[1], c["status"], c.get("fault", ""))
            for c in world.calls() if c["mutating"]]


def record(world: World, title: str) -> dict[str, Any]:
    return next(i for i in world.state["github"]["issues"]
                if i["title"] == title and not i.get("transferred_to"))


def test_lost_answers_to_the_dispatch_and_the_comment_leave_one_run_and_one_comment(
        tmp_path: Path) -> None:
    code, world = drill(tmp_path, "ambiguous-failures")
    assert code == 0
    bad = record(world, "Deploy v42 to staging")
    assert len(world.state["github"]["runs"]) == 1
    assert len(world.state["github"]["comments"][str(bad["number"])]) == 1
    # each non-idempotent POST was sent once, its lost answer checked, never sent again
    assert sorted(m for m in mutations(world) if m[0].endswith(("dispatches", "comments"))) == [
        ("actions/workflows/promote-image.yml/dispatches", 200, "accepted, then drop"),
        (f"issues/{bad['number']}/comments", 201, "accepted, then 502")]
    assert {m["image"] for m in world.state["fly"]["apps"]["renewa-one-staging"]["machines"]} \
        == {"v41"}


def test_a_record_moved_mid_run_gets_its_label_and_comment_at_its_new_number(
        tmp_path: Path) -> None:
    code, world = drill(tmp_path, "transferred-record")
    assert code == 0
    moved = record(world, "Deploy v42 to staging")
    old = next(i["number"] for i in world.state["github"]["issues"]
               if i.get("transferred_to") == moved["number"])
    assert "rolled-back" in moved["labels"]
    assert len(world.state["github"]["comments"][str(moved["number"])]) == 1
    # the run's comment was posted before the move (and moved with the issue); the label POST
    # after it met GitHub's 301 and was repeated, as a POST, at the new number
    assert (f"issues/{old}/labels", 301, "") in mutations(world)
    assert (f"issues/{moved['number']}/labels", 200, "") in mutations(world)
