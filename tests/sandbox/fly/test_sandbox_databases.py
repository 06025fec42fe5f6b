"""The world's clusters and the real servers behind them: a server left half-built by a
process killed in the middle of a restore is rebuilt, never a reason to fail; an on-demand
cluster gets its server when first needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
import pytest

from rollback_helpers import sandbox
from rollback_helpers.clients.fly import Fly
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly import databases
from rollback_helpers.sandbox.fly.flyctl import FlyctlSandbox
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.scenarios import create_world

SOURCE = "w3k8p1x9m2q7v4zr"


@pytest.fixture
def world(pg_state_dir: Path) -> Iterator[World]:
    made = create_world("b-default", pg_state_dir)
    yield made
    sandbox.shutdown(made.state_dir)


def pre_deploy_backup(world: World) -> str:
    return str(next(b["id"] for b in world.state["fly"]["clusters"][SOURCE]["backups"]
                    if b.get("sandbox_copy")))


def test_a_restore_killed_before_the_world_was_saved_is_built_afresh(world: World) -> None:
    """The restore's server is built, then its process dies before the world is saved (the
    world file as it was before the call): the same restore again gets the same cluster id,
    discards the orphan server and builds a working one; the world lists one restore."""
    before = (world.state_dir / "world.json").read_text()
    first = Fly(FlyctlSandbox(world)).mpg_restore(SOURCE, pre_deploy_backup(world), "db-restore")
    orphan = pg.server_info(world.state_dir, first.new_id)
    assert orphan is not None
    (world.state_dir / "world.json").write_text(before)  # the killed process saved nothing

    reloaded = World.load(world.state_dir)
    assert first.new_id not in reloaded.state["fly"]["clusters"]
    again = Fly(FlyctlSandbox(reloaded)).mpg_restore(SOURCE, pre_deploy_backup(reloaded),
                                                    "db-restore")
    assert again.new_id == first.new_id
    rebuilt = pg.server_info(world.state_dir, again.new_id)
    assert rebuilt is not None and rebuilt.pid != orphan.pid
    with psycopg.connect(pg.superuser_dsn(rebuilt)) as conn:
        assert conn.execute("SELECT count(*) FROM meter_readings").fetchone() == (600,)
    restored = [c for c in World.load(world.state_dir).state["fly"]["clusters"].values()
                if c.get("restored_from")]
    assert [c["id"] for c in restored] == [again.new_id]


def test_a_server_the_world_knows_is_never_cleared(world: World) -> None:
    """The source's server is the world's: clear_half_built leaves it running."""
    running = pg.server_info(world.state_dir, SOURCE)
    assert databases.clear_half_built(world, SOURCE) is False
    assert pg.server_info(world.state_dir, SOURCE) == running


def test_an_on_demand_cluster_gets_a_server_with_its_apps_passwords_when_first_needed(
        world: World) -> None:
    """b-default's development cluster is metadata only until a tunnel needs it; then a real
    server stands behind it, the app's own URLs log in, and its newest backup is a real copy
    the restore can use. Building it once more changes nothing."""
    dev = "k3v9x2m1q8w7e6r5"
    cluster = world.state["fly"]["clusters"][dev]
    assert cluster["on_demand"] and not cluster["server"]
    assert not (world.state_dir / "clusters" / dev).exists()
    fly = Fly(FlyctlSandbox(world))
    machine = fly.status("renewa-one-development").started()[0].id
    url = fly.read_secret_env("renewa-one-development", machine, "DATABASE_URL").reveal()
    with fly.mpg_proxy(dev) as tunnel:
        parts = urlsplit(url)
        with psycopg.connect(host="127.0.0.1", port=tunnel.local_port, user=parts.username,
                             password=unquote(parts.password or ""), dbname="fly-db") as conn:
            assert conn.execute("SELECT count(*) FROM meter_readings").fetchone() == (600,)
    cluster = World.load(world.state_dir).state["fly"]["clusters"][dev]
    assert cluster["server"]
    newest = max(cluster["backups"], key=lambda b: b["start"])
    assert newest["sandbox_copy"] and (world.state_dir / "backups" / newest["id"]).is_dir()
    running = pg.server_info(world.state_dir, dev)
    with world.transaction():
        assert databases.has_server(world, world.state["fly"]["clusters"][dev]) is True
    assert pg.server_info(world.state_dir, dev) == running
