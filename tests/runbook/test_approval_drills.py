"""The two-person rule and notifications, end to end: real drills on the sandbox.

Production needs two people. Each approval scenario names its approvers, their
permission, what they do and when (virtual time); the drill runs at instant speed.
Notifications go to a real webhook receiver on loopback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from webhook_receiver import receiver

from rollback_helpers.cli import main as cli
from rollback_helpers.clock import parse_iso
from rollback_helpers.run import archive
from rollback_helpers.run.backends import discard_drill_world
from rollback_helpers.run.run_comment import parse_comment
from rollback_helpers.sandbox.core.world import World

pytestmark = pytest.mark.e2e
DISPATCH = "POST /repos/renewa/renewa-one/actions/workflows/promote-image.yml/dispatches"


@pytest.fixture(autouse=True)
def discard_the_world(tmp_path: Path) -> Iterator[None]:
    """A drill's --sandbox-dir world is kept on purpose; the test discards it, with its
    servers' data (which may live outside tmp_path)."""
    yield
    if (tmp_path / "sandbox").is_dir():
        discard_drill_world(tmp_path / "sandbox")


class Drill:
    def __init__(self, tmp_path: Path, scenario: str, *extra: str, path: str = "path-a",
                 env: str = "production") -> None:
        self.sandbox = tmp_path / "sandbox"
        incidents = tmp_path / "incidents"
        confirm = ["--confirm", "production"] if env == "production" else []
        self.exit_code = cli.main(["drill", path, "--env", env, "--scenario", scenario,
                                   "--speed", "0", "--sandbox-dir", str(self.sandbox),
                                   "--incidents-dir", str(incidents), "--quiet", *confirm, *extra])
        [self.archive] = sorted(incidents.glob("*.ipynb"))
        self.world = World.load(self.sandbox)
        self.text = self.archive.read_text()
        self.outcome: dict[str, Any] = archive.read_outcome(self.archive)

    def dispatches(self) -> list[dict[str, Any]]:
        return [c for c in self.world.calls() if c["call"] == DISPATCH]

    def record(self) -> Any:
        comments = [c for cs in self.world.state["github"]["comments"].values() for c in cs]
        return next(r for r in (parse_comment(c["body"]) for c in comments) if r is not None)

    def record_number(self) -> int:
        return next(int(n) for n, cs in self.world.state["github"]["comments"].items()
                    if any(parse_comment(c["body"]) for c in cs))

    def running(self, app: str = "renewa-one") -> set[str]:
        return {m["image"] for m in self.world.state["fly"]["apps"][app]["machines"]}


def test_a_production_drill_with_the_sandbox_teammate_runs_end_to_end_and_says_what_was_drilled(
        tmp_path: Path) -> None:
    """--teammate-approves plays the second person: the run that would wait (exit 11) rolls
    production back; the record names the scenario and environment drilled, and which runbook
    ran it; its links point at a host no one can mistake for the real repository."""
    drill = Drill(tmp_path, "approval-missing", "--teammate-approves")
    assert drill.exit_code == 0 and drill.outcome["outcome"] == "success"
    assert drill.running() == {"v41"} and len(drill.dispatches()) == 1
    assert (drill.outcome["env"], drill.outcome["parameters"]["scenario"]) == (
        "production", "approval-missing")
    assert any(d["who"] == "sandbox-teammate" for d in drill.outcome["decisions"]), \
        drill.outcome["decisions"]
    assert drill.outcome["runbook_version"] and drill.outcome["operator"]
    assert "https://github.com/renewa" not in drill.text
    assert "https://github.sandbox.invalid/renewa/renewa-one/issues/" in drill.text


def test_a_production_path_b_drill_with_the_sandbox_teammate_restores(tmp_path: Path) -> None:
    """Path B on production, practised end to end: the teammate approves, the backup is
    restored into a new cluster and verified; the record names b-production and production."""
    drill = Drill(tmp_path, "b-production", "--teammate-approves", path="path-b")
    assert drill.exit_code == 0 and drill.outcome["outcome"] == "success"
    assert (drill.outcome["env"], drill.outcome["parameters"]["scenario"]) == (
        "production", "b-production")
    assert drill.outcome["facts"].get("new_cluster")
    assert any(d["who"] == "sandbox-teammate" for d in drill.outcome["decisions"])


def test_production_without_a_second_approver_dispatches_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 11, nothing dispatched, and the run says it waits for approval by alice or bob."""
    drill = Drill(tmp_path, "approval-missing")
    err = capsys.readouterr().err
    assert drill.exit_code == 11 and drill.outcome["outcome"] == "not-approved"
    assert drill.dispatches() == [] and drill.running() == {"v42"}
    assert "still waiting for approval" in err and "by alice, bob (write access" in err
    assert "carol" not in err  # read access: not someone who may approve
    record = drill.record()
    assert record.plan and "needs 1 more: comment /approve" in record.approvals
    assert "Waiting for approval by alice, bob" in drill.text


def test_with_an_approver_it_proceeds_and_the_approval_is_in_the_archive(tmp_path: Path) -> None:
    drill = Drill(tmp_path, "approval-granted")
    assert drill.exit_code == 0, drill.outcome
    assert len(drill.dispatches()) == 1 and drill.running() == {"v41"}
    approvals = [d for d in drill.outcome["decisions"] if d["step"] == "approval"]
    assert len(approvals) == 1
    [approval] = approvals
    assert approval["who"] == "alice" and approval["what"].startswith("approve: Roll back production")
    assert approval["how"].startswith("/approve comment on #")
    assert "written 2026-06-10T09:3" in approval["how"]
    first_dispatch = drill.dispatches()[0]["t"]
    assert approval["how"].split("written ")[1][:20] <= first_dispatch  # approved, then dispatched
    assert drill.record().approvals.startswith("approved by alice at ")


def test_self_approval_read_access_and_another_run_are_each_refused(tmp_path: Path) -> None:
    drill = Drill(tmp_path, "approval-refused")
    assert drill.exit_code == 11 and drill.dispatches() == []
    for refusal in ("/approve by runbook-operator at 2026-06-10T09:30:4",
                    "refused — the operator cannot approve their own run",
                    "/approve by carol", "refused — carol has 'read' access, not write",
                    "/approve by alice", "refused — it names run 0ther0run0id, not this run",
                    "/approve by bob", "refused — it approves plan 0123456789ab, not this plan"):
        assert refusal in drill.text, refusal
    assert not [d for d in drill.outcome["decisions"] if d["step"] == "approval"]


def test_a_rejection_stops_the_run_with_its_reason(tmp_path: Path) -> None:
    drill = Drill(tmp_path, "approval-rejected")
    assert drill.exit_code == 12 and drill.outcome["outcome"] == "rejected"
    assert drill.dispatches() == [] and drill.running() == {"v42"}
    assert "alice rejected run" in drill.outcome["error"] and "roll forward instead" in drill.outcome["error"]
    [rejected] = [d for d in drill.outcome["decisions"] if d["step"] == "approval"]
    assert rejected["who"] == "alice" and rejected["what"].startswith("reject:")


def test_an_approval_after_the_timeout_is_too_late(tmp_path: Path) -> None:
    drill = Drill(tmp_path, "approval-late")
    assert drill.exit_code == 11 and drill.dispatches() == []
    assert "after 1800s" in drill.outcome["error"]
    # the lease was renewed while waiting (2 s of spaced writes each time), yet the looks for
    # approvals kept their 10 s rate: a renewal does not push the later looks back
    calls = drill.world.calls()
    looks = [parse_iso(c["t"]) for c in calls if c["call"].startswith("GET ")
             and c["call"].split("?")[0].endswith(f"/issues/{drill.record_number()}/comments")]
    renewals = [parse_iso(c["t"]) for c in calls
                if c["call"] == "PATCH /repos/renewa/renewa-one/git/refs/rollback-locks/production"]
    end = max(looks)  # the last look, at the deadline; the first was 1800 s before it
    waiting = sorted({t for t in looks if t >= end - 1800.0})  # (other reads share the ends)
    assert len([t for t in renewals if waiting[0] < t < waiting[-1]]) >= 3
    assert {b - a for a, b in zip(waiting, waiting[1:], strict=False)} == {10.0}


def test_staging_needs_one_person_and_tells_the_team(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Start and success reach a loopback webhook; no message holds the token or a password."""
    with receiver("ok") as rec:
        monkeypatch.setenv("ROLLBACK_NOTIFY_DRILLS", rec.url())
        drill = Drill(tmp_path, "default", env="staging")
    assert drill.exit_code == 0
    assert rec.events() == ["start", "success"]
    start, success = rec.bodies
    assert (start["env"], start["path"], start["mode"]) == ("staging", "path-a", "drill")
    assert start["record"].startswith("https://github.sandbox.invalid/renewa/renewa-one/issues/")
    assert success["archive"] == str(drill.archive) and success["record"] == start["record"]
    assert success["operator"] and "exit 0" in success["outcome"]
    raw = json.dumps(rec.bodies)
    assert drill.world.state["github"]["token"] not in raw and "Bearer" not in raw
    assert rec.url() not in drill.text and "s3cr3t" not in drill.archive.read_text()
    kept = drill.outcome.get("notifications") or []
    assert [n["event"] for n in kept] == ["success"] and kept[0]["ok"]
    assert "notification 'start': #1 (json webhook): delivered (HTTP 200)" in drill.text


def test_an_operator_name_with_mentions_pages_nobody(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """ROLLBACK_OPERATOR is free text: Slack's <!channel> and a bare @here in it reach the
    webhook escaped and broken, in the operator field and in the text alike."""
    operator = "<!channel> dana @here"
    with receiver("ok") as rec:
        monkeypatch.setenv("ROLLBACK_NOTIFY_DRILLS", rec.url())
        monkeypatch.setenv("ROLLBACK_OPERATOR", operator)
        drill = Drill(tmp_path, "default", env="staging")
    assert drill.exit_code == 0 and rec.events() == ["start", "success"]
    for body in rec.bodies:
        assert body["operator"] == "&lt;!channel&gt; dana @\u200bhere"
        assert "<!channel>" not in body["text"] and "by &lt;!channel&gt; dana @\u200bhere" in body["text"]


def test_a_failing_webhook_never_fails_the_run(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver("fail") as rec:
        monkeypatch.setenv("ROLLBACK_NOTIFY_DRILLS", rec.url("jsons"))  # no TLS there: fails
        monkeypatch.setenv("ROLLBACK_NOTIFY_TIMEOUT", "2")
        drill = Drill(tmp_path, "default", env="staging")
    assert drill.exit_code == 0 and drill.running("renewa-one-staging") == {"v41"}
    assert "notification 'start': #1 (json webhook): failed: ConnectError" in drill.text
    kept = drill.outcome["notifications"]
    assert kept[0]["ok"] is False and rec.url("jsons") not in json.dumps(kept)


def test_path_b_tells_the_team_the_flip_is_pending_without_a_password(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with receiver("ok") as rec:
        monkeypatch.setenv("ROLLBACK_NOTIFY_DRILLS", rec.url())
        drill = Drill(tmp_path, "b-default", path="path-b", env="staging")
    assert drill.exit_code == 0
    assert rec.events() == ["start", "flip pending"]
    raw = json.dumps(rec.bodies)
    restored = [c["id"] for c in drill.world.state["fly"]["clusters"].values()
                if c.get("restored_from")]
    flip = json.dumps(rec.bodies[-1], ensure_ascii=False)  # the new cluster and what next
    assert f"new cluster: {restored[0]}" in flip and "lost writes: " in flip
    assert "next: `rollback-runbook drill path-a --env staging" in flip
    clusters = drill.world.state["fly"]["clusters"].values()
    passwords = [pw for c in clusters for pw in (c.get("role_passwords") or {}).values()]
    assert passwords and not [pw for pw in passwords if pw in raw]
    assert drill.world.state["github"]["token"] not in raw


def test_githubs_environment_reviewer_is_the_second_person(tmp_path: Path) -> None:
    """An Environment with required reviewers (no self-review): dispatched, waits, approved."""
    drill = Drill(tmp_path, "approval-environment")
    assert drill.exit_code == 0 and drill.running() == {"v41"}
    assert "Waiting for approval by production: alice" in drill.text
    [review] = [d for d in drill.outcome["decisions"] if d["step"] == "approval"]
    assert review["who"] == "alice" and review["what"].startswith("approved the deployment of run")
    assert not drill.record().plan  # the runbook's own gate was not needed


def test_a_rejected_environment_review_is_a_clear_outcome(tmp_path: Path) -> None:
    drill = Drill(tmp_path, "approval-environment-rejected")
    assert drill.exit_code == 12 and drill.running() == {"v42"}
    assert "alice rejected the deployment" in drill.outcome["error"]
    assert "not during the freeze" in drill.outcome["error"]


def test_an_interrupted_run_is_announced_by_the_command_line(tmp_path: Path) -> None:
    """Ctrl-C mid-run: the kernel is stopped, and the command line still sends 'interrupted'."""
    import os
    import signal

    from test_team_drills import DEADLINE, calls, drill_argv, start, wait_for

    temp = tmp_path / "tmp"
    temp.mkdir(mode=0o711)
    with receiver("ok") as rec:
        process = start(drill_argv("path-a", tmp_path / "incidents", "--speed", "20"),
                        env={"TMPDIR": str(temp), "ROLLBACK_NOTIFY_DRILLS": rec.url()})

        def dispatched() -> bool:
            world = next(iter(temp.glob("rollback-drill-*")), None)
            return world is not None and bool(calls(world, DISPATCH))

        wait_for(dispatched, "the dispatch", process, temp)
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 130, out + err
    assert rec.events() == ["start", "interrupted"]
    interrupted = rec.bodies[1]
    assert interrupted["outcome"].startswith("exit 130: Interrupted") and interrupted["record"]
    outcome = archive.read_outcome(next((tmp_path / "incidents").glob("*.ipynb")))
    assert [n["event"] for n in outcome["notifications"]] == ["interrupted"]


# -- approvals nobody can fake (issue 16) --------------------------------------------------------
def test_a_comment_edited_into_an_approval_does_not_count(tmp_path: Path) -> None:
    """Attack 5: the operator's token edits alice's "looking at the dashboards now" into
    /approve; GitHub keeps alice as the author. On main the run counted "/approve by alice"."""
    drill = Drill(tmp_path, "approval-edited")
    assert drill.exit_code == 11 and drill.outcome["outcome"] == "not-approved"
    assert drill.dispatches() == [] and drill.running() == {"v42"}
    assert "edited after it was posted" in drill.text
    assert not any(d.get("step") == "approval" for d in drill.outcome["decisions"])


def test_hidden_and_conditional_approvals_do_not_count(tmp_path: Path) -> None:
    """Attack 6: /approve in an HTML comment, a code fence, <details>, a quote, or followed by
    "NOT until the DB team agrees". On main the first of them cleared the run."""
    drill = Drill(tmp_path, "approval-hidden")
    assert drill.exit_code == 11 and drill.dispatches() == [] and drill.running() == {"v42"}
    for who in ("alice", "bob", "carol", "dave"):
        assert f"/approve by {who} at" in drill.text and "not a command on its own line" in drill.text
    assert "/approve by erin at" in drill.text and "says more than the command" in drill.text


def test_an_admin_bypass_of_the_environment_gate_is_no_second_person(tmp_path: Path) -> None:
    """Attack 7: an admin starts the waiting job; no `approved` review exists. On main the run
    ended a normal success with no approval recorded."""
    drill = Drill(tmp_path, "approval-environment-bypassed")
    assert drill.exit_code == 11 and drill.outcome["outcome"] == "not-approved"
    assert "no second person" in drill.record().approvals
    assert any("no second person" in d["what"] for d in drill.outcome["decisions"])
    assert "bypassed the Environment gate" in drill.text
