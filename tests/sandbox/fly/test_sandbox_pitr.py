"""Point-in-time restore in the sandbox: flyctl's checks and output, and a real WAL replay on
PostgreSQL to the moment asked (the rows written after the backup are counted)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rollback_helpers import sandbox
from rollback_helpers.clock import parse_iso, utc_iso
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.flyctl import FlyctlSandbox
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.scenarios import create_world

SOURCE = "w3k8p1x9m2q7v4zr"
FIXTURES = Path(__file__).parents[2] / "fixtures" / "flyctl"


@pytest.fixture
def world(pg_state_dir: Path) -> Iterator[World]:
    made = create_world("b-pitr", pg_state_dir)
    yield made
    sandbox.shutdown(made.state_dir)


def readings(world: World, cluster_id: str) -> int:
    info = pg.start_server(world.state_dir, cluster_id)
    with psycopg.connect(pg.superuser_dsn(info)) as conn:
        there = conn.execute("SELECT to_regclass('meter_readings') IS NOT NULL").fetchone()
        if not (there and there[0]):
            return -1
        row = conn.execute("SELECT count(*) FROM meter_readings").fetchone()
    assert row is not None
    return int(row[0])


def deployed_at(world: World) -> float:
    issue = max((i for i in world.state["github"]["issues"] if "env:staging" in i["labels"]),
                key=lambda i: i["created_at"])
    line = next(x for x in issue["body"].splitlines() if x.startswith("- deployed_at: "))
    return parse_iso(line.removeprefix("- deployed_at: "))


def test_pitr_replays_the_writes_after_the_backup_and_stops_before_the_bad_migration(
        world: World) -> None:
    """flyctl's checks first (an RFC3339 moment, one of --backup-id and --pitr-time, the
    window); then a real replay to the moment; and a v1 cluster refused as flyctl does."""
    flyctl = FlyctlSandbox(world)
    argv = ["flyctl", "mpg", "restore", SOURCE, "--pitr-time"]
    assert "RFC3339" in flyctl.run([*argv, "2026-06-09 07:00"], timeout=60).stderr
    both = flyctl.run([*argv, "2026-06-09T07:00:00Z", "--backup-id", "x"], timeout=60)
    assert "mutually exclusive" in both.stderr
    early = flyctl.run([*argv, "2026-06-01T00:00:00Z"], timeout=60)
    assert early.returncode == 1 and "PITR recovery window" in early.stderr
    moment = utc_iso(deployed_at(world) - 1)
    done = flyctl.run(["flyctl", "mpg", "restore", SOURCE, "--pitr-time", moment, "-n",
                       "renewa-one-staging-db-restore"], timeout=60)
    assert done.returncode == 0, done.stderr
    new_id = done.stdout.split("Cluster ID: ")[1].split()[0]
    expected = (FIXTURES / "mpg-restore-pitr.txt").read_text()
    assert done.stdout.replace(new_id, "r9d4g7k2s5m8c1xt").replace(moment, "2026-06-09T07:29:59Z") \
        == expected
    assert readings(world, new_id) == 600 + 24  # the backup's rows and the 24 written after it
    assert readings(world, SOURCE) == -1  # the source keeps its damage
    with world.transaction():
        world.state["fly"]["clusters"][SOURCE]["version"] = 1
    refused = flyctl.run([*argv, "2026-06-09T07:00:00Z"], timeout=60)
    assert refused.returncode == 1
    assert refused.stderr == (FIXTURES / "mpg-restore-pitr-v1.stderr").read_text()
