"""Point-in-time replay on a real server: a WAL mark taken right after a commit covers that
commit, even when the commit is asynchronous and its WAL has not been written out yet."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg

from rollback_helpers.sandbox.postgres import backups as pg_backups
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.postgres import wal as pg_wal

CLUSTER = "walsourcecluster"


def one(info: pg.ServerInfo, query: str) -> object:
    with psycopg.connect(pg.superuser_dsn(info)) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def test_a_mark_right_after_an_async_commit_replays_that_commit(
        pg_state_dir: Path, pg_passwords: dict[str, str]) -> None:
    """The sandbox's servers commit asynchronously: the WAL writer writes a commit out a
    moment later. With the WAL writer held still, the commit of the writes made after the
    backup is only in WAL buffers when the mark is taken; a restore to that mark must still
    hold those rows, and a restore to a mark taken before them must not."""
    source = pg_backups.create_cluster(pg_state_dir, CLUSTER, passwords=pg_passwords)
    source = pg_wal.enable_wal_archive(pg_state_dir, CLUSTER)
    assert one(source, "SHOW synchronous_commit") == "off"
    pg_backups.take_backup(source, pg_state_dir, "walbackup1")
    before = pg_wal.wal_mark(source)
    writer = int(str(one(source, "SELECT pid FROM pg_stat_activity "
                                 "WHERE backend_type = 'walwriter'")))
    os.kill(writer, signal.SIGSTOP)
    try:
        pg_backups.add_writes(source, 24)
        after = pg_wal.wal_mark(source)
        unwritten = one(source, "SELECT pg_current_wal_lsn() < pg_current_wal_insert_lsn()")
    finally:
        os.kill(writer, signal.SIGCONT)
    assert unwritten is True  # the commit's WAL was still in buffers at the mark
    pg_wal.archive_now(source)

    restored = pg_backups.restore_cluster(pg_state_dir, "walbackup1", "walrestoredafter",
                                          source_id=CLUSTER, target_lsn=after)
    assert one(restored, "SELECT count(*) FROM meter_readings") == 600 + 24
    earlier = pg_backups.restore_cluster(pg_state_dir, "walbackup1", "walrestoredbefore",
                                         source_id=CLUSTER, target_lsn=before)
    assert one(earlier, "SELECT count(*) FROM meter_readings") == 600
