"""An image's release command runs its migrations against the cluster the app's migration URL
names, on real PostgreSQL: the old checklist's order destroys the restored data again, the
image step first does not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rollback_helpers import sandbox
from rollback_helpers.sandbox.core.world import World, digest_for
from rollback_helpers.sandbox.fly import databases
from rollback_helpers.sandbox.fly.flip import simulate_human_flip
from rollback_helpers.sandbox.fly.mpg import fork_cluster
from rollback_helpers.sandbox.fly.release import migration_cluster, run_release_command
from rollback_helpers.sandbox.github.actions import promote_image
from rollback_helpers.sandbox.postgres import backups as pg_backups
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.scenarios import create_world

APP = "renewa-one-staging"
SOURCE = "w3k8p1x9m2q7v4zr"
REPO = "registry.fly.io/renewa-one"


@pytest.fixture
def world(pg_state_dir: Path) -> Iterator[World]:
    made = create_world("b-default", pg_state_dir)
    yield made
    sandbox.shutdown(made.state_dir)


def restored(world: World) -> str:
    """The runbook's restore of the pre-deploy copy, ready (as `mpg restore` then the wait)."""
    with world.transaction():
        source = world.state["fly"]["clusters"][SOURCE]
        backup = next(b for b in source["backups"] if b.get("sandbox_copy"))
        new = fork_cluster(world, source, backup, "renewa-one-staging-db-restore")
        databases.mark_ready(new)
    return str(new["id"])


def schema(world: World, cluster_id: str) -> tuple[str, bool]:
    """The newest migration and whether meter_readings exists, read as the superuser."""
    info = pg.start_server(world.state_dir, cluster_id)
    with psycopg.connect(pg.superuser_dsn(info)) as conn:
        row = conn.execute("SELECT (SELECT version FROM schema_migrations ORDER BY version DESC "
                           "LIMIT 1), to_regclass('meter_readings') IS NOT NULL").fetchone()
    assert row is not None
    return str(row[0]), bool(row[1])


def test_the_old_order_destroys_the_restored_data_and_the_image_step_first_keeps_it(
        world: World) -> None:
    """Two restores of the same backup: the flip while v42 runs re-applies its destructive
    migration to the first; re-promoting v41 first, then flipping, keeps the second whole."""
    images = world.state["fly"]["images"]
    assert images["v41"]["migrations"] == list(pg_backups.PRE_DEPLOY_MIGRATIONS)
    assert images["v42"]["migrations"][-1] == pg_backups.DESTRUCTIVE_MIGRATION
    assert migration_cluster(world.state["fly"]["apps"][APP]) == SOURCE
    with world.transaction():
        assert run_release_command(world, "renewa-one") == []  # production: metadata only

    old_order = restored(world)
    assert schema(world, old_order) == (pg_backups.PRE_DEPLOY_MIGRATIONS[-1], True)
    simulate_human_flip(world, "staging", old_order)  # the app still runs v42
    assert schema(world, old_order) == (pg_backups.DESTRUCTIVE_MIGRATION, False)
    ran = World.load(world.state_dir).state["fly"]["release_commands"][-1]
    assert (ran["image"], ran["cluster"], ran["applied"]) == (
        "v42", old_order, [pg_backups.DESTRUCTIVE_MIGRATION])

    new_order = restored(world)
    with world.transaction():
        assert promote_image(world, {"env": "staging", "image": f"{REPO}@{digest_for('v41')}"})
        world.advance()  # Fly's release of the promoted image, against the current cluster
    ran = world.state["fly"]["release_commands"][-1]
    assert (ran["image"], ran["cluster"], ran["applied"]) == ("v41", old_order, [])
    simulate_human_flip(world, "staging", new_order)
    assert schema(world, new_order) == (pg_backups.PRE_DEPLOY_MIGRATIONS[-1], True)
    assert World.load(world.state_dir).state["fly"]["release_commands"][-1]["applied"] == []
