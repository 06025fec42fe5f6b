"""Point-in-time restore in the sandbox: a cluster's WAL archive, moments marked by LSN, and
the wait for a replay to reach one. A restore that replays (:func:`.backups.restore_cluster`)
reads the archive through ``restore_command`` and stops at ``recovery_target_lsn``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rollback_helpers.sandbox.postgres.servers import (
    SandboxPostgresError,
    ServerInfo,
    cluster_home,
    connect_superuser,
    give_to_server,
    start_server,
    stop_server,
)


def enable_wal_archive(state_dir: Path, cluster_id: str) -> ServerInfo:
    """Archive the cluster's WAL into ``<home>/wal`` from now on (restarts the server)."""
    record = json.loads((cluster_home(Path(state_dir), cluster_id) / "cluster.json").read_text())
    archive = wal_archive(state_dir, cluster_id)
    archive.mkdir(mode=0o700, exist_ok=True)
    give_to_server(archive)
    conf = Path(record["data_dir"]) / "archive.conf"
    conf.write_text(f"archive_mode = on\narchive_command = 'cp %p {archive}/%f'\n")
    give_to_server(conf)
    stop_server(Path(state_dir), cluster_id)
    return start_server(Path(state_dir), cluster_id)


def wal_archive(state_dir: Path, cluster_id: str) -> Path:
    """Beside the server's real data directory (which the server's OS account can reach)."""
    record = json.loads((cluster_home(Path(state_dir), cluster_id) / "cluster.json").read_text())
    return Path(record["data_dir"]).parent / "wal"


def wal_mark(info: ServerInfo) -> str:
    """The server's WAL position now (a moment a point-in-time restore can replay to).

    The insert position, not ``pg_current_wal_lsn()``: that is where the WAL has been
    *written* to, and the sandbox commits asynchronously (``synchronous_commit = off``), so
    a commit made a moment ago may still sit in WAL buffers behind it. A replay to the
    write position then stops before that commit and the restore loses its rows."""
    with connect_superuser(info, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
    return str(row[0]) if row else ""


def archive_now(info: ServerInfo) -> None:
    """Close the current WAL segment and wait until the archiver has copied it."""
    with connect_superuser(info, autocommit=True) as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        segment = str(row[0]) if row else ""
        for _ in range(1200):
            done = conn.execute("SELECT coalesce(last_archived_wal, '') FROM "
                                "pg_stat_archiver").fetchone()
            if done and str(done[0]) >= segment:
                return
            time.sleep(0.05)
    raise SandboxPostgresError(f"Sandbox cluster {info.cluster_id} did not archive {segment}.")


def wait_promoted(info: ServerInfo) -> None:
    """Until a restored server has replayed to its target and opened for writes."""
    with connect_superuser(info, "postgres", autocommit=True) as conn:
        for _ in range(1200):  # a minute at most, on a busy machine
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row and not row[0]:
                return
            time.sleep(0.05)
    raise SandboxPostgresError(f"Sandbox cluster {info.cluster_id} did not finish replaying "
                               "its WAL to the point in time.")
