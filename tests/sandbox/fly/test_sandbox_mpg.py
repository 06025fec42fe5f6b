"""The sandbox world for Path B: real clusters, a real restore, real tunnels, the human flip.

Every test drives the world through ``Fly(FlyctlSandbox(world))``, exactly as the
runbook does, and the world is shut down (servers and tunnels) after each test.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import pytest
from processes import alive

from rollback_helpers import sandbox
from rollback_helpers.clients.fly import Fly, Tunnel
from rollback_helpers.errors import CommandFailed
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.common import split_positionals
from rollback_helpers.sandbox.fly.flip import remap, repoint_url, simulate_human_flip
from rollback_helpers.sandbox.fly.flyctl import (
    ALL_VALUE_FLAGS,
    FlyctlSandbox,
    canonical,
    is_destructive,
)
from rollback_helpers.sandbox.postgres import backups as pg_backups
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.scenario_clusters import MAP_PATH
from rollback_helpers.sandbox.scenarios import create_world
from rollback_helpers.secrets import Secret

APP = "renewa-one-staging"
SOURCE = "w3k8p1x9m2q7v4zr"
FLIPPED = "r9d4g7k2s5m8c1xt"
PROXY_PIDS = "pids"

MakeWorld = Callable[..., World]


@pytest.fixture
def make_world(pg_state_dir: Path) -> Iterator[MakeWorld]:
    """``make_world(scenario, **fly_overrides)``: a world in a postgres-traversable dir."""
    made: list[World] = []

    def make(scenario: str, **fly: Any) -> World:
        world = create_world(scenario, pg_state_dir)
        world.state["fly"].update(fly)
        world.save()
        made.append(world)
        return world

    yield make
    for world in made:
        sandbox.shutdown(world.state_dir)


def newest_record_field(world: World, key: str) -> str | None:
    issue = max((i for i in world.state["github"]["issues"] if "env:staging" in i["labels"]),
                key=lambda i: i["created_at"])
    found = re.search(rf"^- {key}: (\S+)$", issue["body"], re.MULTILINE)
    return found[1] if found else None


def app_urls(fly: Fly, machine: str | None = None) -> dict[str, Secret]:
    machine = machine or fly.status(APP).started()[0].id
    return {var: fly.read_secret_env(APP, machine, var)
            for var in ("DATABASE_URL", "DATABASE_URL_MIGRATION")}


def login(tunnel: Tunnel, url: Secret) -> psycopg.Connection[Any]:
    """Log in as the URL says, but through the tunnel: *.flympg.net resolves only on Fly."""
    parts = urlsplit(url.reveal())
    return psycopg.connect(host="127.0.0.1", port=tunnel.local_port, user=unquote(parts.username
                           or ""), password=unquote(parts.password or ""),
                           dbname=parts.path.lstrip("/"), connect_timeout=10, autocommit=True)


def snapshot(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT current_user, pg_is_in_recovery(), (SELECT version FROM schema_migrations "
        "ORDER BY applied_at DESC, version DESC LIMIT 1), to_regclass('meter_readings') IS NOT "
        "NULL, (SELECT count(email) FROM customers)").fetchone()
    assert row is not None
    return tuple(row)


def restore_and_wait(world: World, fly: Fly) -> str:
    backup = newest_record_field(world, "backup_id")
    assert backup is not None
    new_id = fly.mpg_restore(SOURCE, backup, "renewa-one-staging-db-restore").new_id
    world.sleep(float(world.state["fly"]["restore_seconds"]))
    return new_id


# -- restore ---------------------------------------------------------------------------------
def test_restore_forks_a_new_server_with_the_pre_deploy_data_and_the_source_keeps_the_damage(
        make_world: MakeWorld) -> None:
    """A restore starts a NEW real server from the pre-deploy copy; the source runs on, damaged;
    both users log in to both through tunnels with the app's own URLs."""
    world = make_world("b-default")
    fly = Fly(FlyctlSandbox(world))
    source_before = pg.server_info(world.state_dir, SOURCE)
    backups = {b.id: b for b in fly.mpg_backups(SOURCE)}
    backup = newest_record_field(world, "backup_id")
    assert backup in backups and backups[backup].status == "completed"
    assert re.fullmatch(r"backup_\d+_[0-9a-f]{16}", backup or "")

    new_id = restore_and_wait(world, fly)

    new_server = pg.server_info(world.state_dir, new_id)
    assert new_id != SOURCE and len(new_id) == 16 and new_server is not None
    assert source_before is not None and new_server.port != source_before.port
    assert pg.server_info(world.state_dir, SOURCE) == source_before  # untouched
    status = fly.mpg_status(new_id)
    assert (status.cluster.status, status.credentials_status) == ("ready", "ready")
    assert status.cluster.direct_ip not in ("", fly.mpg_status(SOURCE).cluster.direct_ip)
    urls = app_urls(fly)
    with fly.mpg_proxy(new_id) as tunnel:
        assert tunnel.remote == f"[{status.cluster.direct_ip}]:5432"
        for var, user in (("DATABASE_URL", "app-user"),
                          ("DATABASE_URL_MIGRATION", "migration-user")):
            with login(tunnel, urls[var]) as conn:
                assert snapshot(conn) == (user, False, pg_backups.PRE_DEPLOY_MIGRATIONS[-1], True, 200)
    with fly.mpg_proxy(SOURCE) as tunnel, login(tunnel, urls["DATABASE_URL"]) as conn:
        assert snapshot(conn) == ("app-user", False, pg_backups.DESTRUCTIVE_MIGRATION, False, 0)


def test_the_proxy_refuses_while_the_restore_initializes(make_world: MakeWorld) -> None:
    """Until restore_seconds of virtual time pass, mpg proxy fails as flyctl does; no process."""
    world = make_world("b-default")
    fly = Fly(FlyctlSandbox(world))
    new_id = fly.mpg_restore(SOURCE, newest_record_field(world, "backup_id") or "").new_id
    world.sleep(299)
    assert fly.mpg_status(new_id).cluster.status == "initializing"
    with pytest.raises(CommandFailed, match="cluster is still initializing, wait a bit more"):
        fly.mpg_proxy(new_id)
    assert not list((world.state_dir / PROXY_PIDS).glob("*.pid"))
    world.sleep(1)
    with fly.mpg_proxy(new_id) as tunnel:
        assert tunnel.local_port > 0


def test_a_restore_that_ends_in_error_leaves_no_usable_server(make_world: MakeWorld) -> None:
    """b-restore-error: accepted, then status error; its server is stopped, the proxy refuses."""
    world = make_world("b-restore-error")
    fly = Fly(FlyctlSandbox(world))
    new_id = restore_and_wait(world, fly)
    status = fly.mpg_status(new_id)
    assert (status.cluster.status, status.credentials_status) == ("error", "error")
    assert pg.server_info(world.state_dir, new_id) is None
    assert pg.server_info(world.state_dir, SOURCE) is not None
    with pytest.raises(CommandFailed, match="error getting cluster password"):
        fly.mpg_proxy(new_id)


def test_a_backup_id_that_is_not_listed_fails_the_restore_and_creates_nothing(
        make_world: MakeWorld) -> None:
    """b-unknown-backup: the record's backup is not in the list; flyctl's error, no new cluster."""
    world = make_world("b-unknown-backup")
    fly = Fly(FlyctlSandbox(world))
    backup = newest_record_field(world, "backup_id")
    assert backup is not None and backup not in {b.id for b in fly.mpg_backups(SOURCE)}
    before = set(world.state["fly"]["clusters"])
    with pytest.raises(CommandFailed, match=rf"failed to restore cluster: backup {backup} not "
                                            "found"):
        fly.mpg_restore(SOURCE, backup)
    assert set(world.state["fly"]["clusters"]) == before
    assert sorted(p.name for p in (world.state_dir / "clusters").iterdir()) == [SOURCE]


def test_an_older_metadata_only_backup_is_refused_clearly(make_world: MakeWorld) -> None:
    """Only the pre-deploy backup is a real copy: restoring an older one says so; nothing made."""
    world = make_world("b-default")
    fly = Fly(FlyctlSandbox(world))
    older = fly.mpg_backups(SOURCE)[0]
    assert older.status == "completed" and older.id != newest_record_field(world, "backup_id")
    with pytest.raises(CommandFailed, match="has no data in the sandbox"):
        fly.mpg_restore(SOURCE, older.id)
    assert sorted(p.name for p in (world.state_dir / "clusters").iterdir()) == [SOURCE]


def test_an_in_progress_backup_is_listed_without_stop_and_not_restorable(
        make_world: MakeWorld) -> None:
    """b-incomplete-backup: status in_progress, empty stop; flyctl refuses to restore it."""
    world = make_world("b-incomplete-backup")
    fly = Fly(FlyctlSandbox(world))
    backup = newest_record_field(world, "backup_id")
    listed = {b.id: b for b in fly.mpg_backups(SOURCE)}[backup or ""]
    assert (listed.status, listed.stop) == ("in_progress", "")
    with pytest.raises(CommandFailed, match="not completed"):
        fly.mpg_restore(SOURCE, listed.id)


# -- ssh, secrets and the migration-password fault ----------------------------------------------
def test_ssh_latency_advances_virtual_time_so_url_reads_overlap_the_restore_wait(
        make_world: MakeWorld) -> None:
    """Each ssh console call takes fly.ssh_latency virtual seconds: two reads cover the wait."""
    world = make_world("b-default", ssh_latency=150)
    fly = Fly(FlyctlSandbox(world))
    new_id = fly.mpg_restore(SOURCE, newest_record_field(world, "backup_id") or "").new_id
    machine = fly.status(APP).started()[0].id
    start = world.now
    urls = app_urls(fly, machine)
    assert world.now - start == 300
    assert all(f".{SOURCE}.flympg.net/" in url.reveal() for url in urls.values())
    assert fly.mpg_status(new_id).cluster.status == "ready"


def test_several_machines_serve_the_same_urls(make_world: MakeWorld) -> None:
    """b-several-machines: 3 started machines; each one, named with --machine, has the URLs."""
    world = make_world("b-several-machines")
    fly = Fly(FlyctlSandbox(world))
    started = fly.status(APP).started()
    assert len(started) == 3
    seen = {tuple(u.reveal() for u in app_urls(fly, m.id).values()) for m in started}
    assert len(seen) == 1


def test_a_password_rotated_after_the_backup_is_rejected_by_the_restored_cluster(
        make_world: MakeWorld) -> None:
    """b-migration-password-changed: app-user logs in to the fork, migration-user does not;
    on the source, both do."""
    world = make_world("b-migration-password-changed")
    fly = Fly(FlyctlSandbox(world))
    new_id = restore_and_wait(world, fly)
    urls = app_urls(fly)
    with fly.mpg_proxy(new_id) as tunnel:
        with login(tunnel, urls["DATABASE_URL"]) as conn:
            assert snapshot(conn)[0] == "app-user"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            login(tunnel, urls["DATABASE_URL_MIGRATION"])
    with fly.mpg_proxy(SOURCE) as tunnel, login(tunnel, urls["DATABASE_URL_MIGRATION"]) as conn:
        assert snapshot(conn)[0] == "migration-user"


def test_a_proxy_bind_fault_fails_before_binding(make_world: MakeWorld) -> None:
    """b-proxy-bind-fails: the forwarder exits 1 with Go's bind error; nothing stays recorded."""
    world = make_world("b-proxy-bind-fails")
    fly = Fly(FlyctlSandbox(world))
    with pytest.raises(CommandFailed, match="bind: address already in use") as failed:
        fly.mpg_proxy(SOURCE)
    assert failed.value.returncode == 1
    assert not list((world.state_dir / PROXY_PIDS).glob("*.pid"))


# -- the cluster map and the human flip ----------------------------------------------------------
def test_the_cluster_map_can_name_a_cluster_not_attached_to_the_app(
        make_world: MakeWorld) -> None:
    """b-cluster-map-mismatch: the map's cluster exists but serves no app; the record's does."""
    world = make_world("b-cluster-map-mismatch")
    fly = Fly(FlyctlSandbox(world))
    mapped = re.search(r"\[staging\]=(\S+)", world.state["github"]["files"][MAP_PATH])
    assert mapped is not None and mapped[1] != newest_record_field(world, "cluster_id")
    assert fly.mpg_status(mapped[1]).cluster.attached_apps == ()
    assert fly.mpg_status(SOURCE).cluster.attached_apps == (APP,)


def test_a_record_without_backup_id_still_has_a_backup_listed(make_world: MakeWorld) -> None:
    """b-no-backup-id: the record omits backup_id; the real backup exists all the same."""
    world = make_world("b-no-backup-id")
    assert newest_record_field(world, "backup_id") is None
    assert newest_record_field(world, "cluster_id") == SOURCE
    assert Fly(FlyctlSandbox(world)).mpg_backups(SOURCE)[-1].status == "completed"


def test_the_flipped_world_serves_the_app_from_the_restored_cluster(make_world: MakeWorld) -> None:
    """b-flipped: both URLs and the map name the ready fork, which has the pre-deploy data."""
    world = make_world("b-flipped")
    assert world.calls() == []  # the restore and flip were done before the drill: no runbook call
    fly = Fly(FlyctlSandbox(world))
    assert fly.mpg_status(FLIPPED).cluster.status == "ready"
    assert f"[staging]={FLIPPED}" in world.state["github"]["files"][MAP_PATH]
    urls = app_urls(fly)
    assert urls["DATABASE_URL"].reveal().endswith(f"@pgbouncer.{FLIPPED}.flympg.net/fly-db")
    assert urls["DATABASE_URL_MIGRATION"].reveal().endswith(f"@direct.{FLIPPED}.flympg.net/fly-db")
    with fly.mpg_proxy(FLIPPED) as tunnel:
        for url in urls.values():
            with login(tunnel, url) as conn:
                assert snapshot(conn)[1:] == (False, pg_backups.PRE_DEPLOY_MIGRATIONS[-1], True, 200)


def test_a_partial_flip_is_finished_by_simulate_human_flip(make_world: MakeWorld) -> None:
    """b-flip-partial: only DATABASE_URL flipped, map unchanged; flipping the rest completes it."""
    world = make_world("b-flip-partial")
    secrets = world.state["fly"]["apps"][APP]["secrets"]
    assert f".{FLIPPED}." in secrets["DATABASE_URL"]
    assert f".{SOURCE}." in secrets["DATABASE_URL_MIGRATION"]
    assert f"[staging]={SOURCE}" in world.state["github"]["files"][MAP_PATH]
    release = world.state["fly"]["apps"][APP]["release"]

    simulate_human_flip(world, "staging", FLIPPED, secrets=["DATABASE_URL_MIGRATION"])

    assert f".{FLIPPED}." in World.load(world.state_dir).state["fly"]["apps"][APP]["secrets"][
        "DATABASE_URL_MIGRATION"]
    assert f"[staging]={FLIPPED}" in world.state["github"]["files"][MAP_PATH]
    assert world.state["fly"]["apps"][APP]["release"] == release + 1  # the redeploy


def test_repoint_and_remap_change_only_the_cluster_id() -> None:
    """The flip keeps users, passwords and other environments' lines."""
    assert repoint_url("postgresql://app-user:pw@pgbouncer.old1.flympg.net/fly-db", "new2") == (
        "postgresql://app-user:pw@pgbouncer.new2.flympg.net/fly-db")
    with pytest.raises(ValueError, match="Not a Fly MPG"):
        repoint_url("postgresql://u:p@db.example.com/x", "new2")
    text = "declare -A MPG_CLUSTERS=(\n  [staging]=old1\n  [production]=prod\n)\n"
    assert remap(text, "staging", "new2") == text.replace("old1", "new2")
    assert remap(text, "development", "dev3").endswith("  [development]=dev3\n)\n")


# -- shutdown, the call log, and Path A staying database-free ------------------------------------
def test_shutdown_leaves_no_server_and_no_tunnel(make_world: MakeWorld) -> None:
    """Servers and a tunnel the runbook never stopped are all gone after sandbox.shutdown."""
    world = make_world("b-flipped")
    fly = Fly(FlyctlSandbox(world))
    tunnel = fly.mpg_proxy(FLIPPED)  # deliberately left running
    proxy_pid = json.loads(next((world.state_dir / PROXY_PIDS).glob("*.pid")).read_text())["pid"]
    servers = [pg.server_info(world.state_dir, cid) for cid in (SOURCE, FLIPPED)]
    pids = [proxy_pid] + [s.pid for s in servers if s is not None]
    assert len(pids) == 3 and all(alive(pid) for pid in pids)

    sandbox.shutdown(world.state_dir)

    assert [pid for pid in pids if alive(pid)] == []
    assert not list((world.state_dir / PROXY_PIDS).glob("*.pid"))
    tunnel.stop()  # harmless afterwards


def test_the_call_log_marks_only_the_restore_as_mutating_and_has_no_destructive_verb(
        make_world: MakeWorld) -> None:
    """A whole Path B pass through the wrapper: one mutating call, the restore; nothing refused."""
    world = make_world("b-default")
    fly = Fly(FlyctlSandbox(world))
    fly.mpg_status(SOURCE)
    fly.mpg_backups(SOURCE)
    new_id = restore_and_wait(world, fly)
    app_urls(fly)
    with fly.mpg_proxy(new_id), fly.mpg_proxy(SOURCE):
        pass
    calls = world.calls()
    assert [c["call"].split(" ")[:2] for c in calls if c["mutating"]] == [["mpg", "restore"]]
    assert not any(c.get("refused") for c in calls)
    for call in calls:
        words = canonical(split_positionals(["flyctl", *shlex.split(call["call"])],
                                            ALL_VALUE_FLAGS))
        assert not is_destructive(words), call["call"]
    assert {c["call"].split(" ")[1] for c in calls if c["call"].startswith("mpg")} == {
        "status", "backup", "restore", "proxy"}


def test_path_a_worlds_start_no_database_server(tmp_path: Path) -> None:
    """Path A scenarios stay PostgreSQL-free: metadata-only clusters, no servers, no processes."""
    world = create_world("default", tmp_path / "world")
    clusters = world.state["fly"]["clusters"]
    assert clusters and not any(c["server"] for c in clusters.values())
    assert not any(b["sandbox_copy"] for c in clusters.values() for b in c["backups"])
    assert not any((world.state_dir / d).exists() for d in ("clusters", "backups", "pids"))
