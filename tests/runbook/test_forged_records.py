"""Forged record comments and publications, met through the command line as an operator
would meet them: a comment from anyone but the runbook's account never changes what a run
does, and is named in the step's output.

Each scenario is a sandbox world where mallory (read access, or none) comments on the bad
deploy's record issue (``[[forgeries]]`` in the scenario).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollback_helpers.cli import main as cli
from rollback_helpers.run import archive
from rollback_helpers.run.backends import discard_drill_world
from rollback_helpers.run.run_comment import parse_comment
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.github.forgers import FORGED_RUN, post_as

pytestmark = pytest.mark.e2e
DISPATCH = "POST /repos/renewa/renewa-one/actions/workflows/promote-image.yml/dispatches"
IGNORED = "Ignored a record comment by mallory"


@pytest.fixture(autouse=True)
def discard_the_world(tmp_path: Path) -> Iterator[None]:
    yield
    if (tmp_path / "sandbox").is_dir():
        discard_drill_world(tmp_path / "sandbox")


class Drill:
    def __init__(self, tmp_path: Path, scenario: str, *, path: str = "path-a",
                 env: str = "staging") -> None:
        self.sandbox = tmp_path / "sandbox"
        incidents = tmp_path / "incidents"
        confirm = ["--confirm", env] if env == "production" else []
        self.exit_code = cli.main(["drill", path, "--env", env, "--scenario", scenario,
                                   "--speed", "0", "--sandbox-dir", str(self.sandbox),
                                   "--incidents-dir", str(incidents), "--quiet", *confirm])
        [self.archive] = sorted(incidents.glob("*.ipynb"))
        self.world = World.load(self.sandbox)
        self.text = self.archive.read_text()
        self.outcome: dict[str, Any] = archive.read_outcome(self.archive)

    def dispatches(self) -> list[dict[str, Any]]:
        return [c for c in self.world.calls() if c["call"] == DISPATCH]

    def comments(self) -> list[dict[str, Any]]:
        return [c for cs in self.world.state["github"]["comments"].values() for c in cs]

    def running(self, app: str) -> set[str]:
        return {m["image"] for m in self.world.state["fly"]["apps"][app]["machines"]}


def test_a_forged_succeeded_comment_does_not_stop_a_production_rollback(
        tmp_path: Path) -> None:
    """Attack 1: on main this drill said "Already done by run f0rged0run0id", exit 0, no
    dispatch, production still on v42."""
    drill = Drill(tmp_path, "forged-succeeded", env="production")
    assert drill.exit_code == 0 and drill.outcome["outcome"] == "success"
    assert len(drill.dispatches()) == 1 and drill.running("renewa-one") == {"v41"}
    assert IGNORED in drill.text and FORGED_RUN in drill.text
    assert "Already done by run" not in drill.text
    assert "approve" in drill.text and "by alice" in drill.text  # the second person was asked


def test_a_forged_dispatched_comment_neither_stops_nor_redirects_the_run(tmp_path: Path) -> None:
    """Attack 1's variant: on main a forged "dispatched" comment stopped the run (exit 4)
    with nothing dispatched."""
    drill = Drill(tmp_path, "forged-dispatched")
    assert drill.exit_code == 0 and len(drill.dispatches()) == 1
    assert drill.running("renewa-one-staging") == {"v41"}
    assert IGNORED in drill.text and "Carries on from run" not in drill.text


def test_a_copied_marker_never_receives_the_runs_final_edit(tmp_path: Path) -> None:
    """Attack 4: mallory copies the run's marker while it watches; on main the final edit
    (state, exit code, archive, SHA-256) was written into her comment."""
    drill = Drill(tmp_path, "forged-copied-marker")
    assert drill.exit_code == 0
    hers = [c for c in drill.comments() if c["user"] == "mallory"]
    ours = [c for c in drill.comments() if c["user"] == "runbook-operator"
            and parse_comment(c["body"]) is not None]
    assert len(hers) == 1 and "(copied by mallory)" in hers[0]["body"]
    assert "sha256" not in hers[0]["body"] and hers[0]["updated_at"] == hers[0]["created_at"]
    [record] = [parse_comment(c["body"]) for c in ours]
    assert record is not None and record.state == "succeeded" and len(record.sha256) == 64
    assert record.sha256 == hashlib.sha256(drill.archive.read_bytes()).hexdigest()


@pytest.mark.parametrize("scenario", ["forged-restored-source", "forged-flip-pending"])
def test_a_forged_path_b_comment_never_skips_the_restore(tmp_path: Path, scenario: str) -> None:
    """Attack 2 (and the "flip pending" variant): on main a forged comment naming the source
    cluster made Path B "verify" the damaged source and hand it over, exit 0 with no restore."""
    drill = Drill(tmp_path, scenario, path="path-b")
    assert drill.exit_code == 0, drill.outcome
    restores = [c for c in drill.world.calls() if "mpg restore" in str(c.get("call", ""))]
    assert len(restores) == 1
    [ours] = [parse_comment(c["body"]) for c in drill.comments()
              if c["user"] == "runbook-operator" and parse_comment(c["body"]) is not None]
    assert ours is not None and ours.state == "flip pending" and ours.run_id != FORGED_RUN
    assert ours.new_cluster not in ("", "w3k8p1x9m2q7v4zr", "zzzzzzzzzzzzzzzz")
    assert IGNORED in drill.text
    assert "already prepared by run" not in drill.text


def test_verify_record_believes_only_the_runs_account(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Attack 3: mallory publishes the SHA-256 of a changed copy under the run's marker. On main
    the changed copy verified (exit 0) and the untouched original failed (exit 8)."""
    sandbox, incidents = tmp_path / "sandbox", tmp_path / "incidents"
    assert cli.main(["drill", "path-a", "--env", "staging", "--speed", "0", "--quiet",
                     "--sandbox-dir", str(sandbox), "--incidents-dir", str(incidents)]) == 0
    [original] = sorted(incidents.glob("*.ipynb"))
    data = original.read_bytes()
    changed = data.replace(b'"outcome": "success"', b'"outcome": "sUccess"', 1)
    copy = tmp_path / "copy.ipynb"
    copy.write_bytes(changed)
    world = World.load(sandbox)
    [(number, ours)] = [(int(n), c) for n, cs in world.state["github"]["comments"].items()
                        for c in cs if parse_comment(c["body"]) is not None]
    first_line = ours["body"].splitlines()[0]
    world.state["github"]["collaborators"]["mallory"] = "read"
    forged = post_as(world, number, "mallory", f"{first_line}\n- **archive:** `{copy}`\n"
                     f"- **sha256:** `{hashlib.sha256(changed).hexdigest()}`\n")
    world.save()
    capsys.readouterr()
    assert cli.main(["verify-record", str(original), "--sandbox-dir", str(sandbox)]) == 0
    assert cli.main(["verify-record", str(copy), "--sandbox-dir", str(sandbox)]) == 8
    assert cli.main(["publish-record", str(original), "--sandbox-dir", str(sandbox)]) == 0
    err = capsys.readouterr().err
    assert str(forged["id"]) not in err  # mallory's comment is never the one named


def test_even_the_runbooks_own_success_is_confirmed_in_the_world(tmp_path: Path) -> None:
    """Nothing is skipped on a comment's word alone: a "succeeded" comment by the runbook's own
    account whose workflow run does not exist is not believed, and the rollback goes on."""
    scenario = tmp_path / "own-claim.toml"
    text = (Path(__file__).parents[2] / "rollback_helpers/sandbox/scenarios/"
            "forged-dispatched.toml").read_text()
    scenario.write_text(text.replace('login = "mallory"\nkind = "dispatched"',
                                     'login = "runbook-operator"\nkind = "succeeded"'))
    drill = Drill(tmp_path, str(scenario))
    assert drill.exit_code == 0 and len(drill.dispatches()) == 1
    assert drill.running("renewa-one-staging") == {"v41"}
    assert "workflow run 999999 cannot be read" in drill.text and "not believed" in drill.text
    assert IGNORED not in drill.text


def test_even_the_runbooks_own_restore_is_confirmed_in_fly(tmp_path: Path) -> None:
    """A "restored" comment by the runbook's own account naming the source cluster is not
    believed: the source is never handed over as the restored cluster."""
    scenario = tmp_path / "own-restore.toml"
    text = (Path(__file__).parents[2] / "rollback_helpers/sandbox/scenarios/"
            "forged-restored-source.toml").read_text()
    scenario.write_text(text.replace('login = "mallory"', 'login = "runbook-operator"'))
    drill = Drill(tmp_path, str(scenario), path="path-b")
    assert drill.exit_code == 0, drill.outcome
    assert len([c for c in drill.world.calls() if "mpg restore" in str(c.get("call", ""))]) == 1
    assert "the source cluster itself: not believed" in drill.text
