"""A drill world as the command line sees it: its header names the environment drilled, and
its record clock is the world's (a real run's is the real one)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rollback_helpers.clock import RealClock, parse_iso
from rollback_helpers.run.backends import (
    DrillWorld,
    create_drill_world,
    discard_drill_world,
    record_clock,
)


@pytest.fixture
def default_world(tmp_path: Path) -> Iterator[DrillWorld]:
    world = create_drill_world("default", tmp_path / "w", speed=0)
    yield world
    discard_drill_world(tmp_path / "w")


def test_the_header_is_the_scenarios_own_on_the_environment_it_is_written_for(
        default_world: DrillWorld) -> None:
    assert default_world.header("path-a", "staging") == (
        "Drill: path-a on staging, scenario 'default' — Bad deploy on staging: v42 crashes on "
        "start; the previous image v41 is healthy.")


@pytest.mark.parametrize(("env", "runs"), [
    ("production", "renewa-one runs v41, deployed after v40"),
    ("development", "renewa-one-development runs v43, deployed after v41"),
])
def test_on_another_environment_the_header_says_what_runs_there(
        default_world: DrillWorld, env: str, runs: str) -> None:
    header = default_world.header("path-a", env)
    assert header == (f"Drill: path-a on {env}, scenario 'default' (written for staging) — "
                      f"on {env}: {runs}.")
    assert "Bad deploy on staging" not in header


def test_a_description_naming_no_environment_is_kept_and_a_missing_app_is_said() -> None:
    world = DrillWorld(Path("/nowhere"), "After the flip: secrets point at the new cluster.", "t",
                       scenario="x", situations={"staging": "app runs v1"})
    assert world.header("verify-flip", "production").endswith(
        "— After the flip: secrets point at the new cluster.")
    named = DrillWorld(Path("/nowhere"), "Production needs two people.", "t", scenario="y")
    assert named.header("path-a", "staging") == (
        "Drill: path-a on staging, scenario 'y' (written for production) — on staging: this "
        "scenario has no app there.")


def test_a_drills_record_clock_is_its_worlds_and_a_real_runs_the_real_one(
        default_world: DrillWorld, tmp_path: Path) -> None:
    clock = record_clock(default_world.directory)
    assert clock.now() == parse_iso("2026-06-10T09:30:00Z")
    assert default_world.now() == datetime(2026, 6, 10, 9, 30, tzinfo=UTC)
    assert isinstance(record_clock(None), RealClock)
    assert isinstance(record_clock(tmp_path / "no-world-here"), RealClock)
