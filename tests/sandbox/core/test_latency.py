"""The sandbox's latency model: each seam's seconds per call, spent on the world's virtual clock,
with calls in flight together costing the longest of them, not their sum."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback_helpers.clients.fly import Fly
from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clock import lane_now, started, together
from rollback_helpers.errors import ConfigError
from rollback_helpers.run.backends import Backends, open_backends
from rollback_helpers.sandbox.core.latency import SEAMS, set_latency
from rollback_helpers.sandbox.core.world import World, read_calls
from rollback_helpers.sandbox.scenario_schema import LatencySpec
from rollback_helpers.sandbox.scenarios import create_world

GITHUB, FLYCTL = 0.25, 1.5


@pytest.fixture
def seams(tmp_path: Path) -> Iterator[tuple[World, Backends]]:
    world = create_world("default", tmp_path, latency={"github": GITHUB, "flyctl": FLYCTL})
    backends = open_backends("sandbox", sandbox_dir=str(tmp_path))
    yield world, backends
    backends.close()


def github(backends: Backends) -> GitHubClient:
    return GitHubClient(backends.http, "renewa/renewa-one", backends.github_token,
                        clock=backends.clock)


def fly(backends: Backends) -> Fly:
    return Fly(backends.runner, flyctl="flyctl", timeout=30.0)


def test_each_call_costs_its_seams_latency_on_the_virtual_clock(
        seams: tuple[World, Backends]) -> None:
    _, backends = seams
    began = backends.clock.now()
    github(backends).issues.get_issue(1001)
    assert backends.clock.now() - began == GITHUB
    fly(backends).status("renewa-one-staging")
    assert backends.clock.now() - began == GITHUB + FLYCTL


def test_calls_in_flight_together_cost_the_longest_not_the_sum(
        seams: tuple[World, Backends]) -> None:
    world, backends = seams
    client, flyctl = github(backends), fly(backends)
    began = backends.clock.now()
    status, issues = together(backends.clock, lambda: flyctl.status("renewa-one-staging"),
                              lambda: [client.issues.get_issue(1001), client.issues.get_issue(1002)])
    assert status.started() and len(issues[0]) == 2  # type: ignore[arg-type]
    # flyctl's 1.5 s and two GitHub requests one after the other (0.5 s), side by side
    assert backends.clock.now() - began == FLYCTL
    spans = [c["span"] for c in read_calls(world.state_dir)]
    assert sorted((round(a - began, 3), round(b - began, 3)) for a, b in spans) == [
        (0.0, GITHUB), (0.0, FLYCTL), (GITHUB, 2 * GITHUB)]


def test_work_started_beside_keeps_its_own_lane_until_waited_for(
        seams: tuple[World, Backends]) -> None:
    _, backends = seams
    client = github(backends)
    began = backends.clock.now()
    slow = started(backends.clock, lambda: fly(backends).status("renewa-one-staging"))
    client.issues.get_issue(1001)  # in this thread's lane, whenever flyctl really answers
    assert backends.clock.now() - began == GITHUB
    slow.result()
    assert backends.clock.now() - began == FLYCTL
    assert lane_now(backends.clock.lane_key) is None  # type: ignore[attr-defined]


def test_a_wait_in_a_lane_moves_that_lane_and_the_world(seams: tuple[World, Backends]) -> None:
    world, backends = seams
    began = backends.clock.now()
    together(backends.clock, lambda: backends.clock.sleep(10.0),
             lambda: github(backends).issues.get_issue(1001))
    assert backends.clock.now() - began == 10.0 and World.load(world.state_dir).now == began + 10


def test_without_latency_a_call_takes_no_virtual_time(tmp_path: Path) -> None:
    create_world("default", tmp_path)
    backends = open_backends("sandbox", sandbox_dir=str(tmp_path))
    began = backends.clock.now()
    github(backends).issues.get_issue(1001)
    fly(backends).status("renewa-one-staging")
    assert backends.clock.now() == began
    assert all("span" not in c for c in read_calls(tmp_path))
    backends.close()


def test_a_scenario_gives_latency_and_set_latency_changes_one_seam(tmp_path: Path) -> None:
    scenario = tmp_path / "slow.toml"
    scenario.write_text('[latency]\ngithub = 0.5\nhealth = 2\n')
    world = create_world(str(scenario), tmp_path / "w")
    assert world.state["latency"] == {"github": 0.5, "health": 2.0}
    set_latency(world, {"flyctl": 1.5})
    assert World.load(world.state_dir).state["latency"] == {"github": 0.5, "health": 2.0,
                                                            "flyctl": 1.5}
    assert tuple(LatencySpec.model_fields) == SEAMS  # a scenario names the same seams


def test_a_bad_latency_in_a_scenario_names_the_key(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text('[latency]\ngithub = -1\n')
    with pytest.raises(ConfigError) as caught:
        create_world(str(scenario), tmp_path / "w")
    assert "latency" in str(caught.value)


@pytest.mark.parametrize("latency, named", [({"gitlab": 1.0}, "gitlab"),
                                            ({"github": "fast"}, "github"),
                                            ({"flyctl": -1.0}, "flyctl"),
                                            ({"health": float("nan")}, "health")])
def test_a_worlds_latency_is_checked_seam_by_seam(tmp_path: Path, latency: dict[str, object],
                                                  named: str) -> None:
    with pytest.raises(ValueError, match=named):
        create_world("default", tmp_path, latency=latency)  # type: ignore[arg-type]
