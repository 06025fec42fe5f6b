"""The command line's end of a run: the record comment's final state; who holds the lock."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import psutil

from rollback_helpers.run.lifecycle import Closing, final_state, holder_gone, holder_name
from rollback_helpers.run.record_comment import RunRecord


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
    final = final_state(RunRecord("r1", "path-a", "staging", state="succeeded"), done)
    assert final.state == "succeeded" and final.exit_code == "0"
    assert final.archive == str(done.archive)
    assert final.sha256 == hashlib.sha256(b"{}").hexdigest()


def test_a_success_the_kernel_could_not_record_still_ends_succeeded(tmp_path: Path) -> None:
    final = final_state(RunRecord("r1", "path-a", "staging", state="verified"), closing(tmp_path))
    assert final.state == "succeeded"


def test_an_interruption_says_how_to_resume(tmp_path: Path) -> None:
    stopped = closing(tmp_path, exit_code=143, outcome="interrupted",
                      error="Terminated: interrupted (SIGTERM) during '6. Watch'")
    final = final_state(RunRecord("r1", "path-a", "staging", state="dispatched"), stopped)
    assert final.state == "interrupted" and final.exit_code == "143"
    assert "rollback-runbook drill path-a --env staging" in final.next_step


def test_a_failure_carries_the_errors_next_step(tmp_path: Path) -> None:
    failed = closing(tmp_path, exit_code=6, outcome="verification-failed",
                     error="VerificationFailed: health 503\nNext: check the app's logs")
    final = final_state(RunRecord("r1", "path-a", "staging", state="dispatched"), failed)
    assert (final.state, final.next_step) == ("failed", "check the app's logs")
    assert final.error == "VerificationFailed: health 503"


def test_a_holder_is_gone_only_on_this_machine_with_its_process_dead() -> None:
    """A lock held from another machine is never taken over by a liveness guess."""
    dead = max(p.pid for p in psutil.process_iter()) + 10_000
    while psutil.pid_exists(dead):
        dead += 1
    assert holder_gone(holder_name("alice", pid=dead))
    assert not holder_gone(holder_name("alice", pid=os.getpid()))
    assert not holder_gone(f"alice@not-{socket.gethostname()} pid {dead}")
    assert not holder_gone("alice")
