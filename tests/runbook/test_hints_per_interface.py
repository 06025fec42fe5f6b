"""Every path's failure scenarios, run as the command line runs them: the operator is told
flags, never notebook syntax; the same next steps, rendered for the walkthrough, name no flag.

In-process (no papermill): the notebook's own cells (``run.<step>()``) are called in order with
the parameters the command line passes (a run id, ``interactive=False``), so the interface the
run announces is the command line's, as in ``rollback-runbook drill``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from rollback_helpers.domain.parameters import MODELS
from rollback_helpers.errors import RollbackError
from rollback_helpers.hints import NOTEBOOKS, flag
from rollback_helpers.runbook import path_a, path_b, verify_flip
from rollback_helpers.sandbox import discard
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.ui.interactive import RecordingScreen

STARTS: dict[str, Any] = {"path-a": path_a.start, "path-b": path_b.start,
                          "verify-flip": verify_flip.start}
# the options an operator sets to change what a run does (not where or who: env=, operator=)
PARAMETERS = sorted({name for model in MODELS for name in model.model_fields} - {
    "path", "env", "backend", "config", "interactive", "sandbox_dir", "archive_path", "run_id",
    "scenario", "operator", "incident"})
# what a notebook operator types, which a shell does nothing with
NOTEBOOK_SYNTAX = re.compile(
    r"\b(?:" + "|".join(PARAMETERS) + r")\s*=|\bdry_run\b|this cell|parameters cell|Run →")
# what a command line operator types, which a notebook does nothing with
COMMAND_SYNTAX = re.compile(
    r"(?:" + "|".join(flag(p) for p in [*PARAMETERS, "live"]) + r")\b|rollback-runbook ")
FAILURES = [
    ("path-a", s) for s in ("drift", "no-previous-record", "malformed-records", "unhealthy-target",
                            "workflow-fails", "run-in-flight", "stale-lock")
] + [
    ("path-b", s) for s in ("b-unknown-backup", "b-no-backup-id")
]  # verify-flip: after Path B's dry run, below (a PostgreSQL world costs seconds)


def steps(path: str) -> list[str]:
    """The notebook's steps, in order: its ``run.<step>()`` cells after the one that starts."""
    text = resources.files("rollback_helpers.notebooks").joinpath(f"{NOTEBOOKS[path]}.ipynb")
    cells = json.loads(text.read_text())["cells"]
    found = [re.fullmatch(r"run\.(\w+)\(\)", "".join(c["source"]).strip())
             for c in cells if c["cell_type"] == "code"]
    return [m[1] for m in found if m and m[1] != "finish"]


@pytest.fixture
def world_dir(tmp_path: Path) -> Iterator[Path]:
    tmp_path.chmod(0o755)
    yield tmp_path
    discard(tmp_path)


def drive(path: str, scenario: str, world_dir: Path, **options: Any) -> tuple[list[str],
                                                                             RollbackError | None]:
    """The path on ``scenario`` as ``rollback-runbook drill`` runs it: what it showed (its
    screen and the reports its cells return) and its first error, if any."""
    if not (world_dir / "world.json").is_file():
        create_world(scenario, world_dir)
    screen = RecordingScreen()
    shown: list[str] = []
    params = {"env": "staging", "backend": "sandbox", "sandbox_dir": str(world_dir),
              "interactive": False, "run_id": "hints0000001", "operator": "ana", **options}
    try:
        run = STARTS[path](params, screen=screen)
        for step in ["preflight", *steps(path)]:
            shown.append(repr(getattr(run, step)()))
    except RollbackError as exc:
        return [*screen.texts(), *shown], exc
    return [*screen.texts(), *shown], None


def told(shown: list[str], error: RollbackError | None) -> str:
    return "\n".join([*shown, str(error or "")])


@pytest.mark.parametrize(("path", "scenario"), FAILURES)
def test_the_command_line_is_told_flags_and_the_walkthrough_no_flag(
        path: str, scenario: str, world_dir: Path) -> None:
    screen, error = drive(path, scenario, world_dir, dry_run=False)
    assert_flags_only(screen, error, f"{scenario} should stop {path}")


def assert_flags_only(screen: list[str], error: RollbackError | None, why: str) -> None:
    assert error is not None, why
    assert error.next_step, f"{type(error).__name__} gives no next step ({why})"
    assert not NOTEBOOK_SYNTAX.search(told(screen, error)), told(screen, error)
    if error.hint is not None:  # the same advice, as the walkthrough renders it
        walkthrough = error.hint.render("walkthrough")
        assert not COMMAND_SYNTAX.search(walkthrough), walkthrough
        assert error.hint.render("drill") == error.next_step


@pytest.mark.parametrize(("path", "scenario", "word"), [("path-a", "default", "roll back"),
                                                        ("path-b", "b-default", "restore")])
def test_a_dry_run_on_the_command_line_says_which_flag_acts(
        path: str, scenario: str, word: str, world_dir: Path) -> None:
    screen, error = drive(path, scenario, world_dir, dry_run=True)
    assert error is None
    text = told(screen, None)
    assert f"Re-run with no `--dry-run` to {word}" in text
    assert not NOTEBOOK_SYNTAX.search(text), text
    if path == "path-b":  # nothing was restored or flipped: verify-flip stops, telling flags
        screen, error = drive("verify-flip", scenario, world_dir)
        assert_flags_only(screen, error, "verify-flip should stop: nothing was flipped")
