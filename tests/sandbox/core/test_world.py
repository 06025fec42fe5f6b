"""One sandbox world, several processes: every request a transaction, nothing lost, nothing undone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from rollback_helpers.sandbox.core.world import CALLS_FILE, World, digest_for, read_calls
from rollback_helpers.sandbox.github.api import GitHubSandbox
from rollback_helpers.sandbox.scenarios import create_world

PROCESSES = 4
REQUESTS = 25
REPO = "/repos/renewa/renewa-one"

CLIENT = """
import sys, httpx
from rollback_helpers.sandbox.github.api import GitHubSandbox
from rollback_helpers.sandbox.core.world import World

world = World.load(sys.argv[1])
api = httpx.Client(transport=httpx.MockTransport(GitHubSandbox(world).handle),
                   base_url="https://api.github.com",
                   headers={"Authorization": "Bearer " + world.state["github"]["token"]})
"""


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def api_for(world: World) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(GitHubSandbox(world).handle),
                        base_url="https://api.github.com",
                        headers={"Authorization": f"Bearer {world.state['github']['token']}"})


def test_processes_hammering_one_world_lose_no_state_change_and_no_log_line(
        tmp_path: Path) -> None:
    create_world("default", tmp_path)
    code = CLIENT + f"""
for j in range({REQUESTS}):
    response = api.post("{REPO}/issues/1001/comments", json={{"body": f"{{sys.argv[2]}}-{{j}}"}})
    assert response.status_code == 201, response.text
"""
    children = [run_python(code, str(tmp_path), f"p{i}") for i in range(PROCESSES)]
    for child in children:
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
    world = World.load(tmp_path)
    bodies = [c["body"] for c in world.state["github"]["comments"]["1001"]]
    expected = {f"p{i}-{j}" for i in range(PROCESSES) for j in range(REQUESTS)}
    assert sorted(bodies) == sorted(expected)  # every change kept, none twice
    assert len({c["id"] for c in world.state["github"]["comments"]["1001"]}) == len(expected)
    assert world.state["github"]["request_count"] == len(expected)
    lines = (tmp_path / CALLS_FILE).read_text().splitlines()
    posts = [json.loads(line) for line in lines]  # every line whole
    assert [p["status"] for p in posts if p["call"].endswith("/comments")] == [201] * len(expected)


def test_a_dispatch_the_world_accepted_survives_the_client_being_killed(tmp_path: Path) -> None:
    create_world("default", tmp_path)
    image = f"registry.fly.io/renewa-one@{digest_for('v41')}"
    code = CLIENT + f"""
import os, signal
response = api.post("{REPO}/actions/workflows/promote-image.yml/dispatches",
                    json={{"ref": "main", "inputs": {{"env": "staging", "image": "{image}"}}}})
assert response.status_code == 204, response.text
os.kill(os.getpid(), signal.SIGKILL)
"""
    child = run_python(code, str(tmp_path))
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    world = World.load(tmp_path)
    assert len(world.state["github"]["runs"]) == 1
    assert [c["status"] for c in read_calls(tmp_path) if c["call"].endswith("/dispatches")] == [204]
    api_for(world).get(f"{REPO}/issues/1001")  # the re-run's first request is logged too
    assert read_calls(tmp_path)[-1]["call"] == f"GET {REPO}/issues/1001"


def test_a_process_holding_an_old_copy_does_not_undo_anothers_change(tmp_path: Path) -> None:
    create_world("default", tmp_path)
    first, second = World.load(tmp_path), World.load(tmp_path)  # two operators' kernels
    assert api_for(first).post(f"{REPO}/issues/1001/comments", json={"body": "one"}).status_code \
        == 201
    assert api_for(second).post(f"{REPO}/issues/1001/comments", json={"body": "two"}).status_code \
        == 201
    stored = World.load(tmp_path).state["github"]["comments"]["1001"]
    assert [c["body"] for c in stored] == ["one", "two"] and stored[0]["id"] != stored[1]["id"]


def test_a_failed_request_leaves_the_world_as_it_was(tmp_path: Path) -> None:
    world = create_world("default", tmp_path)
    before = (tmp_path / "world.json").read_bytes()
    try:
        with world.transaction():
            world.state["github"]["issues"].clear()
            raise RuntimeError("half-way")
    except RuntimeError:
        pass
    assert (tmp_path / "world.json").read_bytes() == before
    with world.transaction():
        assert world.state["github"]["issues"]  # re-read from disk, not the half-applied copy


def test_drills_started_together_on_one_directory_build_one_world(tmp_path: Path) -> None:
    code = """
import sys
from rollback_helpers.run.backends import create_drill_world
world = create_drill_world("default", sys.argv[1], speed=0, reuse=True)
print(world.token, world.reused)
"""
    children = [run_python(code, str(tmp_path / "world")) for _ in range(3)]
    answers = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        answers.append(out.split())
    assert len({token for token, _ in answers}) == 1  # all act in the same world
    assert sorted(reused for _, reused in answers) == ["False", "True", "True"]


def test_the_stored_clock_reads_the_worlds_time_as_another_process_left_it(tmp_path: Path) -> None:
    """The command line stamps a drill's record in the world's time, as the kernel moves it."""
    from rollback_helpers.sandbox.core.world import StoredClock

    world = create_world("default", tmp_path / "w")
    clock = StoredClock(tmp_path / "w")
    start = clock.now()
    assert start == world.now
    World.load(tmp_path / "w").sleep(90.0)  # another process (the kernel) waits 90 s
    assert clock.now() == start + 90.0
    clock.sleep(10.0)
    assert clock.now() == World.load(tmp_path / "w").now == start + 100.0
