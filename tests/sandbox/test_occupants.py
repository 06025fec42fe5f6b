"""Processes sharing one sandbox world: each stops only what it owns and nobody else uses.

The occupants here are real processes (this test's and children of it) acting in a world
with a real PostgreSQL server and real tunnels; a child occupant joins, then waits for a
line on stdin before it leaves, so "the moment it ends" is the test's to choose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import alive, wait_gone

from rollback_helpers import sandbox
from rollback_helpers.clients.fly import Fly, Tunnel
from rollback_helpers.sandbox.core.processes import ProcessId, ProcessRecord, recorded_processes
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.common import RecordedProcess
from rollback_helpers.sandbox.fly.flyctl import FlyctlSandbox
from rollback_helpers.sandbox.occupants import OCCUPANT_DIR, join, leave, occupants
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.scenarios import create_world

SOURCE = "w3k8p1x9m2q7v4zr"  # b-default's staging cluster: a real server
OCCUPANT = """
import json, sys
from rollback_helpers.sandbox.occupants import join, leave
join(sys.argv[1])
print("joined", flush=True)
sys.stdin.readline()
left = leave(sys.argv[1])
print(json.dumps({"last_out": left.last_out, "others": left.others}), flush=True)
"""
ORPHAN_MAKER = """
import subprocess, sys
from rollback_helpers.sandbox.core.processes import record_process
tunnel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                          start_new_session=True, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
record_process(sys.argv[1], "orphan", tunnel.pid)
print(tunnel.pid, flush=True)
"""


@pytest.fixture
def world(pg_state_dir: Path) -> Iterator[World]:
    """A Path B world with one real server; everything in it is stopped after."""
    made = create_world("b-default", pg_state_dir)
    yield made
    sandbox.shutdown(made.state_dir)


@pytest.fixture
def occupant(world: World) -> Iterator[subprocess.Popen[str]]:
    """A child process that has joined the world and leaves when sent a line."""
    child = subprocess.Popen([sys.executable, "-c", OCCUPANT, str(world.state_dir)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "joined"
    yield child
    if child.poll() is None:
        child.kill()
    child.communicate()


def leave_now(child: subprocess.Popen[str]) -> dict[str, object]:
    """Tell a child occupant to leave; what its leaving said."""
    out, _ = child.communicate("leave\n", timeout=120)
    assert child.returncode == 0
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def server_pid(world: World) -> int | None:
    info = pg.server_info(world.state_dir, SOURCE)
    return info.pid if info else None


def pid_of(tunnel: Tunnel) -> int:
    """The tunnel's forwarder process (the sandbox's stand-in for ``flyctl mpg proxy``)."""
    assert isinstance(tunnel.process, RecordedProcess)
    return tunnel.process.pid


def orphan_tunnel(world: World) -> int:
    """A recorded background process whose opener has already exited."""
    made = subprocess.run([sys.executable, "-c", ORPHAN_MAKER, str(world.state_dir)],
                          capture_output=True, text=True, check=True, timeout=60)
    return int(made.stdout.strip())


def test_leaving_stops_orphaned_tunnels_but_not_anothers_tunnel_or_the_servers(
        world: World, occupant: subprocess.Popen[str]) -> None:
    """An occupant ends while this process still acts in the world: the tunnel this process
    opened and the server stay up; a tunnel whose opener has gone is stopped."""
    join(world.state_dir)
    tunnel = Fly(FlyctlSandbox(world)).mpg_proxy(SOURCE)
    server, orphan = server_pid(world), orphan_tunnel(world)
    assert server is not None and alive(orphan)

    left = leave_now(occupant)

    assert left == {"last_out": False, "others": [os.getpid()]}
    assert alive(pid_of(tunnel)) and server_pid(world) == server
    assert wait_gone([orphan], timeout=30) == set()
    assert [r.name for r in recorded_processes(world.state_dir)
            if isinstance(r, ProcessRecord)] == [f"mpg-proxy-{SOURCE}-{pid_of(tunnel)}"]
    tunnel.stop()


def test_the_last_one_out_stops_the_servers_and_every_tunnel(world: World) -> None:
    """With no other occupant, leaving stops the servers and tunnels, whoever opened them."""
    join(world.state_dir)
    tunnel = Fly(FlyctlSandbox(world)).mpg_proxy(SOURCE)
    server = server_pid(world)
    assert server is not None

    left = leave(world.state_dir)

    assert left.last_out and SOURCE in left.stopped
    assert server_pid(world) is None and wait_gone([pid_of(tunnel), server], 30) == set()
    assert recorded_processes(world.state_dir) == []
    assert occupants(world.state_dir) == []


def test_a_crashed_occupant_does_not_keep_the_servers_up(
        world: World, occupant: subprocess.Popen[str]) -> None:
    """An occupant killed without leaving: a dead pid does not count, and its registration
    is cleared by the next process that looks."""
    occupant.kill()
    occupant.wait()
    join(world.state_dir)
    assert occupants(world.state_dir) == [ProcessId.current()]

    left = leave(world.state_dir)

    assert left.last_out and server_pid(world) is None
    assert list((world.state_dir / OCCUPANT_DIR).iterdir()) == []


def test_a_recycled_pid_is_not_taken_for_an_occupant(world: World) -> None:
    """A registration whose pid now runs another process (another start time) does not count."""
    me = ProcessId.current()
    assert me.started is not None
    join(world.state_dir, ProcessId(me.pid, me.started - 3600))
    assert occupants(world.state_dir) == []
    assert leave(world.state_dir).last_out and server_pid(world) is None


def test_two_occupants_ending_at_once_stop_the_servers_exactly_once(world: World) -> None:
    """Two occupants told to leave at the same moment: the world's lock orders them, so one
    sees the other still there and the other is the last one out; no server is left."""
    children = [subprocess.Popen([sys.executable, "-c", OCCUPANT, str(world.state_dir)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for _ in range(2)]
    try:
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "joined"
        for child in children:  # both go, before either is waited for
            assert child.stdin is not None
            child.stdin.write("leave\n")
            child.stdin.close()
        results = []
        for child in children:
            assert child.stdout is not None
            results.append(json.loads(child.stdout.read().strip().splitlines()[-1]))
            assert child.wait(timeout=120) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert sorted(r["last_out"] for r in results) == [False, True]
    assert server_pid(world) is None


def test_a_drill_world_and_a_kernels_seams_register_their_process(tmp_path: Path) -> None:
    """Creating a drill world and opening the sandbox seams on it both register this process;
    leaving a Path A world (nothing runs in it) stops nothing and says nothing."""
    from rollback_helpers.run.backends import create_drill_world, leave_drill_world, open_backends

    create_drill_world("default", tmp_path / "a", speed=0)
    assert occupants(tmp_path / "a") == [ProcessId.current()]
    open_backends("sandbox", sandbox_dir=str(tmp_path / "a")).close()
    assert occupants(tmp_path / "a") == [ProcessId.current()]  # once, however often it joins
    create_world("default", tmp_path / "b")
    open_backends("sandbox", sandbox_dir=str(tmp_path / "b")).close()
    assert occupants(tmp_path / "b") == [ProcessId.current()]
    assert leave_drill_world(tmp_path / "a") == ""
    assert occupants(tmp_path / "a") == []
