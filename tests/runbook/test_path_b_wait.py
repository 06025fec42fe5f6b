"""Path B's readiness wait, in process on a sandbox world (virtual time, real PostgreSQL).

The polls of the new cluster keep a fixed rate from the restore's request: the
writes made while waiting (lease renewals, the record comment) and the slow URL
reads between polls do not delay the poll that sees ``ready``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback_helpers.clock import parse_iso
from rollback_helpers.runbook import path_b
from rollback_helpers.sandbox import discard
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.scenarios import create_world

RESTORE = 300.0
INTERVAL = 3.0


@pytest.fixture
def world(pg_state_dir: Path) -> Iterator[World]:
    made = create_world("b-default", pg_state_dir)
    made.state["fly"].update(restore_seconds=RESTORE, ssh_latency=44.0)
    made.save()
    yield made
    discard(pg_state_dir)


def test_ready_is_seen_on_time_although_the_lease_is_renewed_between_polls(world: World) -> None:
    """A 30 s lease is renewed (two spaced requests, 2 s) every 20 s of the wait, and each URL
    read takes 44 s; every poll still lands on the restore's 3 s grid, and the one at 300 s sees
    the cluster ready (a delay after each poll found it only after the restore had finished)."""
    run = path_b.start({"env": "staging", "dry_run": False, "sandbox_dir": str(world.state_dir),
                        "config": {"lock_ttl": 30.0, "poll_interval": INTERVAL}})
    run.resolve()
    seen = len(world.calls())
    run.restore()
    restored_at = run.restore_started
    run.wait_until_ready()
    assert run.ready and restored_at is not None
    calls = world.calls()[seen:]
    polls = [parse_iso(c["t"]) - restored_at for c in calls
             if c["seam"] == "flyctl" and c["call"].startswith("mpg status")]
    renewals = [c for c in calls if c["call"].startswith("PATCH") and "/git/refs/" in c["call"]]
    assert len(renewals) >= 10  # the writes this test is about did happen during the wait
    assert polls[-1] == RESTORE
    assert all(t % INTERVAL == 0 for t in polls[1:]), polls
    # the first poll is at once (after the lock's note); from then on, never two back to back
    assert polls[0] < polls[1] and all(b - a >= INTERVAL for a, b in zip(polls[1:], polls[2:],
                                                                          strict=False)), polls
    assert run.ctx.backends.clock.now() - restored_at == RESTORE
