"""A walkthrough ends like a headless run: when its Finish cell archives it, the run's record
comment gets the command line's final edit (state, exit code, archive, SHA-256) and the team gets
the end notification, once per outcome, wherever the record is stored.

The walkthrough is driven by the in-process JupyterLab stand-in (``frontend``), in a sandbox
world; notifications go to a real webhook receiver on loopback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import nbformat
import pytest
from test_interactive import gate_button, walkthrough
from webhook_receiver import Receiver, receiver

from rollback_helpers.cli import main as cli
from rollback_helpers.run.run_comment import RunComment, marker, parse_comment
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.ui.display import METADATA_KEY

pytestmark = pytest.mark.e2e
ISSUE = "1010"  # the bad deploy's record in the default scenario


@pytest.fixture(autouse=True)
def no_leftover_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GITHUB_TOKEN", "GH_TOKEN"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with receiver("ok") as rec:
        monkeypatch.setenv("ROLLBACK_NOTIFY_DRILLS", rec.url())
        yield rec


def run_comments(tmp_path: Path, issue: str = ISSUE) -> list[RunComment]:
    """The rollback-runbook record comments on the bad deploy's issue, as GitHub holds them."""
    comments = World.load(tmp_path / "world").state["github"]["comments"][issue]
    return [r for c in comments if (r := parse_comment(str(c["body"]))) is not None]


def finish(lab: Any, saved: Path) -> str:
    """Save (Ctrl+S), run the Finish cell; its output's text."""
    lab.save(saved)
    cell = lab.index("run.finish()")
    lab.run(cell)
    return str(lab.texts(cell))


def verify(location: str, tmp_path: Path) -> int:
    return cli.main(["verify-record", location, "--sandbox-dir", str(tmp_path / "world")])


def one_byte_changed(data: bytes) -> bytes:
    changed = data.replace(b"Finish: archived", b"Finish: archiveD", 1)
    assert changed != data and len(changed) == len(data)
    return changed


def test_finish_edits_the_record_comment_and_tells_the_team(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch,
        hook: Receiver) -> None:
    """The comment ends as `succeeded`, exit 0, with the archive and its SHA-256; verify-record
    passes on it and catches one changed byte; the team hears `success` once, with the env,
    path, operator, outcome, the record comment's link and the archive's location."""
    lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch)
    text = finish(lab, saved)
    assert "Finish: archived" in text and f"Record comment on #{ISSUE}: succeeded" in text
    (archived,) = (tmp_path / "incidents" / "drills").glob("*-staging-path-a.ipynb")
    (record,) = run_comments(tmp_path)
    digest = hashlib.sha256(archived.read_bytes()).hexdigest()
    assert (record.state, record.exit_code, record.archive, record.sha256) == (
        "succeeded", "0", str(archived), digest)
    assert verify(str(archived), tmp_path) == 0
    ctx = lab.shell.user_ns["run"].ctx
    assert hook.events() == ["start", "success"]
    body = hook.bodies[1]
    assert {k: body[k] for k in ("env", "path", "operator", "outcome", "run_id", "archive")} == {
        "env": "staging", "path": "path-a", "operator": ctx.operator,
        "outcome": "exit 0: success", "run_id": ctx.run_id, "archive": str(archived)}
    assert f"/issues/{ISSUE}#issuecomment-" in body["record"]
    told = nbformat.read(str(archived), as_version=4).metadata[METADATA_KEY]["notifications"]
    assert [(t["event"], t["ok"]) for t in told] == [("success", True)]  # part of the record
    assert ctx.lifecycle.lock.held() is None  # the lock is released, as the command line does

    archived.write_bytes(one_byte_changed(archived.read_bytes()))
    assert verify(str(archived), tmp_path) == 8


def test_a_failed_walkthrough_ends_its_comment_as_failed(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch,
        hook: Receiver) -> None:
    """A failed step: the comment says `failed`, the exit code, the error and what to do next;
    the team hears `failure` with the error."""
    lab, saved = walkthrough(tmp_path, frontend, "workflow-fails", monkeypatch)
    issue = "1007"  # the bad deploy's record in this scenario
    text = finish(lab, saved)
    assert f"Record comment on #{issue}: failed" in text
    assert "Lock of staging released." in text  # no Summary ran: Finish releases it
    (record,) = run_comments(tmp_path, issue)
    (archived,) = (tmp_path / "incidents" / "drills").glob("*.ipynb")
    assert (record.state, record.exit_code, record.archive) == ("failed", "5", str(archived))
    assert record.error.startswith("WorkflowFailed") and record.next_step
    assert hook.events() == ["start", "failure"]
    assert hook.bodies[1]["outcome"].startswith("exit 5: WorkflowFailed")
    assert verify(str(archived), tmp_path) == 0


def test_finishing_again_edits_the_same_comment_and_tells_nobody_twice(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch,
        hook: Receiver) -> None:
    """Finish twice, then once more from a kernel that no longer remembers telling the team
    (a restart): one comment, naming the newest copy and its hash; one `success` notice."""
    lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch)
    finish(lab, saved)
    second = finish(lab, saved)
    assert "not sent again" in second
    lab.shell.user_ns["run"].ctx.told_end.clear()  # what a restarted kernel has forgotten
    third = finish(lab, saved)
    assert "not sent again" in third  # the record comment shows this end already
    copies = sorted((tmp_path / "incidents" / "drills").glob("*.ipynb"), key=lambda p: p.stat(
        ).st_mtime_ns)
    assert len(copies) == 3  # records are never overwritten
    (record,) = run_comments(tmp_path)
    newest = copies[-1]
    assert (record.archive, record.sha256) == (
        str(newest), hashlib.sha256(newest.read_bytes()).hexdigest())
    assert hook.events() == ["start", "success"]
    ctx = lab.shell.user_ns["run"].ctx
    bodies = World.load(tmp_path / "world").state["github"]["comments"][ISSUE]
    assert sum(marker(ctx.run_id, "path-a", "staging") in str(c["body"]) for c in bodies) == 1
    assert verify(str(newest), tmp_path) == 0


def test_a_5xx_on_the_final_edit_keeps_the_archive_and_names_the_command(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch,
        hook: Receiver) -> None:
    """GitHub answers 502 to everything at Finish: the record is archived all the same, the team
    is told, and the report names the command that publishes the record once GitHub answers;
    that command then makes verify-record pass."""
    lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch)
    world = World.load(tmp_path / "world")
    done = int(world.state["github"]["request_count"])
    world.state["github"]["faults"]["server_error_on"] = list(range(done + 1, done + 200))
    world.save()
    text = finish(lab, saved)
    (archived,) = (tmp_path / "incidents" / "drills").glob("*.ipynb")
    assert "Finish: archived" in text and f"#{ISSUE} could not be updated" in text
    command = (f"rollback-runbook publish-record {archived} --sandbox-dir "
               f"{tmp_path / 'world'}")
    assert command in text
    assert hook.events() == ["start", "success"]
    world = World.load(tmp_path / "world")
    world.state["github"]["faults"]["server_error_on"] = []
    world.save()
    (record,) = run_comments(tmp_path)
    assert record.sha256 == ""  # nothing published yet
    assert verify(str(archived), tmp_path) == 10
    assert cli.main(command.split()[1:]) == 0
    (record,) = run_comments(tmp_path)
    assert (record.state, record.exit_code, record.sha256) == (
        "succeeded", "0", hashlib.sha256(archived.read_bytes()).hexdigest())
    assert verify(str(archived), tmp_path) == 0
    assert cli.main(command.split()[1:]) == 0  # already published: changes nothing


def test_publish_record_never_replaces_a_published_hash(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A changed record cannot be made to verify by publishing it: exit 8, nothing edited."""
    lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch)
    finish(lab, saved)
    (archived,) = (tmp_path / "incidents" / "drills").glob("*.ipynb")
    (before,) = run_comments(tmp_path)
    archived.write_bytes(one_byte_changed(archived.read_bytes()))
    capsys.readouterr()
    assert cli.main(["publish-record", str(archived), "--sandbox-dir",
                     str(tmp_path / "world")]) == 8
    assert "Nothing was changed" in capsys.readouterr().err
    assert run_comments(tmp_path) == [before]


def test_a_walkthrough_archived_to_s3_ends_the_same_way(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch,
        hook: Receiver, s3_bucket: str) -> None:
    """An object store: the team is told (with the s3:// location), the comment names it and its
    SHA-256, and verify-record checks the object."""
    store = f"s3://{s3_bucket}/incidents"
    lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch, incidents=store)
    assert "Finish: archived" in finish(lab, saved)
    s3 = fsspec.filesystem("s3", skip_instance_cache=True)
    (key,) = s3.find(f"{s3_bucket}/incidents")
    location = f"s3://{key}"
    assert location.startswith(f"{store}/drills/")
    (record,) = run_comments(tmp_path)
    assert (record.archive, record.sha256) == (location, hashlib.sha256(s3.cat(key)).hexdigest())
    assert hook.events() == ["start", "success"] and hook.bodies[1]["archive"] == location
    assert verify(location, tmp_path) == 0


def test_a_walkthrough_archived_to_a_github_folder_ends_the_same_way(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch,
        hook: Receiver) -> None:
    """A GitHub folder (the sandbox's repository): told with the github:// location, which the
    comment names with the SHA-256 of the committed file; verify-record reads it back."""
    store = "github://renewa/renewa-one@main/incident-records"
    lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch, incidents=store)
    assert "Finish: archived" in finish(lab, saved)
    files = World.load(tmp_path / "world").state["github"]["files"]
    (path,) = [p for p in files if p.startswith("incident-records/drills/")]
    location = f"{store}/drills/{path.rsplit('/', 1)[-1]}"
    (record,) = run_comments(tmp_path)
    assert (record.archive, record.sha256) == (
        location, hashlib.sha256(str(files[path]).encode()).hexdigest())
    assert hook.events() == ["start", "success"] and hook.bodies[1]["archive"] == location
    assert verify(location, tmp_path) == 0


def test_an_approval_that_lapsed_ends_its_record_comment_interrupted(
        tmp_path: Path, frontend: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Approved, then the plan changed (the approval is dropped) and nobody approved again: the
    walkthrough changed nothing, so Finish does not call its record comment a success; it ends
    interrupted (exit code 130), saying how to carry on, and the lock is free."""
    lab, saved = walkthrough(tmp_path, frontend, "default", monkeypatch, approve=False)
    gate_button(lab.widgets(lab.index("run.plan()"))[0]).click()
    run = lab.shell.user_ns["run"]
    run.approval = None  # what resolve_target does when it finds another plan
    run.ctx.go_dry("the plan changed after the approval: press the button again")
    lab.run_from(lab.index("run.dispatch()"))
    assert "Finish: archived" in finish(lab, saved)
    (record,) = run_comments(tmp_path)
    assert record.state == "interrupted" and record.exit_code == "130"
    assert "press the plan's button" in record.next_step
    assert World.load(tmp_path / "world").state["github"]["git"]["refs"] == {}
    assert World.load(tmp_path / "world").state["github"]["runs"] == []  # nothing dispatched
