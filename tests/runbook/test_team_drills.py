"""A rollback is a team's operation: drills run as separate processes on one sandbox world.

Two operators at once, a laptop that dies mid-run, and Ctrl-C / SIGTERM: each drill
here is a real ``rollback-runbook`` process, and "the middle" of a run is an
observable moment (a line in the world's call log, a state in the record
comment), never a sleep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import watchfiles
from processes import alive, descendants, wait_gone

from rollback_helpers.run import archive
from rollback_helpers.run.backends import discard_drill_world
from rollback_helpers.run.run_comment import parse_comment
from rollback_helpers.sandbox.core.world import World, read_calls
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.scenarios import create_world

pytestmark = pytest.mark.e2e
DEADLINE = 180.0  # seconds: a bound on waiting for a process, never a pause
DISPATCH = "POST /repos/renewa/renewa-one/actions/workflows/promote-image.yml/dispatches"
RESTORE = "mpg restore"


@pytest.fixture(autouse=True)
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every drill here keeps its working copy, kernel and temp world in this test's folder:
    a drill killed here is recovered by this test's next drill, never by another test's."""
    temp = tmp_path / "private-tmp"
    temp.mkdir(mode=0o711)
    monkeypatch.setenv("TMPDIR", str(temp))


def drill_argv(path: str, incidents: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rollback_helpers", "drill", path, "--env", "staging",
            "--incidents-dir", str(incidents), "--quiet", *extra]


def start(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen[str],
             where: Path) -> None:
    """Wait until ``condition`` holds, looking again each time a file under ``where`` changes;
    fail (with the drill's output) if the drill ends first or nothing comes within DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    # an idle tick now and then too: it catches a change made before the watch began
    for _ in watchfiles.watch(where, debounce=200, step=10, rust_timeout=1000,
                              yield_on_timeout=True, raise_interrupt=False):
        if condition():
            return
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the drill ended before {what}: {process.returncode}\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {DEADLINE}s")


def calls(world_dir: Path, call: str) -> list[dict[str, Any]]:
    return [c for c in read_calls(world_dir) if call in c["call"]]


def record_states(world_dir: Path) -> list[str]:
    """The states of every run's record comment in the world, oldest first."""
    state = json.loads((world_dir / "world.json").read_text())
    records = [parse_comment(c["body"]) for cs in state["github"]["comments"].values() for c in cs]
    return [r.state for r in records if r is not None]


def after(world_dir: Path, call: str) -> Callable[[], bool]:
    """True once ``call`` is in the log and a record-comment edit came after it."""
    def seen() -> bool:
        log = [c["call"] for c in read_calls(world_dir)]
        index = next((i for i, c in enumerate(log) if call in c), None)
        return index is not None and any("PATCH" in c and "/issues/comments/" in c
                                         for c in log[index:])
    return seen


def crash(process: subprocess.Popen[str]) -> None:
    """A laptop dying: the command and every process under it (its kernel) are SIGKILLed."""
    tree = [*psutil.Process(process.pid).children(recursive=True)]
    for p in [psutil.Process(process.pid), *tree]:
        p.kill()
    process.communicate(timeout=DEADLINE)
    psutil.wait_procs(tree, timeout=30)


def set_speed(directory: Path, speed: float) -> None:
    """Virtual seconds per real second, for every drill acting in the world from now on."""
    shared = World.load(directory)
    shared.state["speed"] = speed
    shared.save()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``world(scenario, speed)``: a sandbox world several drills share (a drill on an existing
    world keeps the world's speed); its servers stop after."""
    made: list[Path] = []

    def make(scenario: str, speed: float = 0.0) -> Path:
        directory = tmp_path / "world"
        directory.mkdir(mode=0o711)
        create_world(scenario, directory, speed=speed)
        made.append(directory)
        return directory

    yield make
    for directory in made:
        discard_drill_world(directory)


def test_two_operators_at_once_dispatch_once(world: Callable[..., Path], tmp_path: Path) -> None:
    """Two live drills started together on one world: one promote; the other is refused by
    the lock, exits 3 naming the holder, and still archives its notebook."""
    directory = world("default", 4.0)  # the first holds the lock while the second starts
    argv = drill_argv("path-a", tmp_path / "incidents", "--sandbox-dir", str(directory))
    first, second = start(argv), start(argv)
    wait_for(lambda: first.poll() is not None or second.poll() is not None, "one drill ended",
             first, directory)
    set_speed(directory, 0.0)  # the refused one has ended: the holder's waits need no real time
    results = [(p.wait(timeout=DEADLINE), *p.communicate()) for p in (first, second)]
    assert sorted(code for code, _, _ in results) == [0, 3], results
    loser = next(err for code, _, err in results if code == 3)
    assert "locked by" in loser and "since" in loser and "run " in loser
    assert len(calls(directory, DISPATCH)) == 1
    assert len(list((tmp_path / "incidents").glob("*.ipynb"))) == 2


def test_path_a_crash_after_dispatch_then_rerun_dispatches_once(
        world: Callable[..., Path], tmp_path: Path) -> None:
    """SIGKILL after the dispatch, then the same command again: it watches the run the first
    one dispatched (taking over the dead run's lock) and ends with exit 0 and one dispatch."""
    directory = world("default", 4.0)
    argv = drill_argv("path-a", tmp_path / "incidents", "--sandbox-dir", str(directory))
    first = start(argv)
    wait_for(after(directory, DISPATCH), "dispatch recorded", first, directory)
    crash(first)
    set_speed(directory, 0.0)
    again = subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(calls(directory, DISPATCH)) == 1
    assert record_states(directory) == ["interrupted", "succeeded"]
    assert World.load(directory).state["github"].get("git", {}).get("refs") == {}  # released


def test_path_a_rerun_after_success_changes_nothing(
        world: Callable[..., Path], tmp_path: Path) -> None:
    """A re-run after a successful rollback says so, exits 0, and promotes nothing further."""
    directory = world("default")
    argv = drill_argv("path-a", tmp_path / "incidents", "--sandbox-dir", str(directory),
                      "--speed", "0")
    assert subprocess.run(argv, capture_output=True, timeout=DEADLINE).returncode == 0
    again = subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE)
    assert again.returncode == 0, again.stderr
    assert len(calls(directory, DISPATCH)) == 1
    newest = max((tmp_path / "incidents").glob("*.ipynb"))
    assert "already rolled back" in newest.read_text()


def test_path_b_crash_after_restore_then_rerun_restores_once(
        world: Callable[..., Path], tmp_path: Path) -> None:
    """SIGKILL after the restore, then the same command: it uses the restored cluster."""
    directory = world("b-default", 20.0)
    argv = drill_argv("path-b", tmp_path / "incidents", "--sandbox-dir", str(directory))
    first = start(argv)
    wait_for(after(directory, RESTORE), "restore recorded", first, directory)
    crash(first)
    set_speed(directory, 0.0)
    again = subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(calls(directory, RESTORE)) == 1
    clusters = World.load(directory).state["fly"]["clusters"]
    assert len([c for c in clusters.values() if c["name"].endswith("-restore")]) == 1
    assert record_states(directory) == ["interrupted", "flip pending"]


def test_the_next_drill_removes_the_world_of_a_drill_killed_outright(tmp_path: Path) -> None:
    """SIGKILL leaves a drill's own temporary world behind, its database servers running; the
    next drill archives the killed run's record, stops those servers and deletes the world."""
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o711)
    env = {"TMPDIR": str(temp)}
    first = start(drill_argv("path-b", tmp_path / "incidents", "--speed", "20"), env=env)

    def world_dir() -> Path | None:
        return next(iter(temp.glob("rollback-drill-*")), None)

    wait_for(lambda: world_dir() is not None and bool(calls(world_dir(), RESTORE)),  # type: ignore[arg-type]
             "restore recorded", first, temp)
    directory = world_dir()
    assert directory is not None
    crash(first)
    servers = [info.pid for cid in World.load(directory).state["fly"]["clusters"]
               if (info := pg.server_info(directory, cid)) is not None]
    assert servers and all(alive(pid) for pid in servers)

    again = subprocess.run(drill_argv("path-a", tmp_path / "incidents", "--speed", "0"),
                           capture_output=True, text=True, timeout=DEADLINE,
                           env={**os.environ, **env})
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Archiving the record of 1 run(s) killed earlier" in again.stdout
    assert not directory.exists() and list(temp.glob("rollback-drill-*")) == []
    assert wait_gone(servers, timeout=30) == set()


@pytest.mark.parametrize(("path", "sig", "marker"), [
    ("path-a", signal.SIGTERM, DISPATCH), ("path-a", signal.SIGINT, DISPATCH),
    ("path-b", signal.SIGTERM, RESTORE), ("path-b", signal.SIGINT, RESTORE),
], ids=["path-a-SIGTERM", "path-a-SIGINT", "path-b-SIGTERM", "path-b-SIGINT"])
def test_a_signal_mid_run_leaves_nothing_behind(tmp_path: Path, path: str, sig: int,
                                                marker: str) -> None:
    """SIGTERM or Ctrl-C in the middle: exit 143/130, the archive says interrupted and names
    the last step, unrun cells are marked, and no process or temp world outlives the drill."""
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o711)
    process = start(drill_argv(path, tmp_path / "incidents", "--speed", "20"),
                    env={"TMPDIR": str(temp)})

    def world_dir() -> Path | None:
        return next(iter(temp.glob("rollback-drill-*")), None)

    wait_for(lambda: world_dir() is not None and bool(calls(world_dir(), marker)),  # type: ignore[arg-type]
             marker, process, temp)
    directory = world_dir()
    started = descendants(process.pid)
    os.kill(process.pid, sig)
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == (143 if sig == signal.SIGTERM else 130), out + err
    assert "Traceback" not in err
    outcome = archive.read_outcome(next((tmp_path / "incidents").glob("*.ipynb")))
    assert outcome["outcome"] == "interrupted"
    assert outcome["last_step"] and outcome["failed_step"]
    text = next((tmp_path / "incidents").glob("*.ipynb")).read_text()
    assert '"status": "not run"' in text
    assert list(temp.glob("rollback-drill-*")) == []
    assert wait_gone(started, timeout=30) == set()
    leftovers = [p for p in psutil.process_iter(["cmdline"])
                 if str(directory) in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def test_verify_flip_turns_flip_pending_into_flip_verified(
        world: Callable[..., Path], tmp_path: Path) -> None:
    """Path B's record comment says "flip pending" until verify-flip confirms the flip."""
    from rollback_helpers.sandbox.core.world import digest_for
    from rollback_helpers.sandbox.fly.flip import simulate_human_flip
    from rollback_helpers.sandbox.github.actions import promote_image

    directory = world("b-default")
    incidents = tmp_path / "incidents"
    b = subprocess.run(drill_argv("path-b", incidents, "--sandbox-dir", str(directory),
                                  "--speed", "0"), capture_output=True, text=True, timeout=DEADLINE)
    assert b.returncode == 0, b.stdout + b.stderr
    assert record_states(directory) == ["flip pending"]
    state = json.loads((directory / "world.json").read_text())
    body = next(c["body"] for cs in state["github"]["comments"].values() for c in cs)
    new_cluster = parse_comment(body).new_cluster  # type: ignore[union-attr]
    flipped = World.load(directory)
    with flipped.transaction():  # the checklist's step 1: the pre-deploy image first (Path A)
        assert promote_image(flipped, {"env": "staging",
                                       "image": f"registry.fly.io/renewa-one@{digest_for('v41')}"})
        flipped.advance()
    simulate_human_flip(flipped, "staging", new_cluster)
    flipped.save()
    check = subprocess.run(drill_argv("verify-flip", incidents, "--sandbox-dir", str(directory),
                                      "--speed", "0"), capture_output=True, text=True,
                           timeout=DEADLINE)
    assert check.returncode == 0, check.stdout + check.stderr
    assert record_states(directory) == ["flip verified"]


def someone_elses_run(directory: Path, image: str) -> int:
    """A promote run for staging that another engineer started a moment ago, still queued."""
    world = World.load(directory)
    gh, now = world.state["github"], world.iso_now()
    run_id = world.next_id("run", 7_000_000)
    gh["runs"].append({
        "id": run_id, "run_number": world.next_id("run_number", 100), "status": "queued",
        "conclusion": None, "head_branch": "main", "head_sha": "0" * 40,
        "inputs": {"env": "staging", "image": image}, "created_at": now, "updated_at": now,
        "run_started_at": None, "display_title": f"Promote {image} to staging",
        "actor": "bob"})
    world.schedule(5, "workflow_run_started", run_id=run_id)
    world.schedule(95, "workflow_run_completed", run_id=run_id)
    world.save()
    return run_id


@pytest.mark.parametrize("watch", [False, True])
def test_a_promote_in_flight_is_never_raced(world: Callable[..., Path], tmp_path: Path,
                                            watch: bool) -> None:
    """Someone's promote run for staging is queued: no dispatch. Without --watch-in-flight the
    run stops (exit 3) naming it; with it, the run watches that one and verifies."""
    from rollback_helpers.sandbox.core.world import digest_for

    directory = world("default")
    image = f"registry.fly.io/renewa-one@{digest_for('v41')}"
    run_id = someone_elses_run(directory, image)
    argv = drill_argv("path-a", tmp_path / "incidents", "--sandbox-dir", str(directory),
                      "--speed", "0", *(["--watch-in-flight"] if watch else []))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE)
    assert calls(directory, DISPATCH) == []
    if watch:
        assert done.returncode == 0, done.stdout + done.stderr
        assert record_states(directory) == ["succeeded"]
    else:
        assert done.returncode == 3
        assert f"run {run_id}" in done.stderr and "--watch-in-flight" in done.stderr


def change_world(directory: Path, change: Callable[[World], None]) -> None:
    """Change the world as one transaction, while drills act in it."""
    shared = World.load(directory)
    with shared.transaction():
        change(shared)


def restored_cluster(directory: Path, env_app: str) -> str:
    clusters = World.load(directory).state["fly"]["clusters"]
    return next(c["id"] for c in clusters.values()
                if c["name"] == f"{env_app}-db-restore")


def server_pids(directory: Path) -> dict[str, int]:
    """Each cluster's running server: cluster id → postmaster pid."""
    running = {home.name: pg.server_info(directory, home.name)
               for home in (directory / "clusters").glob("*/")}
    return {cluster: info.pid for cluster, info in running.items() if info is not None}


def test_a_drill_that_ends_stops_nothing_another_drill_uses(
        world: Callable[..., Path], tmp_path: Path) -> None:
    """Staging's Path B and development's verify-flip share one world: the verify-flip ends
    while Path B waits for its restored cluster, and stops no server Path B needs; Path B
    then verifies through the same servers, and the last drill out stops every server."""
    directory = world("b-two-environments", 1.0)  # Path B's wait: 300 s unless moved on
    incidents = tmp_path / "incidents"
    path_b = start(drill_argv("path-b", incidents, "--sandbox-dir", str(directory)))
    wait_for(after(directory, RESTORE), "restore recorded", path_b, directory)
    before = server_pids(directory)
    flip = subprocess.run(drill_argv("verify-flip", incidents, "--sandbox-dir", str(directory),
                                     "--env", "development"),
                          capture_output=True, text=True, timeout=DEADLINE)
    assert flip.returncode == 0, flip.stdout + flip.stderr
    assert path_b.poll() is None, "Path B ended before the verify-flip: nothing was shared"
    assert f"left running for 1 other process acting in it (pid {path_b.pid})" in flip.stdout
    assert server_pids(directory) == before  # nothing stopped, nothing restarted
    change_world(directory, lambda w: (w.state.update(now=w.now + 300), w.advance()))
    out, err = path_b.communicate(timeout=DEADLINE)
    assert path_b.returncode == 0, out + err
    assert "the last process out; stopped" in out
    assert "flip pending" in record_states(directory)
    assert server_pids(directory) == {}  # the last one out
    assert list((directory / "pids").glob("*")) == []
