"""A live run's lock and record comment: who holds the lock, in process on a sandbox world."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import psutil

from rollback_helpers.run.lock import Lease, holder_gone, lease_from_message, lease_to_json, machine_id


def test_a_holder_is_gone_only_on_this_machine_with_its_process_dead() -> None:
    """A lock held from another machine is never taken over by a liveness guess."""
    dead = max(p.pid for p in psutil.process_iter()) + 10_000
    while psutil.pid_exists(dead):
        dead += 1
    host = socket.gethostname()

    def lease(**fields: Any) -> Lease:
        base: dict[str, Any] = dict(host=host, machine_id="machine-1", pid=dead)
        return Lease("staging", "alice@" + host, "r0", "path-a", "", "", **{**base, **fields})

    assert holder_gone(lease(), machine="machine-1")
    assert not holder_gone(lease(pid=os.getpid()), machine="machine-1")
    assert not holder_gone(lease(host="not-" + host), machine="machine-1")
    assert not holder_gone(lease(pid=0), machine="machine-1")
    assert not holder_gone(lease(machine_id=""), machine="")  # no id here: nothing is proven


def test_another_machine_with_the_same_hostname_is_not_this_machine() -> None:
    """Containers and default hostnames repeat: a lease from a machine with this hostname but
    another machine id is never judged gone, however dead its pid looks here."""
    dead = max(p.pid for p in psutil.process_iter()) + 10_000
    while psutil.pid_exists(dead):
        dead += 1
    twin = Lease("staging", "bob@" + socket.gethostname(), "r0", "path-a", "", "",
                 host=socket.gethostname(), machine_id="another-machine", pid=dead)
    assert not holder_gone(twin, machine="this-machine")
    assert holder_gone(twin, machine="another-machine")


def test_the_lease_keeps_host_machine_and_pid_as_typed_fields(tmp_path: Path) -> None:
    lease = Lease("staging", "alice@h", "r1", "path-a", "", "", host="h", machine_id="m", pid=42)
    back = lease_from_message("summary\n\n" + lease_to_json(lease))
    assert back == lease and isinstance(back.pid, int)
    (tmp_path / "machine-id").write_text("abc123\n")
    assert machine_id((str(tmp_path / "none"), str(tmp_path / "machine-id"))) == "abc123"
    assert machine_id((str(tmp_path / "none"),)) == ""


# -- the lock in a run, in process on a sandbox world ------------------------------------------
def held_by_bob(world_dir: Path, *, ttl: float = 600.0, pid: int | None = None) -> None:
    """Another operator's live run holds staging's lock."""
    from rollback_helpers.domain.config import load_config
    from rollback_helpers.run.backends import open_backends
    from rollback_helpers.run.lock import EnvironmentLock, Lease

    backends = open_backends("sandbox", sandbox_dir=str(world_dir))
    github = backends.github(load_config())
    lock = EnvironmentLock(github, "staging", clock=backends.clock, ttl=ttl)
    host = socket.gethostname() if pid else "elsewhere"
    lock.acquire(Lease("staging", f"bob@{host}", "bobrun", "path-a", "", "",
                       workflow_run_url="https://github.com/o/r/actions/runs/1", host=host,
                       machine_id=machine_id() if pid else "", pid=pid or 1))


def world_with(tmp_path: Path, scenario: str = "default") -> Path:
    from rollback_helpers.sandbox.scenarios import create_world

    create_world(scenario, tmp_path / "world")
    return tmp_path / "world"


def start_a(world_dir: Path, **kwargs: object) -> object:
    from rollback_helpers.runbook import path_a
    from rollback_helpers.ui.interactive import RecordingScreen

    return path_a.start({"env": "staging", "backend": "sandbox", "sandbox_dir": str(world_dir),
                         "operator": "ana", **kwargs}, screen=RecordingScreen())


def refs(world_dir: Path) -> dict[str, str]:
    from rollback_helpers.sandbox.core.world import World

    return dict(World.load(world_dir).state["github"].get("git", {}).get("refs", {}))


def test_a_dry_run_shows_a_held_lock_and_takes_none(tmp_path: Path) -> None:
    world_dir = world_with(tmp_path)
    held_by_bob(world_dir)
    before = refs(world_dir)
    run = start_a(world_dir, dry_run=True)
    report = run.preflight()  # type: ignore[attr-defined]
    assert "HELD by bob@elsewhere" in repr(report) and "bobrun" in repr(report)
    assert refs(world_dir) == before


def test_a_live_run_stops_on_a_held_lock_naming_the_holder(tmp_path: Path) -> None:
    """Exit 3 (LockHeld), naming who, since when, their run id and workflow run."""
    import pytest

    from rollback_helpers.errors import LockHeld

    world_dir = world_with(tmp_path)
    held_by_bob(world_dir)
    with pytest.raises(LockHeld) as raised:
        start_a(world_dir, dry_run=False)
    message = str(raised.value)
    for part in ("bob@elsewhere", "since", "bobrun", "actions/runs/1"):
        assert part in message
    assert raised.value.exit_code == 3


def test_a_crashed_holder_on_this_machine_is_taken_over_and_recorded(tmp_path: Path) -> None:
    """The holder's process is gone: the re-run takes the lease, and says so everywhere."""
    dead = max(p.pid for p in psutil.process_iter()) + 10_000
    while psutil.pid_exists(dead):
        dead += 1
    world_dir = world_with(tmp_path)
    held_by_bob(world_dir, pid=dead)
    run = start_a(world_dir, dry_run=False)
    ctx = run.ctx  # type: ignore[attr-defined]
    assert ctx.lifecycle.lease.broken_from.startswith("run bobrun")
    assert any("take over the lock" in d.what for d in ctx.decisions)
    run.current_state()  # type: ignore[attr-defined]
    run.resolve_target()  # type: ignore[attr-defined]
    run.plan()  # type: ignore[attr-defined]
    assert "taken over from" in ctx.lifecycle.record.record.lock
    ctx.end()
    assert refs(world_dir) == {}


def test_a_live_lease_from_a_twin_hostname_is_never_taken_over(tmp_path: Path) -> None:
    """Attack 8: another machine with this hostname holds a live lease whose pid does not exist
    here. Without --break-lock the run stops (exit 3) and the lease stays bob's."""
    import pytest

    from rollback_helpers.domain.config import load_config
    from rollback_helpers.errors import LockHeld
    from rollback_helpers.run.backends import open_backends
    from rollback_helpers.run.lock import EnvironmentLock

    dead = max(p.pid for p in psutil.process_iter()) + 10_000
    while psutil.pid_exists(dead):
        dead += 1
    world_dir = world_with(tmp_path)
    backends = open_backends("sandbox", sandbox_dir=str(world_dir))
    lock = EnvironmentLock(backends.github(load_config()), "staging", clock=backends.clock,
                           ttl=600.0)
    host = socket.gethostname()
    lock.acquire(Lease("staging", f"bob@{host}", "bobrun", "path-a", "", "", host=host,
                       machine_id="not-" + (machine_id() or "x"), pid=dead))
    with pytest.raises(LockHeld) as raised:
        start_a(world_dir, dry_run=False)
    assert raised.value.exit_code == 3 and "bobrun" in str(raised.value)
    assert lock.held() is not None and lock.held().run_id == "bobrun"  # type: ignore[union-attr]


def test_break_lock_takes_over_an_expired_lease_and_records_why(tmp_path: Path) -> None:
    from rollback_helpers.sandbox.core.world import World

    world_dir = world_with(tmp_path)
    held_by_bob(world_dir, ttl=60.0)
    later = World.load(world_dir)
    later.state["now"] = later.now + 600  # bob's run stopped renewing ten minutes ago
    later.save()
    run = start_a(world_dir, dry_run=False, break_lock="bob's laptop died mid-run")
    ctx = run.ctx  # type: ignore[attr-defined]
    assert "bob's laptop died mid-run" in ctx.lifecycle.lease.broken_from
    (decision,) = [d for d in ctx.decisions if "take over the lock" in d.what]
    assert "break_lock" in decision.how
    assert any("taken over from bob@elsewhere" in event for _, event in ctx.timeline)


def test_the_lease_is_renewed_during_long_waits(tmp_path: Path) -> None:
    """While a live run waits (workflow, readiness), its lease keeps moving forward."""
    from rollback_helpers.clock import parse_iso

    world_dir = world_with(tmp_path)
    run = start_a(world_dir, dry_run=False)
    life = run.ctx.lifecycle  # type: ignore[attr-defined]
    first = parse_iso(life.lease.expires_at)
    life.keep_alive()  # too early: nothing is written
    assert parse_iso(life.lock.lease.expires_at) == first
    run.ctx.backends.clock.sleep(life.ttl / 2)  # type: ignore[attr-defined]
    life.keep_alive()  # half of it left: still nothing written
    assert parse_iso(life.lock.lease.expires_at) == first
    run.ctx.backends.clock.sleep(life.ttl / 6 + 1)  # type: ignore[attr-defined]
    life.keep_alive()  # under a third left: renewed
    assert parse_iso(life.lease.expires_at) >= first + 2 * life.ttl / 3
    run.ctx.end()  # type: ignore[attr-defined]
