"""A walkthrough's runs in one kernel, in process on a sandbox world: Run All Cells after the
approval ends the run before it, the kernel knows its own lease, and its end releases it."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from rollback_helpers.errors import LockHeld
from rollback_helpers.run import kernel_runs
from rollback_helpers.run.lock import EnvironmentLock, Lease, machine_id
from rollback_helpers.run.run_comment import parse_comment
from rollback_helpers.runbook import path_a
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.ui.interactive import RecordingScreen

LOCK = "refs/rollback-locks/staging"


@pytest.fixture
def world_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("GITHUB_TOKEN", "GH_TOKEN"):  # the world's own token, restored after
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    create_world("default", tmp_path / "world")
    return tmp_path / "world"


def walkthrough(world_dir: Path) -> Any:
    """The notebook's first cell, as JupyterLab runs it (interactive, on the sandbox)."""
    return path_a.start({"env": "staging", "sandbox_dir": str(world_dir), "operator": "ana",
                         "interactive": True}, screen=RecordingScreen())


def approved(world_dir: Path) -> Any:
    """Run All Cells, then the plan's button: the run is live and holds the lock."""
    run = walkthrough(world_dir)
    run.current_state()
    run.resolve_target()
    run.plan()
    run.approve("button")
    assert not run.ctx.dry_run
    return run


def lock_ref(world_dir: Path) -> str | None:
    refs = World.load(world_dir).state["github"].get("git", {}).get("refs", {})
    return refs.get(LOCK)


def comments(world_dir: Path) -> dict[str, Any]:
    """Each run's record comment on the bad deploy's record, by run id."""
    found = {}
    for comment in World.load(world_dir).state["github"]["comments"]["1010"]:
        record = parse_comment(comment["body"])
        if record is not None:
            found[record.run_id] = record
    return found


def test_run_all_after_the_approval_ends_the_run_before_and_the_next_carries_it_on(
        world_dir: Path) -> None:
    """The reproduction: approve, Run All Cells (twice), approve again: no lockout, one
    rollback, and every record comment says what became of its run."""
    first = approved(world_dir)
    assert lock_ref(world_dir) is not None
    second = walkthrough(world_dir)  # Run All Cells: the first cell starts a new run
    assert lock_ref(world_dir) is None  # the first run's lease is released, not stranded
    old = comments(world_dir)[first.ctx.run_id]
    assert old.state == "interrupted" and "Run All Cells" in old.next_step
    assert any("lock of staging released" in event for _, event in second.ctx.timeline)
    third = walkthrough(world_dir)  # and once more, still before any new approval
    third.current_state()
    third.resolve_target()
    assert third.back.carry_on and third.back.earlier.record.run_id == first.ctx.run_id
    third.plan()
    third.approve("button")  # not "locked by another rollback": nothing holds the lock
    third.dispatch()
    third.watch()
    assert third.verify().status == "ok"
    third.update_records()
    third.summary()
    assert lock_ref(world_dir) is None
    records = comments(world_dir)
    assert records[third.ctx.run_id].state == "succeeded"
    assert records[third.ctx.run_id].resumes == first.ctx.run_id
    assert records[first.ctx.run_id].next_step == f"carried on by run {third.ctx.run_id}"
    assert second.ctx.run_id not in records  # never approved: it posted nothing
    world = World.load(world_dir)
    assert len(world.state["github"]["runs"]) == 1  # one promote: nothing was done twice
    machines = world.state["fly"]["apps"]["renewa-one-staging"]["machines"]
    assert {m["image"] for m in machines} == {"v41"}
    assert digest_for("v41") in records[third.ctx.run_id].target


def test_a_kernel_takes_back_its_own_lease_but_not_another_kernels(world_dir: Path) -> None:
    """A lease this very process holds under another run id (a run the kernel forgot) is its
    own: taken back and said so. A lease of another process on this host is still refused."""
    first = approved(world_dir)
    kernel_runs.forget()  # as if the run before were lost without being ended
    again = approved(world_dir)
    lease = again.ctx.lifecycle.lease
    assert lease is not None and lease.run_id == again.ctx.run_id
    assert "an earlier run of this same kernel" in lease.broken_from
    assert first.ctx.run_id in lease.broken_from
    again.ctx.end()

    backends = again.ctx.backends
    other = EnvironmentLock(backends.github(again.ctx.cfg), "staging", clock=backends.clock,
                            ttl=600.0)
    host = socket.gethostname()
    other.acquire(Lease("staging", f"ana@{host}", "otherkernel", "path-a", "", "", host=host,
                        machine_id=machine_id(), pid=os.getppid()))  # alive, not this process
    kernel_runs.forget()
    with pytest.raises(LockHeld, match="locked by another rollback"):
        approved(world_dir)
    held = other.held()
    assert held is not None and held.run_id == "otherkernel"


def test_the_kernels_end_releases_its_lease_and_finishes_its_record_comment(
        world_dir: Path) -> None:
    """What shutting the kernel down (or stopping the lab) runs: once, whatever comes twice."""
    run = approved(world_dir)
    lines = kernel_runs.end_current()
    assert lock_ref(world_dir) is None
    assert any("lock of staging released" in line for line in lines)
    record = comments(world_dir)[run.ctx.run_id]
    assert record.state == "interrupted" and "kernel was shut down" in record.last_step
    assert record.archive == ""  # the name reserved at the approval will never be written
    assert kernel_runs.end_current() == []  # nothing held any more: nothing to do


def test_a_dry_walkthrough_ends_without_touching_github(world_dir: Path) -> None:
    """A run never approved holds nothing: ending it changes nothing."""
    run = walkthrough(world_dir)
    run.current_state()
    run.resolve_target()
    run.plan()
    before = World.load(world_dir).state["github"]
    assert kernel_runs.end_current() == []
    assert World.load(world_dir).state["github"] == before


def test_exit_hooks_are_installed_once_for_exit_and_sigterm(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At a normal exit (the server's shutdown request) and on SIGTERM (its next step)."""
    registered: list[Any] = []
    handlers: dict[int, Any] = {}
    monkeypatch.setattr(kernel_runs, "_hooks", [])
    monkeypatch.setattr(kernel_runs.atexit, "register", registered.append)
    kernel_runs.install_exit_hooks(on=lambda sig, handler: handlers.__setitem__(sig, handler))
    kernel_runs.install_exit_hooks(on=lambda sig, handler: handlers.__setitem__(sig, None))
    assert registered == [kernel_runs.end_current]
    assert handlers == {signal.SIGTERM: kernel_runs._on_sigterm}


def test_only_a_kernel_installs_exit_hooks(world_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test process or a command is no kernel: a walkthrough run there changes no signal."""
    monkeypatch.setattr(kernel_runs, "_hooks", [])
    walkthrough(world_dir)
    assert kernel_runs._hooks == [] and not kernel_runs.in_kernel()
    assert signal.getsignal(signal.SIGTERM) is not kernel_runs._on_sigterm


def test_sigterm_during_the_exit_hook_lets_the_hook_finish(world_dir: Path) -> None:
    """The server sends SIGTERM when the kernel is slow to stop: if the exit hook is ending
    the run at that moment, the handler returns (the hook goes on) instead of ending the
    process half-way through the release."""
    run = approved(world_dir)
    with kernel_runs._ending:  # the atexit hook, mid-way
        kernel_runs._on_sigterm(signal.SIGTERM, None)  # returns: this process is still here
    assert lock_ref(world_dir) is not None  # and the handler did not start a second end
    kernel_runs.end_current()
    assert lock_ref(world_dir) is None and comments(world_dir)[run.ctx.run_id].state == \
        "interrupted"
