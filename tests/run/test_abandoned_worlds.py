"""Temporary sandbox worlds whose every process died are removed by the next drill."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from processes import alive, wait_gone

from rollback_helpers.run.backends import sweep_abandoned_worlds
from rollback_helpers.sandbox.core.processes import ProcessId
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.occupants import join
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.scenarios import create_world


def dead_process() -> ProcessId:
    child = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
    who = ProcessId.of(child.pid)
    child.kill()
    child.wait()
    return who


def test_a_world_all_of_whose_processes_died_is_removed_with_its_servers(tmp_path: Path) -> None:
    """A killed check's world (servers running, its one registration dead) is swept; a world
    with a live process, one spared for a pending recovery, one nobody registered in, and
    another command's folder are not."""
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o711)
    killed, spared = temp / "rollback-check-killed", temp / "rollback-drill-spared"
    live, unregistered = temp / "rollback-drill-live", temp / "rollback-drill-new"
    for directory in (killed, spared):
        create_world("b-default", directory)
        join(directory, dead_process())
    create_world("default", live)
    join(live)  # this test's own process: alive
    unregistered.mkdir()
    other = temp / "rollback-run-abc"
    other.mkdir()
    servers = [info.pid for cid in World.load(killed).state["fly"]["clusters"]
               if (info := pg.server_info(killed, cid)) is not None]
    try:
        assert servers and all(alive(pid) for pid in servers)
        lines = sweep_abandoned_worlds(temp, spare=frozenset({spared}))
        assert lines == [f"Removed the sandbox world {killed}, left behind by a drill that was "
                         "killed (its servers stopped)."]
        assert not killed.exists() and wait_gone(servers, timeout=30) == set()
        assert spared.is_dir() and live.is_dir() and unregistered.is_dir() and other.is_dir()
    finally:
        from rollback_helpers.run.backends import discard_drill_world

        for directory in (killed, spared, live):
            if directory.exists():
                discard_drill_world(directory)
