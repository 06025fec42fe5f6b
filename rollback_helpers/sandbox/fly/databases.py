"""Glue between the world's MPG clusters and the real PostgreSQL servers behind them.

A world cluster with ``"server": true`` is a real server made by :mod:`..postgres.backups`
and run by :mod:`..postgres.servers` under ``<state_dir>/clusters/<id>``. Its world entry
keeps what flyctl would know (``id, name, status, direct_ip, credentials, backups,
attached_apps``) and what only the sandbox needs:

* ``port`` — the port the server last listened on (``127.0.0.1`` only). It can
  change when a stopped server is started again: :func:`ensure_running` is the
  one place that reads it fresh, and the proxy goes through it.
* ``role_passwords`` — ``{"fly-user", "app-user", "migration-user"}`` in plain
  text. The state directory is sandbox state, never an artifact (drills archive
  notebooks, not worlds).

A real backup (``sandbox_copy: true``) is a ``pg_basebackup`` copy under
``<state_dir>/backups/<id>`` and carries the role passwords as they were when it
was taken, because a physical restore keeps the password hashes. Older backups
are metadata only: restoring one fails clearly (see :func:`restore`).
"""

from __future__ import annotations

import secrets as _random
from typing import Any

import psycopg
from psycopg import sql

from rollback_helpers.clock import parse_iso, utc_iso
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.common import (
    RestoreRefused,
    digest_text,
    direct_ip_for,
    flympg_url,
)
from rollback_helpers.sandbox.postgres import backups as pg_backups
from rollback_helpers.sandbox.postgres import servers as postgres
from rollback_helpers.sandbox.postgres import wal as pg_wal

ADMIN_USER = "fly-user"
APP_USER = "app-user"
MIGRATION_USER = "migration-user"
DBNAME = "fly-db"
URL_VARS = {"DATABASE_URL": (APP_USER, "pgbouncer"),
            "DATABASE_URL_MIGRATION": (MIGRATION_USER, "direct")}


# -- names ------------------------------------------------------------------------------
def backup_id_for(at: float, *parts: object) -> str:
    """``backup_<epoch>_<16 hex>``, the hex stable for the same scenario parts."""
    return f"backup_{int(at)}_{digest_text('backup', *parts)[:16]}"


def database_url(cluster_id: str, var: str, password: str, dbname: str = DBNAME) -> str:
    """What ``fly mpg attach`` would set: the pooler for the app, the primary for migrations."""
    user, host = URL_VARS[var]
    return flympg_url(user, password, host, cluster_id, dbname)


def app_database_urls(cluster: dict[str, Any]) -> dict[str, str]:
    passwords = cluster["role_passwords"]
    dbname = cluster["credentials"].get("dbname") or DBNAME
    return {var: database_url(cluster["id"], var, passwords[user], dbname)
            for var, (user, _) in URL_VARS.items()}


def new_password() -> str:
    return _random.token_urlsafe(18)


# -- clusters ------------------------------------------------------------------------------
def create_cluster(world: World, *, cluster_id: str, name: str, app: str, region: str = "fra",
                   plan: str = "basic", direct_ip: str = "") -> dict[str, Any]:
    """A ready world cluster with a real, running server behind it, attached to ``app``."""
    passwords = {ADMIN_USER: new_password(), APP_USER: new_password(),
                 MIGRATION_USER: new_password()}
    info = pg_backups.create_cluster(world.state_dir, cluster_id, passwords=passwords, dbname=DBNAME)
    cluster: dict[str, Any] = {
        "id": cluster_id, "name": name, "status": "ready", "region": region, "plan": plan,
        "org": world.state["fly"].get("org"), "disk": 10, "replicas": 1,
        "attached_apps": [app], "direct_ip": direct_ip or direct_ip_for(cluster_id),
        "credentials": {"status": "ready", "user": ADMIN_USER,
                        "password": passwords[ADMIN_USER], "dbname": DBNAME},
        "backups": [], "server": True, "port": info.port, "role_passwords": passwords,
    }
    world.state["fly"]["clusters"][cluster_id] = cluster
    return cluster


def has_server(world: World, cluster: dict[str, Any]) -> bool:
    """Whether a real server stands behind ``cluster``; an on-demand cluster gets one now.

    An on-demand cluster (a scenario's ``database_on_demand``) is metadata only until a
    restore or a tunnel needs it: then a server is built with the role passwords its app's
    URLs already name, and its newest backup becomes a real copy of that server (the
    environment's pre-deploy data; no bad migration ran there). Under the world's lock."""
    if cluster.get("server"):
        return True
    if not cluster.get("on_demand"):
        return False
    clear_half_built(world, cluster["id"])
    passwords = dict(cluster["role_passwords"])
    info = pg_backups.create_cluster(world.state_dir, cluster["id"], passwords=passwords,
                                     dbname=cluster["credentials"].get("dbname") or DBNAME)
    backup = max(cluster["backups"], key=lambda b: parse_iso(b["start"]), default=None)
    if backup is not None:
        pg_backups.discard_backup(world.state_dir, backup["id"])  # a killed builder's copy
        pg_backups.take_backup(info, world.state_dir, backup["id"])
        backup.update(sandbox_copy=True, role_passwords=passwords)
    cluster.update(server=True, port=info.port)
    return True


def ensure_running(world: World, cluster: dict[str, Any]) -> int:
    """The server's current port, starting it first if it was stopped (e.g. after shutdown)."""
    info = postgres.start_server(world.state_dir, cluster["id"])
    cluster["port"] = info.port
    return info.port


def stop(world: World, cluster: dict[str, Any]) -> None:
    postgres.stop_server(world.state_dir, cluster["id"])


def _superuser(world: World, cluster: dict[str, Any]) -> psycopg.Connection[Any]:
    info = postgres.start_server(world.state_dir, cluster["id"])
    return psycopg.connect(postgres.superuser_dsn(info), autocommit=True)


def rotate_password(world: World, cluster: dict[str, Any], role: str) -> str:
    """Give ``role`` a new password on the server (as a SCRAM verifier) and in the world."""
    password = new_password()
    with _superuser(world, cluster) as conn:
        verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(),
                                                b"scram-sha-256").decode()
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role),
                                                                 sql.Literal(verifier)))
    cluster["role_passwords"][role] = password
    if role == ADMIN_USER:
        cluster["credentials"]["password"] = password
    return password


def apply_destructive_migration(world: World, cluster: dict[str, Any]) -> None:
    info = postgres.start_server(world.state_dir, cluster["id"])
    pg_backups.apply_destructive_migration(info)


# -- point in time: a WAL archive and the moments a restore can replay to ----------------------
def enable_wal_archive(world: World, cluster: dict[str, Any]) -> None:
    cluster["port"] = pg_wal.enable_wal_archive(world.state_dir, cluster["id"]).port


def mark_wal(world: World, cluster: dict[str, Any], *, at: float) -> None:
    """The WAL position now is the moment ``at`` (virtual time); archived at once."""
    info = postgres.start_server(world.state_dir, cluster["id"])
    cluster.setdefault("wal_marks", []).append({"at": at, "lsn": pg_wal.wal_mark(info)})
    pg_wal.archive_now(info)


def add_writes(world: World, cluster: dict[str, Any], rows: int, *, at: float) -> None:
    """Good writes after the backup, up to the moment ``at`` (just before the bad deploy)."""
    pg_backups.add_writes(postgres.start_server(world.state_dir, cluster["id"]), rows)
    mark_wal(world, cluster, at=at)


def clear_half_built(world: World, cluster_id: str) -> bool:
    """Remove a server left half-built under ``cluster_id`` by a process killed mid-restore.

    The world saves a cluster only once its server is built, in the same transaction, so
    a server home the world does not list as a server was never a cluster anyone could
    use: its builder died. Called under the world's lock (a flyctl call), when nobody else
    can be building it; the build then starts afresh. True if one was removed."""
    known = world.state["fly"].get("clusters", {}).get(cluster_id) or {}
    if known.get("server") or not postgres.cluster_home(world.state_dir, cluster_id).exists():
        return False
    postgres.discard(world.state_dir, cluster_id)
    return True


# -- backups -------------------------------------------------------------------------------
def take_backup(world: World, cluster: dict[str, Any], backup_id: str, *, start: float,
                seconds: float = 33.0, status: str = "completed") -> dict[str, Any]:
    """A real copy of the server now, listed as a full backup started at ``start``."""
    info = postgres.start_server(world.state_dir, cluster["id"])
    pg_backups.take_backup(info, world.state_dir, backup_id)
    entry = metadata_backup(backup_id, start=start, seconds=seconds, status=status)
    entry.update(sandbox_copy=True, role_passwords=dict(cluster["role_passwords"]))
    cluster["backups"].append(entry)
    return entry


def metadata_backup(backup_id: str, *, start: float, seconds: float = 221.0,
                    status: str = "completed", kind: str = "full") -> dict[str, Any]:
    """A backup as ``mpg backup list`` shows it; an in-progress one has no stop time."""
    return {"id": backup_id, "status": status, "type": kind, "start": utc_iso(start),
            "stop": utc_iso(start + seconds) if status == "completed" else "",
            "sandbox_copy": False}


def pitr_lsn(source: dict[str, Any], backup: dict[str, Any], at: float) -> str:
    """The WAL position a restore to ``at`` replays to ('' = the backup's own end), or
    RestoreRefused when ``at`` is outside the window the archive covers."""
    stop = parse_iso(backup["stop"]) if backup.get("stop") else parse_iso(backup["start"])
    if at < stop:
        raise RestoreRefused(f"the point in time {utc_iso(at)} is before the cluster's PITR "
                             f"recovery window (from {utc_iso(stop)})")
    marks = [m for m in source.get("wal_marks", []) if float(m["at"]) <= at]
    return str(max(marks, key=lambda m: float(m["at"]))["lsn"]) if marks else ""


def restore(world: World, source: dict[str, Any], backup: dict[str, Any],
            new_id: str, *, pitr_time: float | None = None) -> dict[str, Any]:
    """Start a NEW real server from ``backup``; the sandbox fields of the new cluster entry
    (none when the source is metadata only: the new cluster is metadata only too).

    The source keeps running untouched. Only a real copy can be restored: the
    older, metadata-only backups of a scenario hold no data, and pretending to
    restore them from another copy would show the operator the wrong data.
    """
    try:
        if not has_server(world, source):
            return {}
    except postgres.SandboxPostgresError as exc:
        raise RestoreRefused(f"the sandbox server of cluster {source['id']} did not start: "
                             f"{exc}") from exc
    if not backup.get("sandbox_copy"):
        real = [b["id"] for b in source.get("backups", []) if b.get("sandbox_copy")]
        raise RestoreRefused(
            f"backup {backup['id']} has no data in the sandbox (only the pre-deploy backup "
            f"{', '.join(real) or '(none)'} is a real copy; restore that one)")
    lsn = pitr_lsn(source, backup, pitr_time) if pitr_time is not None else ""
    if pitr_time is not None and pitr_time > world.now:
        raise RestoreRefused(f"the point in time {utc_iso(pitr_time)} is in the future")
    clear_half_built(world, new_id)
    try:
        info = pg_backups.restore_cluster(world.state_dir, backup["id"], new_id,
                                          source_id=source["id"], target_lsn=lsn)
    except postgres.SandboxPostgresError as exc:
        raise RestoreRefused(f"sandbox server for backup {backup['id']} did not start: "
                             f"{exc}") from exc
    return {"server": True, "port": info.port,
            "role_passwords": dict(backup.get("role_passwords") or source["role_passwords"])}


def mark_ready(cluster: dict[str, Any]) -> None:
    """A restored cluster finished initializing: its address and fly-user's credentials."""
    cluster["status"] = "ready"
    cluster["direct_ip"] = direct_ip_for(cluster["id"])
    password = (cluster.get("role_passwords") or {}).get(ADMIN_USER) or new_password()
    cluster["credentials"] = {"status": "ready", "user": cluster.get("source_user", ADMIN_USER),
                              "password": password,
                              "dbname": cluster.get("source_dbname", DBNAME)}


def mark_failed(world: World, cluster: dict[str, Any]) -> None:
    """A restore that ends in ``error``: no usable server stays behind it."""
    cluster["status"] = "error"
    cluster["credentials"] = {**cluster["credentials"], "status": "error"}
    if cluster.get("server"):
        stop(world, cluster)
