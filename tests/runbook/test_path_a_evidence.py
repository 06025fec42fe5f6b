"""Path A's metrics evidence on the sandbox's traffic, in process (no kernel, no papermill).

Each test builds a world from a ``metrics-*`` scenario, runs Path A's steps as the
notebook's cells do (a live run, virtual time), and reads what the run showed, decided
and wrote on the world's GitHub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollback_helpers.clock import parse_iso
from rollback_helpers.errors import UnhealthyTarget, VerificationFailed
from rollback_helpers.run.run_comment import parse_comment
from rollback_helpers.runbook import path_a
from rollback_helpers.sandbox.core.world import World, read_calls
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.ui.interactive import RecordingScreen

STEPS = ("preflight", "current_state", "recent_records", "resolve_target", "plan", "dispatch",
         "watch", "verify", "update_records", "summary")


@pytest.fixture(autouse=True)
def no_leftover_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("GITHUB_TOKEN", "GH_TOKEN", "FLY_API_TOKEN"):
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)


class Drill:
    def __init__(self, scenario: str, directory: Path, **params: Any) -> None:
        self.directory = directory
        self.world = create_world(scenario, directory)
        self.screen = RecordingScreen()
        self.run = path_a.start({"env": "staging", "backend": "sandbox", "interactive": False,
                                 "sandbox_dir": str(directory), "dry_run": False,
                                 "operator": "dana", "reason": "v42 crashes", **params},
                                screen=self.screen)

    def steps(self) -> None:
        for step in STEPS:
            shown = getattr(self.run, step)()
            if shown is not None:
                self.screen.show(shown)

    @property
    def text(self) -> str:
        return "\n".join(self.screen.texts())

    def state(self) -> World:
        return World.load(self.directory)

    def run_comment_metrics(self) -> str:
        comments = [c for found in self.state().state["github"]["comments"].values()
                    for c in found]
        parsed = [parse_comment(c["body"]) for c in comments]
        return next(p.metrics for p in parsed if p is not None)

    def metrics_requests(self) -> int:
        return sum("api.fly.io/prometheus" in call["call"] for call in read_calls(self.directory))


def test_a_target_that_was_already_bad_stops_before_dispatch_naming_its_error_ratio(
        tmp_path: Path) -> None:
    drill = Drill("metrics-target-already-bad", tmp_path)
    with pytest.raises(UnhealthyTarget) as stopped:
        drill.steps()
    assert "8.00%" in stopped.value.what and "while it ran" in stopped.value.what
    assert "--override-unhealthy-target" in stopped.value.next_step
    assert drill.state().state["github"]["runs"] == []  # nothing dispatched
    assert "track record  unhealthy" in drill.text


def test_with_the_override_it_proceeds_and_the_record_says_who_and_why(tmp_path: Path) -> None:
    drill = Drill("metrics-target-already-bad", tmp_path,
                  override_unhealthy_target="v40 cannot read the new schema")
    drill.steps()
    overrides = [d for d in drill.run.ctx.decisions if "unhealthy while it ran" in d.what]
    assert len(overrides) == 1
    assert overrides[0].who == "dana" and "v40 cannot read the new schema" in overrides[0].how
    assert "8.00%" in overrides[0].what
    assert drill.run.outcome.startswith("rolled back and verified")
    assert "Overridden by dana: v40 cannot read the new schema" in drill.text


@pytest.mark.parametrize(("scenario", "named"), [("metrics-flapping", "5xx ratio"),
                                                 ("metrics-partial-recovery", "in sjc")])
def test_health_says_healthy_and_the_verdict_says_not_recovered(
        tmp_path: Path, scenario: str, named: str) -> None:
    drill = Drill(scenario, tmp_path)
    with pytest.raises(VerificationFailed) as failed:
        drill.steps()
    health = drill.run.health
    assert health is not None and health.healthy  # today's check: healthy, on the same world
    verdict = drill.run.evidence.verdict
    assert verdict is not None and verdict.outcome == "not_recovered"
    assert named in failed.value.what and "did not end" in failed.value.what
    assert failed.value.exit_code == 6
    assert drill.run_comment_metrics().startswith("not recovered (before 0.20% 5xx")
    assert "Metrics verdict: not recovered" in drill.text


def test_the_healthy_scenario_recovers_and_the_run_comment_carries_the_numbers(
        tmp_path: Path) -> None:
    drill = Drill("default", tmp_path)
    drill.steps()
    verdict = drill.run.evidence.verdict
    assert verdict is not None and verdict.outcome == "recovered"
    carried = drill.run_comment_metrics()
    assert carried.startswith("recovered (before 0.20% 5xx, p95 120 ms")
    assert "during 25.00% 5xx, p95 800 ms" in carried
    assert "metrics: recovered" in drill.run.outcome  # the success notification's text
    assert "Metrics: the incident's signal" in drill.text
    assert "5xx ratio 25.00% > 1.20%" in drill.text
    images = [o.obj for o in drill.screen.outputs if type(o.obj).__name__ == "Image"]
    assert len(images) == 1 and images[0].data[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_traffic_is_inconclusive_and_never_claims_recovery(tmp_path: Path) -> None:
    drill = Drill("metrics-no-traffic", tmp_path)
    drill.steps()
    verdict = drill.run.evidence.verdict
    assert verdict is not None and verdict.outcome == "inconclusive"
    assert "too little traffic" in verdict.reason
    assert drill.run_comment_metrics().startswith("inconclusive (")
    assert "metrics: inconclusive" in drill.run.outcome


@pytest.mark.parametrize("scenario", ["metrics-endpoint-down", "metrics-endpoint-slow"])
def test_an_endpoint_down_or_slow_gives_no_evidence_and_the_run_succeeds(
        tmp_path: Path, scenario: str) -> None:
    drill = Drill(scenario, tmp_path)
    drill.steps()
    verdict = drill.run.evidence.verdict
    assert verdict is not None and verdict.outcome == "no_evidence"
    assert drill.run.outcome.startswith("rolled back and verified")
    assert drill.run_comment_metrics().startswith("no evidence: no metrics evidence")
    assert drill.metrics_requests() == 1  # asked once; the run never waits on it again


def test_a_slow_but_error_free_incident_is_seen_by_its_p95_and_recovers(tmp_path: Path) -> None:
    drill = Drill("metrics-slow", tmp_path)
    drill.steps()
    assert "p95 latency 2400 ms > 180 ms" in drill.text  # the plan's incident signal
    verdict = drill.run.evidence.verdict
    assert verdict is not None and verdict.outcome == "recovered"


def test_the_override_is_decided_once_when_the_plan_is_shown_again(tmp_path: Path) -> None:
    drill = Drill("metrics-target-already-bad", tmp_path, override_unhealthy_target="no older")
    for step in STEPS[:5]:
        getattr(drill.run, step)()
    drill.run.plan()
    assert len([d for d in drill.run.ctx.decisions if "unhealthy" in d.what]) == 1


def test_a_long_watch_renews_the_environments_lease(tmp_path: Path) -> None:
    """A watch longer than two thirds of the lease renews it, so no other run may take the
    environment over while this one is still judging its rollback."""
    drill = Drill("default", tmp_path, config={"environments": {"staging": {"metrics": {
        "watch_window": 900.0}}}})
    for step in STEPS[:STEPS.index("verify") + 1]:
        getattr(drill.run, step)()
    verdict, lease = drill.run.evidence.verdict, drill.run.ctx.lifecycle.lease
    assert verdict is not None and verdict.outcome == "recovered"
    assert lease is not None and lease.live(drill.run.ctx.backends.clock.now())
    assert parse_iso(lease.expires_at) - parse_iso(lease.started_at) > drill.run.ctx.cfg.lock_ttl
