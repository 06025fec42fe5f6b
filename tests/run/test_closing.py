"""The command line's end of a run: the record comment's final state and final edit, and the
lock's release, as a Closed result."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rollback_helpers.run.closing import Closing, final_state
from rollback_helpers.run.run_comment import RunComment


def world_with(tmp_path: Path, scenario: str = "default") -> Path:
    from rollback_helpers.sandbox.scenarios import create_world

    create_world(scenario, tmp_path / "world")
    return tmp_path / "world"


def closing(tmp_path: Path, **changes: object) -> Closing:
    archive = tmp_path / "run.ipynb"
    archive.write_text("{}")
    base = dict(run_id="r1", path="path-a", env="staging", exit_code=0, outcome="success",
                dry_run=False, archive=archive, last_step="8. Update the deployment record",
                resume_command="rollback-runbook drill path-a --env staging")
    return Closing(**{**base, **changes})  # type: ignore[arg-type]


def test_success_keeps_the_kernels_state_and_names_the_archive(tmp_path: Path) -> None:
    """The archive's location and SHA-256 go in once the notebook is archived."""
    done = closing(tmp_path)
    final = final_state(RunComment("r1", "path-a", "staging", state="succeeded"), done)
    assert final.state == "succeeded" and final.exit_code == "0"
    assert final.archive == str(done.archive)
    assert final.sha256 == hashlib.sha256(b"{}").hexdigest()


def test_a_success_the_kernel_could_not_record_still_ends_succeeded(tmp_path: Path) -> None:
    final = final_state(RunComment("r1", "path-a", "staging", state="verified"), closing(tmp_path))
    assert final.state == "succeeded"


def test_an_interruption_says_how_to_resume(tmp_path: Path) -> None:
    stopped = closing(tmp_path, exit_code=143, outcome="interrupted",
                      error="Terminated: interrupted (SIGTERM) during '6. Watch'")
    final = final_state(RunComment("r1", "path-a", "staging", state="dispatched"), stopped)
    assert final.state == "interrupted" and final.exit_code == "143"
    assert "rollback-runbook drill path-a --env staging" in final.next_step


def test_a_failure_carries_the_errors_next_step(tmp_path: Path) -> None:
    failed = closing(tmp_path, exit_code=6, outcome="verification-failed",
                     error="VerificationFailed: health 503\nNext: check the app's logs")
    final = final_state(RunComment("r1", "path-a", "staging", state="dispatched"), failed)
    assert (final.state, final.next_step) == ("failed", "check the app's logs")
    assert final.error == "VerificationFailed: health 503"


# -- the final edit, shared by the command line and a walkthrough's Finish ----------------------
def test_a_final_edit_github_refuses_names_the_command_that_publishes_later(
        tmp_path: Path) -> None:
    """GitHub answers 502 to everything: the line says the comment was not updated, where the
    record is, and the publish-record command; the comment keeps no hash; a repeat once GitHub
    answers ends it, and then reads as ended (a repeated Finish tells nobody)."""
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.run.backends import open_backends
    from rollback_helpers.run.closing import close_run, ended_before
    from rollback_helpers.run.lock import EnvironmentLock
    from rollback_helpers.run.run_comment import PostedRunComment, parse_comment
    from rollback_helpers.sandbox.core.world import World

    world_dir = world_with(tmp_path)
    backends = open_backends("sandbox", sandbox_dir=str(world_dir))
    github = backends.github(load_config())
    PostedRunComment(github.comments, 1010, RunComment("r1", "path-a", "staging", state="succeeded"),
                  log=lambda line: None, now=lambda: "now").post()
    world = World.load(world_dir)
    done = int(world.state["github"]["request_count"])
    world.state["github"]["faults"]["server_error_on"] = list(range(done + 1, done + 100))
    world.save()
    stored = closing(tmp_path, location="s3://records/r1.ipynb", sha256="ab" * 32,
                     sandbox_dir=str(world_dir), record_issue=1010)
    lock = EnvironmentLock(github, "staging", clock=backends.clock, ttl=600)
    closed = close_run(github, lock, stored)
    assert closed.edit_failed and closed.edit is not None
    edit = closed.edit.line
    assert "#1010 could not be updated" in edit
    assert f"`rollback-runbook publish-record s3://records/r1.ipynb --sandbox-dir {world_dir}`" \
        in edit
    world = World.load(world_dir)
    world.state["github"]["faults"]["server_error_on"] = []
    world.save()
    (comment,) = World.load(world_dir).state["github"]["comments"]["1010"][-1:]
    assert parse_comment(comment["body"]).sha256 == ""  # type: ignore[union-attr]
    assert not ended_before(github, stored)
    closed = close_run(github, lock, stored)
    assert closed.edit is not None and closed.edit.status == "edited" and not closed.edit_failed
    assert closed.lines == [closed.edit.line]
    assert closed.edit.line.startswith("Record comment on #1010: succeeded")
    assert ended_before(github, stored)
    assert not ended_before(github, closing(tmp_path, exit_code=5, outcome="workflow-failed",
                                            record_issue=1010))
