"""A drill killed outright (SIGKILL: the laptop died) still leaves its record: the next drill, or
``rollback-runbook recover``, archives the dead run's notebook, finishes its record comment and
releases its lock. Every drill is a real process with its own temp folder, killed at an
observable moment (its dispatch in the world's call log), never after a sleep. Its working copy
waits in the user's state folder (this test's own: ``ROLLBACK_STATE_DIR``), found whatever
``TMPDIR`` the recovering process has."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
import pytest
from processes import wait_gone
from test_team_drills import (
    DEADLINE,
    DISPATCH,
    RESTORE,
    after,
    calls,
    crash,
    record_states,
    set_speed,
    start,
    wait_for,
    world,
)

from rollback_helpers.run import archive
from rollback_helpers.run.backends import discard_drill_world
from rollback_helpers.run.interrupt import KERNEL_MARK
from rollback_helpers.run.owner import RunOwner, read_owner
from rollback_helpers.run.run_comment import RunComment, parse_comment
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.postgres import wal as pg_wal

pytestmark = pytest.mark.e2e
__all__ = ["world"]  # the fixture, shared with the team drills


@pytest.fixture
def state(private_state_dir: Path) -> Path:
    """The state folder every drill of this test writes its working copy to."""
    return private_state_dir


def working_copies(state: Path) -> list[Path]:
    return list(state.glob("rollback-run-*"))
CLI = [sys.executable, "-m", "rollback_helpers"]
PITR_SOURCE = "w3k8p1x9m2q7v4zr"  # staging's v2 cluster in b-pitr


def killed_drill(directory: Path, tmp_path: Path, state: Path, *, only_the_command: bool = False
                 ) -> tuple[list[str], dict[str, str], RunOwner]:
    """A live Path A drill on ``directory``'s world, SIGKILLed once it has dispatched (the
    command and its kernel; or the command alone, as the out-of-memory killer would); its
    command, its environment (a temp folder of its own, the records under incidents/) and
    the owner its working copy (in ``state``, private to this user) names."""
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o711)
    env = {"TMPDIR": str(temp), "ROLLBACK_INCIDENTS_DIR": str(tmp_path / "incidents")}
    argv = [*CLI, "drill", "path-a", "--env", "staging", "--quiet", "--sandbox-dir",
            str(directory)]
    first = start(argv, env)
    wait_for(after(directory, DISPATCH), "dispatch recorded", first, directory)
    if only_the_command:
        kernels = {p.pid for p in psutil.Process(first.pid).children(recursive=True)
                   if KERNEL_MARK in " ".join(p.cmdline())}
        assert kernels
        first.kill()
        first.communicate(timeout=DEADLINE)
        assert wait_gone(kernels, timeout=DEADLINE) == set()  # its parent is gone: it ends
    else:
        crash(first)
    folders = working_copies(state)
    assert len(folders) == 1, folders
    assert list(temp.glob("rollback-run-*")) == []  # nothing of it in TMPDIR
    assert stat.S_IMODE(folders[0].stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders[0].iterdir()} == {0o600}
    owner = read_owner(folders[0])
    assert owner is not None and owner.pid == first.pid and not owner.alive
    return argv, env, owner


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=DEADLINE,
                          env={**os.environ, **env})


def comment_of(directory: Path, run_id: str) -> RunComment:
    state = json.loads((directory / "world.json").read_text())
    records = [parse_comment(c["body"]) for cs in state["github"]["comments"].values() for c in cs]
    return next(r for r in records if r is not None and r.run_id == run_id)


def assert_archived(directory: Path, record: Path, dead: RunOwner) -> None:
    """The dead run's notebook, stored, marked, published on its record comment, verified."""
    outcome = archive.read_outcome(record)
    assert (outcome["exit_code"], outcome["outcome"]) == (137, "interrupted")
    assert outcome["run_id"] == dead.run_id and outcome["archive"] == str(record)
    assert "SIGKILL or the machine died" in outcome["error"]
    nb = json.loads(record.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    statuses = [c["metadata"]["papermill"]["status"] for c in code]
    assert "not run" in statuses and statuses.count("completed") >= 3, statuses
    assert any("dispatch" in json.dumps(c["outputs"]).lower() for c in code)  # what it did
    comment = comment_of(directory, dead.run_id)
    assert comment.archive == str(record) and comment.exit_code == "137"
    assert comment.sha256 == hashlib.sha256(record.read_bytes()).hexdigest()
    verified = run([*CLI, "verify-record", str(record), "--sandbox-dir", str(directory)], {})
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_drill_killed_after_its_dispatch_is_archived_by_the_next_drill(
        world: Callable[..., Path], tmp_path: Path, state: Path) -> None:
    """The command alone is killed (its kernel then ends on its own); the same command again
    archives the dead run's record, then carries the rollback on (one dispatch)."""
    directory = world("default", 4.0)
    argv, env, dead = killed_drill(directory, tmp_path, state, only_the_command=True)
    set_speed(directory, 0.0)
    again = run(argv, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Archiving the record of 1 run(s) killed earlier on this machine first" in again.stdout
    line = next(x for x in again.stdout.splitlines() if x.startswith("Recovered run "))
    assert line.startswith(f"Recovered run {dead.run_id} (path-a on staging, interrupted")
    assert shlex.join(dead.command) in line
    record = tmp_path / "incidents" / "drills" / dead.name
    assert f"archived {record}" in line
    assert_archived(directory, record, dead)
    assert len(list(record.parent.glob("*.ipynb"))) == 2  # the dead run's and this one's
    assert working_copies(state) == []
    assert len(calls(directory, DISPATCH)) == 1
    assert record_states(directory) == ["interrupted", "succeeded"]
    assert comment_of(directory, dead.run_id).next_step.startswith("carried on by run")


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_recover_dry_run_lists_and_two_recoveries_at_once_recover_once(
        world: Callable[..., Path], tmp_path: Path, state: Path) -> None:
    """``recover --dry-run`` only lists; two ``recover`` started together archive it once. They
    run with another TMPDIR than the killed drill's (a new shell, a reboot that emptied /tmp):
    the working copy is in the user's state folder, not in the temp folder."""
    directory = world("default", 4.0)
    _, env, dead = killed_drill(directory, tmp_path, state)
    other_temp = tmp_path / "another-tmp"
    other_temp.mkdir(mode=0o711)
    env = {**env, "TMPDIR": str(other_temp)}
    drills = tmp_path / "incidents" / "drills"
    before = snapshot(state), (directory / "world.json").read_bytes()
    listed = run([*CLI, "recover", "--dry-run"], env)
    assert listed.returncode == 0, listed.stderr
    assert f"Killed, not archived yet: run {dead.run_id} (path-a on staging, live" in listed.stdout
    assert f"{drills}/{dead.name}" in listed.stdout
    assert (snapshot(state), (directory / "world.json").read_bytes()) == before
    assert list(drills.glob("*.ipynb")) == []

    both = [start([*CLI, "recover"], env) for _ in range(2)]
    results = [(p.wait(timeout=DEADLINE), *p.communicate()) for p in both]
    assert [code for code, _, _ in results] == [0, 0], results
    said = "".join(out for _, out, _ in results)
    assert said.count(f"Recovered run {dead.run_id}") == 1, said
    assert [p.name for p in drills.glob("*.ipynb")] == [dead.name]
    assert_archived(directory, drills / dead.name, dead)
    assert working_copies(state) == []
    assert World.load(directory).state["github"].get("git", {}).get("refs") == {}  # released
    assert record_states(directory) == ["interrupted"]


def test_a_killed_drill_on_a_temporary_world_has_that_world_removed_by_recover(
        tmp_path: Path, state: Path) -> None:
    """A drill without --sandbox-dir removes its world when it ends; killed, it cannot, so
    recovery does, once the record comment is finished in it."""
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o711)
    env = {"TMPDIR": str(temp), "ROLLBACK_INCIDENTS_DIR": str(tmp_path / "incidents")}
    process = start([*CLI, "drill", "path-a", "--env", "staging", "--quiet", "--speed", "4"], env)

    def world_dir() -> Path | None:
        return next(iter(temp.glob("rollback-drill-*")), None)

    wait_for(lambda: world_dir() is not None and after(world_dir(), DISPATCH)(),  # type: ignore[arg-type]
             "dispatch recorded", process, temp)
    directory = world_dir()
    assert directory is not None
    try:
        crash(process)
        recovered = run([*CLI, "recover"], env)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        assert "Record comment on #" in recovered.stdout and "Lock of staging released." \
            in recovered.stdout
        assert not directory.exists() and working_copies(state) == []
        records = list((tmp_path / "incidents" / "drills").glob("*.ipynb"))
        assert len(records) == 1 and archive.read_outcome(records[0])["exit_code"] == 137
        leftovers = [p for p in psutil.process_iter(["cmdline"])
                     if str(directory) in " ".join(p.info["cmdline"] or [])]
        assert leftovers == []
    finally:
        if directory.exists():
            discard_drill_world(directory)


def test_a_running_drills_working_copy_is_left_alone(
        world: Callable[..., Path], tmp_path: Path, state: Path) -> None:
    """``recover`` during a drill (another operator's run on the same machine) leaves it be;
    the drill then archives its own record as usual."""
    directory = world("default", 4.0)
    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o711)
    env = {"TMPDIR": str(temp), "ROLLBACK_INCIDENTS_DIR": str(tmp_path / "incidents")}
    drill = start([*CLI, "drill", "path-a", "--env", "staging", "--quiet", "--sandbox-dir",
                   str(directory)], env)
    wait_for(after(directory, DISPATCH), "dispatch recorded", drill, directory)
    folders = working_copies(state)
    listed = run([*CLI, "recover"], env)
    assert listed.returncode == 0, listed.stderr
    assert "Still running, left alone: run " in listed.stdout and f"pid {drill.pid}" in listed.stdout
    assert "No killed runs to recover" in listed.stdout
    assert len(folders) == 1 and working_copies(state) == folders
    set_speed(directory, 0.0)
    out, err = drill.communicate(timeout=DEADLINE)
    assert drill.returncode == 0, out + err
    records = list((tmp_path / "incidents" / "drills").glob("*.ipynb"))
    assert len(records) == 1 and archive.read_outcome(records[0])["outcome"] == "success"


def held_back_segment(directory: Path) -> tuple[Path, bytes]:
    """The first WAL segment a point-in-time restore of b-pitr's backup replays, swapped in the
    source's archive for a named pipe: the restore's ``cp`` blocks on it until the test writes.
    Returns the pipe and the segment's real bytes."""
    source = World.load(directory).state["fly"]["clusters"][PITR_SOURCE]
    backup = next(b for b in source["backups"] if b.get("sandbox_copy"))
    label = (directory / "backups" / backup["id"] / "backup_label").read_text()
    segment = label.split("(file ", 1)[1].split(")", 1)[0]
    pipe = pg_wal.wal_archive(directory, PITR_SOURCE) / segment
    real = pipe.read_bytes()
    pipe.unlink()
    os.mkfifo(pipe, 0o644)
    return pipe, real


def test_a_path_b_drill_killed_during_its_restore_carries_on(
        world: Callable[..., Path], tmp_path: Path) -> None:
    """SIGKILL while ``mpg restore`` is building the new cluster (its server replaying a WAL
    segment the test holds back): the world never heard of that cluster, only a half-built
    server is left on disk. The same command again restores and succeeds, and the call log
    holds one ``mpg restore``."""
    directory = world("b-pitr")
    pipe, real = held_back_segment(directory)
    env = {"ROLLBACK_INCIDENTS_DIR": str(tmp_path / "incidents")}
    argv = [*CLI, "drill", "path-b", "--env", "staging", "--quiet", "--pitr-time",
            "--sandbox-dir", str(directory)]
    opened: list[int] = []
    writer = threading.Thread(target=lambda: opened.append(os.open(pipe, os.O_WRONLY)),
                              daemon=True)
    writer.start()  # returns once the restoring server's `cp` opens the pipe to read it
    first = start(argv, env)
    writer.join(timeout=DEADLINE)
    if not opened:
        os.close(os.open(pipe, os.O_RDONLY | os.O_NONBLOCK))  # frees the writer
        first.kill()
        pytest.fail("the drill never read the held-back segment: "
                    + "".join(first.communicate(timeout=DEADLINE)))
    crash(first)  # in the middle of `mpg restore`
    # a `cp` that outlived the kill may finish (or its reader is gone: a broken pipe)
    with contextlib.suppress(BrokenPipeError), os.fdopen(opened[0], "wb") as out:
        out.write(real)
    pipe.unlink()
    pipe.write_bytes(real)
    known = set(World.load(directory).state["fly"]["clusters"])
    half_built = {p.name for p in (directory / "clusters").iterdir()} - known
    assert len(half_built) == 1, half_built
    assert calls(directory, RESTORE) == []  # the killed call never reached the world

    again = run(argv, env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Recovered run " in again.stdout
    assert len(calls(directory, RESTORE)) == 1
    clusters = World.load(directory).state["fly"]["clusters"]
    restored = [c for c in clusters.values() if c.get("restored_from")]
    assert len(restored) == 1 and restored[0]["status"] == "ready"
    assert record_states(directory) == ["interrupted", "flip pending"]
    info = pg.start_server(directory, restored[0]["id"])
    with psycopg.connect(pg.superuser_dsn(info)) as conn:
        assert conn.execute("SELECT count(*) FROM meter_readings").fetchone() == (624,)
