"""Database URLs stay secret; logins are checked against a real PostgreSQL server."""

from __future__ import annotations

import pytest

from rollback_helpers.clients.database import check_connection, parse_db_url
from rollback_helpers.errors import ConnectivityError
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.secrets import Secret

URL = "postgresql://app-user:s3cr%40t-pass@pgbouncer.w3k8p1x9m2q7v4zr.flympg.net/fly-db"


def test_url_parts_and_cluster_are_read_and_the_password_never_shows() -> None:
    """A Fly MPG URL yields user, db, host kind and cluster id; its password renders ****."""
    url = parse_db_url(Secret(URL), "DATABASE_URL")
    assert (url.user, url.dbname, url.port) == ("app-user", "fly-db", 5432)
    assert (url.cluster_id, url.host_kind) == ("w3k8p1x9m2q7v4zr", "pgbouncer")
    assert url.password.reveal() == "s3cr@t-pass"
    for text in (repr(url), str(url), url.shown()):
        assert "s3cr" not in text


def test_a_non_postgres_url_is_refused_without_echoing_it() -> None:
    """A value that is not a postgres URL is an error that masks the password."""
    with pytest.raises(ConnectivityError) as caught:
        parse_db_url(Secret("mysql://root:hunter2hunter2@db/x"), "DATABASE_URL")
    assert "hunter2" not in str(caught.value) and "DATABASE_URL" in str(caught.value)


def url_for(user: str, password: str) -> Secret:
    return Secret(f"postgresql://{user}:{password}@direct.sharedpgcluster1.flympg.net/fly-db")


def test_both_users_log_in_and_see_the_data(shared_cluster: pg.ServerInfo,
                                            pg_passwords: dict[str, str]) -> None:
    """A login reads current_user, version, recovery state, newest migration and row counts."""
    for user in ("app-user", "migration-user"):
        check = check_connection(shared_cluster.port,
                                 parse_db_url(url_for(user, pg_passwords[user]), "X"))
        assert check.ok, check.error
        assert check.current_user == user and check.in_recovery is False
        assert check.newest_migration.startswith("schema_migrations: ")
        assert check.table_counts and all(n > 0 for n in check.table_counts.values())


def test_named_tables_are_counted_and_missing_ones_marked(shared_cluster: pg.ServerInfo,
                                                         pg_passwords: dict[str, str]) -> None:
    """Named tables get exact counts; a table that does not exist counts -1 (missing)."""
    url = parse_db_url(url_for("app-user", pg_passwords["app-user"]), "X")
    check = check_connection(shared_cluster.port, url, tables=("customers", "no_such_table"))
    assert check.table_counts["no_such_table"] == -1 and check.table_counts["customers"] > 0


def test_a_wrong_password_fails_clearly_and_is_not_shown(shared_cluster: pg.ServerInfo) -> None:
    """A failed login is reported (not raised) with the server's reason, never the password."""
    check = check_connection(shared_cluster.port,
                             parse_db_url(url_for("migration-user", "wrong-pass-123"), "X"))
    assert not check.connected and not check.ok
    assert "password authentication failed" in check.error and "wrong-pass-123" not in check.error
