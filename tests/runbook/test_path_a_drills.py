"""Path A end to end: the notebook run headless by papermill on each sandbox scenario.

Each test runs the real CLI (``rollback-runbook drill path-a``) at instant speed and
checks the outcome, the exit code, the archived notebook and what the sandbox saw.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.run import archive
from rollback_helpers.sandbox.core.world import World, digest_for

pytestmark = pytest.mark.e2e


class Drill:
    def __init__(self, tmp_path: Path, scenario: str, *extra: str) -> None:
        self.sandbox = tmp_path / "sandbox"
        self.incidents = tmp_path / "incidents"
        self.exit_code = cli.main(["drill", "path-a", "--env", "staging", "--scenario", scenario,
                                   "--speed", "0", "--sandbox-dir", str(self.sandbox),
                                   "--incidents-dir", str(self.incidents), "--quiet", *extra])
        archived = sorted(self.incidents.glob("*.ipynb"))
        assert len(archived) == 1, "every run archives exactly one notebook"
        self.archive = archived[0]
        self.world = World.load(self.sandbox)
        self.text = self.archive.read_text()

    @property
    def outcome(self) -> dict[str, Any]:
        return archive.read_outcome(self.archive)

    def app(self) -> dict[str, Any]:
        return dict(self.world.state["fly"]["apps"]["renewa-one-staging"])

    def running(self) -> set[str]:
        return {m["image"] for m in self.app()["machines"]}

    def issue(self, title: str) -> dict[str, Any]:
        return next(i for i in self.world.state["github"]["issues"] if i["title"] == title)

    def mutating_calls(self) -> list[dict[str, Any]]:
        return [c for c in self.world.calls() if c["mutating"]]

    def assert_no_secret_in_archive(self) -> None:
        token = self.world.state["github"]["token"]
        assert token not in self.text
        assert "Bearer" not in self.text


def test_default_drill_rolls_back_verifies_and_records(tmp_path: Path) -> None:
    """The textbook incident: v42 → v41 through the workflow, verified, recorded on the issue."""
    drill = Drill(tmp_path, "default")
    assert drill.exit_code == 0 and drill.outcome["outcome"] == "success"
    assert drill.running() == {"v41"}
    bad = drill.issue("Deploy v42 to staging")
    assert "rolled-back" in bad["labels"]
    comment = drill.world.state["github"]["comments"][str(bad["number"])][0]["body"]
    assert digest_for("v41") in comment and str(drill.archive) in comment
    runs = drill.world.state["github"]["runs"]
    assert len(runs) == 1 and runs[0]["inputs"]["image"].endswith("@" + digest_for("v41"))
    nb = nbformat.read(str(drill.archive), as_version=4)
    assert nb.metadata["papermill"]["parameters"]["env"] == "staging"
    for expected in (digest_for("v41"), "actions/runs/", "machines on target", "health",
                     "Updated deployment record"):
        assert expected in drill.text
    drill.assert_no_secret_in_archive()


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    """A dry run resolves the plan, exits 0, and makes no mutating GitHub request or command."""
    drill = Drill(tmp_path, "default", "--dry-run")
    assert drill.exit_code == 0
    assert drill.archive.name.endswith("-staging-path-a-dry-run.ipynb")
    assert drill.mutating_calls() == []
    assert drill.running() == {"v42"}
    assert digest_for("v41") in drill.text and "DRY RUN" in drill.text
    assert drill.world.state["github"]["runs"] == []


@pytest.mark.parametrize(("scenario", "exit_code", "failed_step", "message"), [
    ("drift", 3, "Rollback target", "Drift on staging"),
    ("no-previous-record", 3, "Rollback target", "No rollback target for staging"),
    ("malformed-records", 3, "Rollback target", "is malformed"),
    ("workflow-fails", 5, "Watch the workflow run", "ended 'failure'"),
    ("unhealthy-target", 6, "Verify", "not healthy: needed 3 consecutive 200s"),
    ("expired-token", 4, "Preflight", "token"),  # a live run reads the lock first
])
def test_failures_are_archived_and_explained(tmp_path: Path, scenario: str, exit_code: int,
                                             failed_step: str, message: str) -> None:
    """A failing step still archives the notebook, names the step and the next action."""
    drill = Drill(tmp_path, scenario)
    outcome = drill.outcome
    assert drill.exit_code == exit_code == outcome["exit_code"]
    assert failed_step in outcome["failed_step"]
    assert message in outcome["error"]
    assert "Next:" in outcome["error"]
    drill.assert_no_secret_in_archive()


@pytest.mark.parametrize("scenario", ["drift", "no-previous-record", "malformed-records",
                                      "expired-token"])
def test_a_stop_before_the_plan_changes_nothing(tmp_path: Path, scenario: str) -> None:
    """When resolution fails, no workflow is dispatched and no record is touched; the
    environment lock the live run took is given back."""
    drill = Drill(tmp_path, scenario)
    assert [c for c in drill.mutating_calls() if "/git/" not in c["call"]] == []
    assert drill.world.state["github"].get("git", {}).get("refs", {}) == {}


def test_workflow_failure_rolls_nothing_back_and_labels_nothing(tmp_path: Path) -> None:
    """A failed promote run leaves the app and the records as they were."""
    drill = Drill(tmp_path, "workflow-fails")
    assert drill.running() == {"v42"}
    assert "rolled-back" not in drill.issue("Deploy v42 to staging")["labels"]


@pytest.mark.parametrize("scenario", ["pull-requests", "rate-limited", "flaky-5xx",
                                      "ghes-legacy-dispatch"])
def test_noisy_worlds_still_roll_back(tmp_path: Path, scenario: str) -> None:
    """Pull requests, odd record formats, rate limits, 5xx and old GHES do not stop a rollback."""
    drill = Drill(tmp_path, scenario)
    assert drill.exit_code == 0, drill.outcome
    assert drill.running() == {"v41"}


def test_rate_limits_are_waited_out_not_hammered(tmp_path: Path) -> None:
    """The rate-limited drill waits (virtual time) instead of retrying at once."""
    drill = Drill(tmp_path, "rate-limited")
    calls = [c for c in drill.world.calls() if c["seam"] == "github"]
    limited = [i for i, c in enumerate(calls) if c.get("status") in (403, 429)]
    assert limited, "the scenario's rate limits were hit"
    for i in limited:  # the same request again (reads made beside it may come in between)
        retry = next(c for c in calls[i + 1:] if c["call"] == calls[i]["call"])
        assert retry["t"] > calls[i]["t"], "the retry came after a wait"


def test_second_rollback_goes_further_back_not_ping_pong(tmp_path: Path) -> None:
    """With v42 already labelled rolled-back and v41 running, the target is v40."""
    drill = Drill(tmp_path, "second-rollback")
    assert drill.exit_code == 0
    assert drill.running() == {"v40"}


def test_explicit_target_overrides_drift(tmp_path: Path) -> None:
    """Naming the target digest resolves a drifted environment to that recorded image."""
    drill = Drill(tmp_path, "drift", "--target-digest", digest_for("v41"))
    assert drill.exit_code == 0, drill.outcome
    assert drill.running() == {"v41"}


def test_malformed_target_digest_is_bad_input(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A repo:sha256 target is bad input (exit 2), refused before a world or a kernel starts."""
    sandbox, incidents = tmp_path / "s", tmp_path / "i"
    bad = f"registry.fly.io/renewa-one:{digest_for('v41')}"
    code = cli.main(["drill", "path-a", "--env", "staging", "--speed", "0", "--quiet",
                     "--sandbox-dir", str(sandbox), "--incidents-dir", str(incidents),
                     "--target-digest", bad])
    assert code == 2
    assert "joins the digest with ':'" in capsys.readouterr().err
    assert not sandbox.exists()  # no world was built, so nothing could be contacted
    assert list(incidents.glob("*.ipynb")) == []  # no run started: nothing to archive


def test_unknown_environment_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    """An unknown environment exits 2 listing the known ones, before a world or kernel starts."""
    sandbox, incidents = tmp_path / "s", tmp_path / "i"
    code = cli.main(["drill", "path-a", "--env", "prod", "--speed", "0", "--quiet",
                     "--sandbox-dir", str(sandbox), "--incidents-dir", str(incidents)])
    assert code == 2
    err = capsys.readouterr().err
    assert "Unknown environment 'prod'" in err and "development, production, staging" in err
    assert not sandbox.exists()  # no world was built, so nothing could be contacted
    assert list(incidents.glob("*.ipynb")) == []  # no run started: nothing to archive


def test_production_live_run_needs_confirmation(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A live production drill without --confirm production is refused (exit 2) up front."""
    sandbox, incidents = tmp_path / "s", tmp_path / "i"
    code = cli.main(["drill", "path-a", "--env", "production", "--speed", "0", "--quiet",
                     "--sandbox-dir", str(sandbox), "--incidents-dir", str(incidents)])
    assert code == 2
    assert "--confirm production" in capsys.readouterr().err
    assert not sandbox.exists()


def test_archive_metadata_is_complete(tmp_path: Path) -> None:
    """The archive's metadata says path, env, mode, outcome and timing for any reader."""
    outcome = Drill(tmp_path, "default", "--dry-run").outcome
    assert {"path": "path-a", "env": "staging", "dry_run": True, "mode": "headless",
            "backend": "sandbox", "exit_code": 0}.items() <= outcome.items()
    assert outcome["started_at"] <= outcome["finished_at"]
    json.dumps(outcome)
