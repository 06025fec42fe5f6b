"""What taking the environment lock costs in round trips: the lease read beside the tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_helpers.errors import LockHeld
from rollback_helpers.run.backends import open_backends
from rollback_helpers.run.lifecycle import Lifecycle
from rollback_helpers.sandbox.core.world import read_calls
from rollback_helpers.sandbox.scenarios import create_world

GITHUB = 0.25


def lifecycle(tmp_path: Path, run_id: str) -> Lifecycle:
    backends = open_backends("sandbox", sandbox_dir=str(tmp_path))
    from rollback_helpers.domain.config import load_config

    cfg = load_config({"github_repo": "renewa/renewa-one"})
    return Lifecycle(backends.github(cfg), "path-a", "staging", run_id, "dana", backends.clock,
                     600.0, lambda _: None)


def test_taking_a_free_lock_is_three_round_trips(tmp_path: Path) -> None:
    world = create_world("default", tmp_path, latency={"github": GITHUB})
    life = lifecycle(tmp_path, "r-1")
    began = life.clock.now()
    lease = life.acquire()
    assert lease.run_id == "r-1" and life.clock.now() - began == 3 * GITHUB
    git = "/repos/renewa/renewa-one/git/"
    calls = sorted((c["span"][0] - began, c["call"].replace(git, ""))
                   for c in read_calls(world.state_dir))
    assert calls == [(0.0, "GET /user"), (0.0, "GET ref/rollback-locks/staging"), (0.0, "POST trees"),
                     (GITHUB, "POST commits"), (2 * GITHUB, "POST refs")]


def test_a_held_lock_is_refused_after_the_same_read(tmp_path: Path) -> None:
    create_world("default", tmp_path, latency={"github": GITHUB})
    lifecycle(tmp_path, "r-1").acquire()
    other = lifecycle(tmp_path, "r-2")
    with pytest.raises(LockHeld, match="locked by another rollback"):
        other.acquire()
