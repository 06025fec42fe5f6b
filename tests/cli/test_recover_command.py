"""``rollback-runbook recover`` in-process, and what a run writes for it: the owner of its
working copy (absolute store, redacted command line) and a resume command without secrets."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.cli import recover as recover_command
from rollback_helpers.cli import run_end
from rollback_helpers.records.store import open_store
from rollback_helpers.run import archive
from rollback_helpers.run.owner import RunOwner, read_owner

TOKEN = "ghp_" + "Z9y8X7w6" * 5
ARGV = ["run", "path-a", "--env", "staging", "--reason", f"pasted {TOKEN} by mistake"]


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The state folder, where working copies are looked for."""
    folder = tmp_path / "state"
    folder.mkdir()
    monkeypatch.setenv("ROLLBACK_STATE_DIR", str(folder))
    return folder


def run_args() -> argparse.Namespace:
    args = cli.build_parser().parse_args(ARGV)
    args.argv, args.run_id = ARGV, "cafe00000001"
    return args


def test_the_owner_names_an_absolute_store_and_no_pasted_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    owner = recover_command.owner(run_args(), open_store("incidents"), "x.ipynb",
                                  backend="real", sandbox_dir=None)
    assert owner.store == str(tmp_path / "incidents") and owner.name == "x.ipynb"
    assert owner.run_id == "cafe00000001" and owner.dry_run is True and owner.backend == "real"
    assert TOKEN not in " ".join(owner.argv) and owner.argv[:4] == ARGV[:4]
    assert owner.alive and owner.cwd == str(tmp_path)


def test_the_resume_command_carries_no_pasted_secret(tmp_path: Path) -> None:
    outcome = archive.Outcome(path="path-a", env="staging", archive="-", exit_code=130,
                              outcome="interrupted")
    closing = run_end.closing(run_args(), outcome, tmp_path / "x.ipynb", None, sandbox_dir="")
    assert TOKEN not in closing.resume_command
    assert closing.resume_command.startswith("rollback-runbook run path-a --env staging")


def test_recover_dry_run_lists_a_killed_run_and_changes_nothing(
        temp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    folder = temp / "rollback-run-abc"
    folder.mkdir()
    dead = RunOwner.this_process(run_id="dead00000001", path="path-b", env="staging",
                                 dry_run=False, backend="real", store=str(tmp_path / "inc"),
                                 name="n.ipynb", argv=["run", "path-b"])
    RunOwner(**{**vars(dead), "pid": child.pid}).write(folder)
    assert cli.main(["recover", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Killed, not archived yet: run dead00000001 (path-b on staging, live" in out
    assert f"{tmp_path / 'inc'}/n.ipynb" in out and "1 killed run(s) to recover" in out
    assert read_owner(folder) is not None and [p.name for p in temp.iterdir()] == [folder.name]
    assert not (tmp_path / "inc").exists()


def test_recover_with_nothing_to_do_says_so(temp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["recover"]) == 0
    assert f"No killed runs to recover in {temp}." in capsys.readouterr().out
