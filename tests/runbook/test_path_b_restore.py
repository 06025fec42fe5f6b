"""Path B's restore point: the backup or a moment, what each loses, and the v1 refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollback_helpers.clock import parse_iso
from rollback_helpers.domain.parameters import PathBParameters, checked
from rollback_helpers.errors import ConfigError, PreconditionFailed
from rollback_helpers.runbook import path_b
from rollback_helpers.runbook.path_b_restore import LostWrites, span
from rollback_helpers.sandbox import discard
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.ui.interactive import RecordingScreen


def test_the_lost_writes_are_split_at_the_bad_deploy() -> None:
    now = parse_iso("2026-06-10T09:30:00Z")
    backup = LostWrites("2026-06-09T07:15:00Z", "2026-06-09T07:30:00Z", now).text()
    assert backup == ("writes after 2026-06-09T07:15:00Z (26h 15m until now) are not on the new "
                      "cluster: 15m 00s before the bad deploy (backup → deploy) and 26h 00m since "
                      "it (deploy → now)")
    pitr = LostWrites("2026-06-09T07:29:59Z", "2026-06-09T07:30:00Z", now).text()
    assert "0m 01s before the bad deploy" in pitr and "26h 00m since it" in pitr
    assert span(59) == "0m 59s" and span(3725) == "1h 02m" and span(-5) == "0m 00s"
    assert LostWrites("", "2026-06-09T07:30:00Z", now).text().startswith("unknown")


def test_pitr_time_is_an_rfc3339_moment_default_or_nothing_and_never_with_a_backup_id() -> None:
    base = {"path": "path-b", "env": "staging"}
    for good in ("default", "2026-06-09T07:29:59Z", "2026-06-09T09:29:59+02:00"):
        assert checked(PathBParameters, {**base, "pitr_time": good}).pitr_time == good
    for bad in ("2026-06-09 07:29", "yesterday", "2026-06-09T07:29:59"):
        with pytest.raises(ConfigError):
            checked(PathBParameters, {**base, "pitr_time": bad})
    with pytest.raises(ConfigError, match="a restore takes one"):
        checked(PathBParameters, {**base, "pitr_time": "default", "backup_id": "backup_1"})


@pytest.fixture
def world(pg_state_dir: Path) -> Iterator[World]:
    made = create_world("b-production", pg_state_dir)  # staging and development: no server
    yield made
    discard(pg_state_dir)


def test_a_v1_cluster_is_refused_a_point_in_time_and_a_metadata_only_one_is_a_sandbox_limitation(
        world: World) -> None:
    run = path_b.start({"env": "staging", "sandbox_dir": str(world.state_dir),
                        "pitr_time": "default"}, screen=RecordingScreen())
    with pytest.raises(PreconditionFailed) as refused:
        run.resolve()
    assert "w3k8p1x9m2q7v4zr is a v1 Managed Postgres cluster" in refused.value.what
    assert "without --pitr-time" in refused.value.next_step
    assert not [c for c in world.calls() if c["mutating"]]

    # development's cluster has no server in this scenario: said as the sandbox's limitation
    dev = path_b.start({"env": "development", "sandbox_dir": str(world.state_dir),
                        "dry_run": False}, screen=RecordingScreen())
    dev.resolve()
    dev.plan()
    dev.restore()
    dev.wait_until_ready()
    with pytest.raises(PreconditionFailed) as limited:
        dev.verify_new_cluster()
    assert limited.value.what.startswith("Sandbox limitation, not a fault:")
    assert "gives development no real database server" in limited.value.next_step
    assert "database = true" in limited.value.next_step
    assert "another process" not in limited.value.next_step
    dev.summary()


def test_an_older_backup_the_sandbox_only_lists_is_a_sandbox_limitation(
        pg_state_dir: Path) -> None:
    """Staging has a real server in b-default, but its older backups are metadata only: the
    restore of one is refused as the sandbox's limitation, with advice about backups."""
    world = create_world("b-default", pg_state_dir)
    try:
        older = next(b["id"] for b in world.state["fly"]["clusters"]["w3k8p1x9m2q7v4zr"]["backups"]
                     if not b["sandbox_copy"])
        run = path_b.start({"env": "staging", "sandbox_dir": str(world.state_dir),
                            "dry_run": False, "backup_id": older}, screen=RecordingScreen())
        run.resolve()
        run.plan()
        with pytest.raises(PreconditionFailed) as limited:
            run.restore()
        assert limited.value.what.startswith("Sandbox limitation, not a fault:")
        assert f"backup {older} has no data in the sandbox" in limited.value.what
        assert "older backups are listed, not copied" in limited.value.next_step
        run.summary()
    finally:
        discard(pg_state_dir)
