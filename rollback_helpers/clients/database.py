"""Database URLs as secrets, and connectivity checks through a ``flyctl mpg proxy`` tunnel.

``*.flympg.net`` hosts resolve only on Fly's private network, so every check
connects to the tunnel's local port with the user, password and database of
the app's own URL. Nothing here ever prints a password.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from rollback_helpers.errors import ConnectivityError
from rollback_helpers.secrets import Secret, mask_url, redact

_FLY_HOST = re.compile(r"^(?P<kind>direct|pgbouncer)\.(?P<cluster>[a-z0-9]+)\.flympg\.net$")
# (table, column that orders the newest migration first)
MIGRATION_TABLES = (("schema_migrations", "version"), ("_prisma_migrations", "finished_at"),
                    ("alembic_version", "version_num"), ("django_migrations", "applied"),
                    ("knex_migrations", "migration_time"))


@dataclass(frozen=True)
class DbUrl:
    var: str
    user: str
    password: Secret
    host: str
    port: int
    dbname: str

    @property
    def cluster_id(self) -> str | None:
        """The Managed Postgres cluster a ``*.flympg.net`` host belongs to."""
        match = _FLY_HOST.match(self.host)
        return match["cluster"] if match else None

    @property
    def host_kind(self) -> str:
        match = _FLY_HOST.match(self.host)
        return match["kind"] if match else "other"

    def shown(self) -> str:
        return f"postgresql://{self.user}:****@{self.host}/{self.dbname}"


def parse_db_url(value: Secret, var: str) -> DbUrl:
    """Split a connection string held in a Secret; errors never show it."""
    parts = urlsplit(value.reveal())
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname or not parts.username:
        raise ConnectivityError(f"{var} is not a postgres:// URL with a user and host "
                                f"({mask_url(value)}).",
                                f"Check the {var} secret in Infisical.")
    return DbUrl(var=var, user=unquote(parts.username), password=Secret(unquote(parts.password or "")),
                 host=parts.hostname, port=parts.port or 5432,
                 dbname=unquote(parts.path.lstrip("/")) or "postgres")


@dataclass(frozen=True)
class ConnectionCheck:
    user: str
    connected: bool
    current_user: str = ""
    server_version: str = ""
    in_recovery: bool | None = None
    newest_migration: str = ""
    table_counts: dict[str, int] = field(default_factory=dict)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.connected and self.in_recovery is False


def check_connection(port: int, url: DbUrl, *, tables: Sequence[str] = (), host: str = "127.0.0.1",
                     timeout: float = 10.0) -> ConnectionCheck:
    """Log in through the tunnel as ``url.user`` and read what the database holds."""
    try:
        with psycopg.connect(host=host, port=port, user=url.user, dbname=url.dbname,
                             password=url.password.reveal(), connect_timeout=int(max(timeout, 1)),
                             autocommit=True) as conn:
            conn.execute("SET statement_timeout = '10s'")
            row = conn.execute("SELECT current_user, current_setting('server_version'), "
                               "pg_is_in_recovery()").fetchone()
            assert row is not None
            return ConnectionCheck(url.user, True, str(row[0]), str(row[1]), bool(row[2]),
                                   _newest_migration(conn), _counts(conn, tables))
    except psycopg.Error as exc:
        return ConnectionCheck(url.user, False, error=redact(str(exc).strip().splitlines()[0]
                                                             if str(exc).strip() else repr(exc)))


def _newest_migration(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    for table, column in MIGRATION_TABLES:
        if _exists(conn, table):
            row = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY {} DESC NULLS LAST LIMIT 1")
                               .format(sql.Identifier(table), sql.Identifier(column))).fetchone()
            return f"{table}: {row[0]}" if row else f"{table}: (empty)"
    return "(no known migrations table)"


def _exists(conn: psycopg.Connection[tuple[object, ...]], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"public.{table}",)).fetchone()
    return bool(row and row[0])


def _counts(conn: psycopg.Connection[tuple[object, ...]], tables: Sequence[str]) -> dict[str, int]:
    """Exact row counts of the named tables; with none named, the public tables (at most 10)."""
    names = list(tables) or [str(r[0]) for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename LIMIT 10")]
    counts: dict[str, int] = {}
    for name in names:
        if not _exists(conn, name):
            counts[name] = -1  # missing: dropped, or never there
            continue
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))).fetchone()
        counts[name] = int(str(row[0])) if row else 0
    return counts
