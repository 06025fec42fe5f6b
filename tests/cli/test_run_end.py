"""How a headless run ends on the command line: a Path B drill's hand-over lines."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest

from rollback_helpers.cli import run_end
from rollback_helpers.run import notify

NEXT = "next: `rollback-runbook drill path-a --env staging --sandbox-dir /tmp/rollback-drill-x`"


def ended(*, drill: bool, sandbox_dir: str | None, keep: bool = False) -> list[str]:
    args = argparse.Namespace(path="path-b", dry_run=False, sandbox_dir=sandbox_dir,
                              keep_sandbox=keep)
    return run_end.handover(args, SimpleNamespace(ok=True),  # type: ignore[arg-type]
                            Path("run.ipynb"), drill=drill)


@pytest.fixture(autouse=True)
def handover(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "handover_of", lambda _: [NEXT])


def test_a_drill_on_its_own_world_says_the_next_command_cannot_act_there() -> None:
    """The world of a drill without --sandbox-dir is removed as it ends: its next command,
    which names that world, is followed by how to practise the checklist to the end."""
    lines = ended(drill=True, sandbox_dir=None)
    assert lines[0] == f"Path B {NEXT}"
    assert lines[-1].startswith("Path B drill: its world is removed as the drill ends")
    assert "--sandbox-dir DIR" in lines[-1]


@pytest.mark.parametrize(("drill", "sandbox_dir", "keep"), [
    (True, "/srv/world", False),  # a world the operator named: it stays
    (True, None, True),           # --keep-sandbox
    (False, None, False),         # a real run has no world
])
def test_a_kept_world_or_a_real_run_gets_only_the_hand_over(drill: bool, sandbox_dir: str | None,
                                                            keep: bool) -> None:
    assert ended(drill=drill, sandbox_dir=sandbox_dir, keep=keep) == [f"Path B {NEXT}"]
