"""Runs killed outright: the owner file, finding orphans, claiming them once, marking and storing
their notebooks. The processes are real (this one, and children that have ended)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from webhook_receiver import receiver

from rollback_helpers.records.archive import sha256_hex
from rollback_helpers.records.store import open_store
from rollback_helpers.run import archive
from rollback_helpers.run.owner import OWNER_FILE, WORKING_PREFIX, RunOwner, process_start, read_owner
from rollback_helpers.run.recover import (
    CLAIM,
    claim,
    find,
    mark_killed,
    recover,
    recover_all,
    store_once,
)

NAME = "20260610T090000Z-staging-path-a-dry-run.ipynb"


@pytest.fixture(autouse=True)
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What recovery keeps aside (a copy a store refused) lands in this test's folder."""
    folder = tmp_path / "private-state"
    monkeypatch.setenv("ROLLBACK_STATE_DIR", str(folder))


def ended_pid() -> int:
    """The pid of a process that has run and ended (reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def owner_of(store: Path, **changes: object) -> RunOwner:
    me = RunOwner.this_process(run_id="deadbeef0001", path="path-a", env="staging", dry_run=True,
                               backend="real", store=str(store), name=NAME,
                               argv=["run", "path-a", "--env", "staging"])
    return replace(me, **changes)  # type: ignore[arg-type]


def dead_owner(store: Path, **changes: object) -> RunOwner:
    return owner_of(store, pid=ended_pid(), **changes)


def partial_notebook(path: Path) -> None:
    """What papermill leaves on disk when the run dies in its second code cell."""
    nb = nbformat.v4.new_notebook()
    for i, status in enumerate(["completed", "running", "pending"]):
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## {i}. Step {i}"))
        nb.cells[-1].metadata["papermill"] = {"status": "completed" if status != "pending"
                                              else "pending"}
        cell = nbformat.v4.new_code_cell(f"run.step_{i}()")
        cell.metadata["papermill"] = {"status": status}
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"out {i}")] \
            if status != "pending" else []
        nb.cells.append(cell)
    nbformat.write(nb, str(path))


def working_folder(temp: Path, owner: RunOwner | None, *, notebook: bool = True) -> Path:
    folder = temp / f"{WORKING_PREFIX}{os.urandom(4).hex()}"
    folder.mkdir(parents=True)
    if owner is not None:
        owner.write(folder)
    if notebook:
        partial_notebook(folder / (owner.name if owner is not None else NAME))
    return folder


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- the owner file ---------------------------------------------------------------------------
def test_this_process_is_alive_and_an_ended_one_is_not(tmp_path: Path) -> None:
    me = owner_of(tmp_path)
    assert me.pid == os.getpid() and me.alive
    assert not replace(me, pid=ended_pid()).alive


def test_the_same_pid_started_at_another_time_is_a_recycled_pid_not_the_owner(
        tmp_path: Path) -> None:
    me = owner_of(tmp_path)
    assert me.process_started == process_start(os.getpid())
    assert not replace(me, process_started=me.process_started - 5.0).alive
    assert not replace(me, process_started=me.process_started + 5.0).alive


def test_the_owner_file_round_trips_and_holds_no_pasted_secret(tmp_path: Path) -> None:
    token = "ghp_" + "A1b2C3d4" * 5
    me = owner_of(tmp_path, sandbox_dir="/tmp/world")
    me = RunOwner.this_process(**{k: v for k, v in vars(me).items()
                                  if k not in ("pid", "process_started", "started_at")}
                               | {"argv": ["run", "path-a", "--reason", f"oops {token}"]})
    written = me.write(tmp_path)
    assert written.name == OWNER_FILE and token not in written.read_text()
    back = read_owner(tmp_path)
    assert back == me and back.argv[:3] == ["run", "path-a", "--reason"]
    assert back.command[0] == "rollback-runbook"


def test_a_missing_or_unreadable_owner_file_is_no_owner(tmp_path: Path) -> None:
    assert read_owner(tmp_path) is None
    (tmp_path / OWNER_FILE).write_text("{not json")
    assert read_owner(tmp_path) is None
    (tmp_path / OWNER_FILE).write_text(json.dumps({"pid": 1}))
    assert read_owner(tmp_path) is None


# -- finding and claiming -------------------------------------------------------------------------
def test_only_folders_whose_owner_is_gone_are_orphans(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    dead = working_folder(temp, dead_owner(tmp_path / "store"))
    live = working_folder(temp, owner_of(tmp_path / "store"))
    working_folder(temp, None)  # an older version's: no owner file
    found = find(temp)
    assert [o.folder for o in found.orphans] == [dead]
    assert [o.folder for o in found.running] == [live]


def test_an_orphan_is_claimed_once(tmp_path: Path) -> None:
    folder = working_folder(tmp_path, dead_owner(tmp_path / "store"))
    orphan = find(tmp_path).orphans[0]
    first = claim(orphan)
    assert first is not None and CLAIM in first.folder.name and not folder.exists()
    assert claim(orphan) is None  # the name is gone: someone else has it
    assert find(tmp_path).orphans == []  # claimed by a live process (this one)


def test_a_claim_whose_process_is_gone_is_claimed_again(tmp_path: Path) -> None:
    folder = working_folder(tmp_path, dead_owner(tmp_path / "store"))
    stale = folder.rename(folder.with_name(f"{folder.name}{CLAIM}{ended_pid()}-12345"))
    orphans = find(tmp_path).orphans
    assert [o.folder for o in orphans] == [stale]
    again = claim(orphans[0])
    assert again is not None and again.folder.name.startswith(f"{folder.name}{CLAIM}{os.getpid()}-")


# -- marking and storing --------------------------------------------------------------------------
def test_the_notebook_is_marked_as_a_killed_run(tmp_path: Path) -> None:
    folder = working_folder(tmp_path, None)
    outcome = mark_killed(folder / NAME, dead_owner(tmp_path), by="a test")
    assert (outcome.exit_code, outcome.outcome) == (137, "interrupted")
    assert outcome.failed_step == "1. Step 1" and outcome.last_step == "0. Step 0"
    assert "SIGKILL or the machine died" in outcome.error and "a test" in outcome.error
    nb = nbformat.read(str(folder / NAME), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.metadata["papermill"]["status"] for c in code] == ["completed", "interrupted",
                                                                 "not run"]
    assert code[0].outputs  # what the dead run did is kept
    assert archive.read_outcome(folder / NAME)["exit_code"] == 137


def test_a_notebook_never_written_is_archived_as_not_run(tmp_path: Path) -> None:
    folder = working_folder(tmp_path, None, notebook=False)
    owner = dead_owner(tmp_path)
    outcome = mark_killed(folder / NAME, owner, by="a test")
    assert outcome.exit_code == 137 and outcome.last_step == "none"
    # no output names the run (the kernel died before a save): its owner does
    assert owner.run_id and archive.read_outcome(folder / NAME)["run_id"] == owner.run_id
    text = (folder / NAME).read_text()
    assert '"status": "not run"' in text and '"status": "completed"' not in text


def test_a_dry_run_orphan_is_stored_once_and_its_folder_removed(tmp_path: Path) -> None:
    store = tmp_path / "incidents" / "drills"
    temp = tmp_path / "tmp"
    folder = working_folder(temp, dead_owner(store))
    lines = recover_all(temp, by="a test")
    assert len(lines) == 1 and lines[0].startswith("Recovered run deadbeef0001 (path-a on staging")
    stored = store / NAME
    assert f"archived {stored}" in lines[0] and sha256_hex(stored.read_bytes()) in lines[0]
    assert archive.read_outcome(stored)["outcome"] == "interrupted"
    assert archive.read_outcome(stored)["archive"] == str(stored)
    assert not folder.exists() and list(temp.iterdir()) == []
    assert recover_all(temp) == []  # nothing left to do


def test_a_recovery_killed_after_storing_does_not_store_twice(tmp_path: Path) -> None:
    """Safe to repeat: the folder of a recovery that stored the record and then died."""
    store, temp = tmp_path / "incidents", tmp_path / "tmp"
    owner = dead_owner(store)
    folder = working_folder(temp, owner)
    mark_killed(folder / NAME, owner, by="a recovery that was killed")
    first, _ = store_once(open_store(str(store)), owner, folder / NAME)
    assert first is not None
    lines = recover_all(temp)
    assert [p.name for p in store.iterdir()] == [NAME]
    assert f"archived {first.location} (SHA-256 {first.sha256})" in lines[0]
    assert not folder.exists()


def test_an_unwritable_store_keeps_the_copy_and_says_where(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store should be")
    temp = tmp_path / "tmp"
    working_folder(temp, dead_owner(blocker / "drills"))
    orphan = find(temp).orphans[0]
    recovery = recover(orphan)
    assert recovery is not None and not recovery.archived
    assert "NOT ARCHIVED" in recovery.lines[0] and "kept at" in recovery.lines[0]
    kept = Path(recovery.lines[0].split("kept at ", 1)[1].split(";", 1)[0])
    assert kept.is_file() and archive.read_outcome(kept)["exit_code"] == 137


def test_a_live_owner_and_an_owner_less_folder_are_left_alone(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    working_folder(temp, owner_of(tmp_path / "store"))
    working_folder(temp, None)
    before = snapshot(temp)
    assert recover_all(temp) == []
    assert snapshot(temp) == before
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("broken", ["config", "store"])
def test_a_recovery_that_cannot_proceed_is_one_line_and_leaves_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    temp = tmp_path / "tmp"
    owner = dead_owner(tmp_path / "store", dry_run=False)
    if broken == "store":
        owner = replace(owner, store="nosuchscheme://bucket/x")
    else:
        monkeypatch.setenv("ROLLBACK_RUNBOOK_CONFIG", str(tmp_path / "missing.toml"))
    folder = working_folder(temp, owner)
    lines = recover_all(temp)
    assert len(lines) == 1 and lines[0].startswith("Could not recover run deadbeef0001")
    assert f"left in {folder}" in lines[0] and "rollback-runbook recover" in lines[0]
    assert folder.is_dir() and (folder / NAME).is_file()


def test_the_killed_runs_end_is_announced_once_and_kept_in_its_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The webhooks hear of the killed run (it never told them); the deliveries are in the record."""
    store, temp = tmp_path / "incidents", tmp_path / "tmp"
    owner = dead_owner(store, dry_run=False, backend="sandbox", name=NAME.replace("-dry-run", ""))
    working_folder(temp, owner)
    with receiver("ok") as rec:
        monkeypatch.setenv("ROLLBACK_NOTIFY_DRILLS", rec.url())
        lines = recover_all(temp)
    assert len(rec.bodies) == 1 and "interrupted" in json.dumps(rec.bodies[0])
    assert "exit 137" in json.dumps(rec.bodies[0])
    assert "  notification 'interrupted': #1 (json webhook): delivered (HTTP 200)" in lines
    assert "there is no record comment to finish" in "\n".join(lines)  # no sandbox world
    assert archive.read_outcome(store / owner.name)["notifications"]


def test_a_run_killed_while_storing_its_record_keeps_its_own_outcome(tmp_path: Path) -> None:
    """The notebook had ended and its outcome was stamped: it is stored as it was, not as killed."""
    store, temp = tmp_path / "incidents", tmp_path / "tmp"
    folder = working_folder(temp, dead_owner(store))
    ended = archive.Outcome(path="path-a", env="staging", archive=str(store / NAME), exit_code=0,
                            outcome="success")
    archive.stamp_metadata(folder / NAME, ended)
    lines = recover_all(temp)
    assert "it had ended (success, exit 0) and was killed while its record was stored" in lines[0]
    stamped = archive.read_outcome(store / NAME)
    assert (stamped["exit_code"], stamped["outcome"]) == (0, "success")
    assert '"status": "interrupted"' not in (store / NAME).read_text()


def test_a_notebook_cut_off_mid_write_is_kept_aside_and_the_record_says_where(
        tmp_path: Path) -> None:
    folder = working_folder(tmp_path, None)
    cut = (folder / NAME).read_bytes()[:300]
    (folder / NAME).write_bytes(cut)
    outcome = mark_killed(folder / NAME, dead_owner(tmp_path), by="a test")
    assert outcome.exit_code == 137 and "cut off mid-write" in outcome.error
    kept = Path(outcome.error.split("kept at ", 1)[1].rstrip("."))
    assert kept.read_bytes() == cut
    assert '"status": "not run"' in (folder / NAME).read_text()
