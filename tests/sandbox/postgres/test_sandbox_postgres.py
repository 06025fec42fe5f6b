"""Sandbox clusters are real PostgreSQL servers: logins, backup, restore, stop."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from processes import alive, children, kill, wait_gone

from rollback_helpers.sandbox.postgres import backups as pg_backups
from rollback_helpers.sandbox.postgres import servers as pg

Login = Callable[..., psycopg.Connection[Any]]  # the pg_login fixture
ROOT = os.geteuid() == 0


def _superuser_query(info: pg.ServerInfo, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(pg.superuser_dsn(info)) as conn:
        return conn.execute(query).fetchall()


# -- logins -------------------------------------------------------------------------------
def test_app_and_migration_users_log_in_over_loopback_with_their_passwords(
        shared_cluster: pg.ServerInfo, pg_passwords: dict[str, str], pg_login: Login) -> None:
    """Both Fly MPG users reach the app database over 127.0.0.1 with SCRAM passwords."""
    for user in ("app-user", "migration-user"):
        conn = pg_login(shared_cluster.port, user, pg_passwords[user])
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (
            user, "fly-db")


def test_a_wrong_password_is_refused(shared_cluster: pg.ServerInfo, pg_login: Login) -> None:
    """A wrong password fails authentication."""
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pg_login(shared_cluster.port, "app-user", "not-the-password")


def test_the_superuser_cannot_log_in_over_tcp(shared_cluster: pg.ServerInfo,
                                              pg_login: Login) -> None:
    """Nothing is trusted: the passwordless superuser is reachable over the socket only."""
    with pytest.raises(psycopg.OperationalError):
        pg_login(shared_cluster.port, "postgres", "", "postgres")
    assert _superuser_query(shared_cluster, "SELECT current_user") == [("postgres",)]


def test_the_server_listens_on_loopback_only_and_stores_scram_hashes(
        shared_cluster: pg.ServerInfo) -> None:
    """listen_addresses is 127.0.0.1 and every login role has a SCRAM verifier."""
    assert _superuser_query(shared_cluster, "SHOW listen_addresses") == [("127.0.0.1",)]
    rows = _superuser_query(shared_cluster, "SELECT rolname, left(rolpassword, 14) FROM pg_authid"
                            " WHERE rolcanlogin AND rolname <> 'postgres' ORDER BY 1")
    assert rows == [(role, "SCRAM-SHA-256$") for role in ("app-user", "fly-user",
                                                          "migration-user")]


def test_the_app_schema_is_owned_by_migration_user_and_writable_by_app_user(
        shared_cluster: pg.ServerInfo, pg_passwords: dict[str, str], pg_login: Login) -> None:
    """migration-user owns the tables; app-user may change rows but not the schema."""
    owners = _superuser_query(shared_cluster, "SELECT tablename, tableowner FROM pg_tables "
                              "WHERE schemaname = 'public' ORDER BY 1")
    assert owners == [(t, "migration-user") for t in ("customers", "invoices", "meter_readings",
                                                      "schema_migrations")]
    app = pg_login(shared_cluster.port, "app-user", pg_passwords["app-user"])
    with app.transaction(force_rollback=True):
        app.execute("INSERT INTO customers (name) VALUES ('new')")
        app.execute("DELETE FROM meter_readings WHERE id = 1")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("DROP TABLE invoices")
    versions = app.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert [v for (v,) in versions] == list(pg_backups.PRE_DEPLOY_MIGRATIONS)


# -- backup and restore -----------------------------------------------------------------------
def test_restore_forks_a_new_cluster_with_the_pre_deploy_data(
        pg_state_dir: Path, pg_passwords: dict[str, str], pg_login: Login) -> None:
    """After a destructive deploy, a restore from the earlier backup has the old data back,
    runs beside the damaged source, and accepts the same logins."""
    source = pg_backups.create_cluster(pg_state_dir, "sourcecluster001", passwords=pg_passwords)
    before = _superuser_query(source, "SELECT (SELECT count(*) FROM meter_readings), "
                              "(SELECT count(*) FROM customers WHERE email IS NOT NULL)")[0]
    backup = pg_backups.take_backup(source, pg_state_dir, "backup_1760445047_1a4a7fa7ec8accc4")
    assert (backup / "PG_VERSION").is_file()
    pg_backups.apply_destructive_migration(source)

    restored = pg_backups.restore_cluster(pg_state_dir, "backup_1760445047_1a4a7fa7ec8accc4",
                                          "restoredcluster1")

    assert restored.port != source.port and restored.pid != source.pid
    assert pg.server_info(pg_state_dir, "sourcecluster001") == source
    new = pg_login(restored.port, "app-user", pg_passwords["app-user"])
    assert new.execute("SELECT (SELECT count(*) FROM meter_readings), (SELECT count(*) FROM "
                       "customers WHERE email IS NOT NULL), pg_is_in_recovery()"
                       ).fetchone() == (*before, False)
    old = pg_login(source.port, "migration-user", pg_passwords["migration-user"])
    assert old.execute("SELECT to_regclass('meter_readings'), count(email) FROM customers"
                       ).fetchone() == (None, 0)
    assert old.execute("SELECT 1 FROM schema_migrations WHERE version = %s",
                       [pg_backups.DESTRUCTIVE_MIGRATION]).fetchone() == (1,)
    hashes = "SELECT rolname, rolpassword FROM pg_authid WHERE rolcanlogin ORDER BY 1"
    assert _superuser_query(restored, hashes) == _superuser_query(source, hashes)
    pg_login(restored.port, "migration-user", pg_passwords["migration-user"])


def test_a_backup_stays_reusable_after_a_restore(pg_state_dir: Path,
                                                 pg_passwords: dict[str, str]) -> None:
    """Restoring copies the backup: a second restore from it works too."""
    source = pg_backups.create_cluster(pg_state_dir, "sourcecluster002", passwords=pg_passwords)
    pg_backups.take_backup(source, pg_state_dir, "backup_2")
    first = pg_backups.restore_cluster(pg_state_dir, "backup_2", "forkone")
    second = pg_backups.restore_cluster(pg_state_dir, "backup_2", "forktwo")
    assert len({source.port, first.port, second.port}) == 3
    assert _superuser_query(second, "SELECT count(*) FROM invoices") == [(400,)]


def test_restore_of_an_unknown_backup_fails_and_leaves_no_cluster(pg_state_dir: Path) -> None:
    """A missing backup id is named in the error; nothing is created."""
    with pytest.raises(pg.SandboxPostgresError, match="backup_404"):
        pg_backups.restore_cluster(pg_state_dir, "backup_404", "nevercreated")
    assert not (pg_state_dir / "clusters" / "nevercreated").exists()


# -- stopping -------------------------------------------------------------------------------
def test_stop_all_leaves_no_server_process_and_is_idempotent(
        pg_state_dir: Path, pg_passwords: dict[str, str]) -> None:
    """stop_all ends the postmaster and all its children; a second call stops nothing."""
    first = pg_backups.create_cluster(pg_state_dir, "stopmeone", passwords=pg_passwords)
    pg_backups.take_backup(first, pg_state_dir, "b1")
    second = pg_backups.restore_cluster(pg_state_dir, "b1", "stopmetwo")
    pids = [first.pid, *children(first.pid), second.pid, *children(second.pid)]
    assert len(pids) > 2

    assert pg.stop_all(pg_state_dir) == ["stopmeone", "stopmetwo"]

    assert [pid for pid in pids if alive(pid)] == []
    assert pg.stop_all(pg_state_dir) == []
    assert pg.server_info(pg_state_dir, "stopmeone") is None


def test_a_stopped_cluster_starts_again_with_its_data(
        pg_state_dir: Path, pg_passwords: dict[str, str], pg_login: Login) -> None:
    """start_server brings a stopped cluster back (on a new port) with its data."""
    pg_backups.create_cluster(pg_state_dir, "restartme", passwords=pg_passwords)
    assert pg.stop_server(pg_state_dir, "restartme") is True
    again = pg.start_server(pg_state_dir, "restartme")
    conn = pg_login(again.port, "app-user", pg_passwords["app-user"])
    assert conn.execute("SELECT count(*) FROM customers").fetchone() == (200,)


def test_stop_all_copes_with_a_crashed_server(pg_state_dir: Path,
                                              pg_passwords: dict[str, str]) -> None:
    """A killed postmaster leaves a stale postmaster.pid: nothing to stop, and it restarts."""
    info = pg_backups.create_cluster(pg_state_dir, "crashme", passwords=pg_passwords)
    pids = [info.pid, *children(info.pid)]
    os.kill(info.pid, signal.SIGKILL)
    kill(pids[1:])  # those that already followed the postmaster out are fine
    assert wait_gone(pids, timeout=10) == set()
    assert (pg_state_dir / "clusters" / "crashme" / "data" / "postmaster.pid").is_file()

    assert pg.stop_all(pg_state_dir) == []
    assert pg.start_server(pg_state_dir, "crashme").pid not in pids


# -- where data lives -----------------------------------------------------------------------
@pytest.mark.skipif(not ROOT, reason="only root runs the server as another OS user")
def test_a_state_dir_the_server_user_cannot_reach_falls_back_to_a_runtime_dir(
        tmp_path: Path, pg_passwords: dict[str, str]) -> None:
    """Under pytest's 0700 tmp_path the data lives in /tmp/rbpg-*, linked from the state dir;
    purge removes it."""
    try:
        info = pg_backups.create_cluster(tmp_path, "fallbackcluster", passwords=pg_passwords)
        link = tmp_path / "clusters" / "fallbackcluster" / "data"
        assert link.is_symlink() and str(link.resolve()) == info.data_dir
        assert info.data_dir.startswith("/tmp/rbpg-")
    finally:
        pg.purge(tmp_path)
    assert not Path(info.data_dir).exists()


def test_clusters_live_under_the_state_dir(shared_cluster: pg.ServerInfo) -> None:
    """A reachable state dir holds the data directory itself, with a short socket path."""
    data = Path(shared_cluster.data_dir)
    assert data.name == "data" and data.parent.name == shared_cluster.cluster_id
    assert not data.is_symlink()
    assert len(shared_cluster.socket_dir) < 100


def test_create_cluster_needs_both_application_passwords(pg_state_dir: Path) -> None:
    """Leaving out a role's password is refused before anything is created."""
    with pytest.raises(ValueError, match="migration-user"):
        pg_backups.create_cluster(pg_state_dir, "nopasswords", passwords={"app-user": "x" * 12})
    assert not (pg_state_dir / "clusters").exists()


def test_a_failed_create_leaves_no_server_running(pg_state_dir: Path) -> None:
    """When setup fails half-way (a role clashing with the superuser), the server it had
    started is stopped and its directory removed."""
    passwords = {"app-user": "a" * 12, "migration-user": "m" * 12, "postgres": "p" * 12}
    with pytest.raises(pg.SandboxPostgresError, match="halfmade.*already exists"):
        pg_backups.create_cluster(pg_state_dir, "halfmade", passwords=passwords)
    assert not (pg_state_dir / "clusters" / "halfmade").exists()
    assert not [p for p in Path("/proc").glob("[0-9]*/cwd") if _cwd_under(p, pg_state_dir)]


def _cwd_under(link: Path, root: Path) -> bool:
    try:
        return os.readlink(link).startswith(str(root))
    except OSError:
        return False


def test_missing_server_binaries_say_how_to_install(tmp_path: Path) -> None:
    """Without initdb & co. the error names the places looked and the apt-get command."""
    with pytest.raises(pg.SandboxPostgresError, match="apt-get install postgresql") as caught:
        pg.pick_pg_bindir([tmp_path])
    assert str(tmp_path) in str(caught.value)
    assert pg.pick_pg_bindir([tmp_path, pg.find_pg_bindir()]) == pg.find_pg_bindir()
