"""Shared fixtures. Each section serves the tests named in its heading."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from rollback_helpers.sandbox import postgres as pg


# -- sandbox PostgreSQL (test_sandbox_postgres.py, test_tcp_proxy.py) -------------------------
def _pg_state_dir() -> Path:
    # Traversable by the `postgres` OS user (the server's user when we are root), unlike
    # pytest's 0700 tmp_path, so clusters live under it rather than in a /tmp fallback.
    path = Path(tempfile.mkdtemp(prefix="rbpg-test-"))
    path.chmod(0o711)
    return path


@pytest.fixture
def pg_state_dir() -> Iterator[Path]:
    """A fresh sandbox state dir; every server started under it is stopped and deleted after."""
    path = _pg_state_dir()
    try:
        yield path
    finally:
        pg.purge(path)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_passwords() -> dict[str, str]:
    return {"app-user": secrets.token_urlsafe(18), "migration-user": secrets.token_urlsafe(18)}


@pytest.fixture(scope="session")
def shared_cluster(pg_passwords: dict[str, str]) -> Iterator[pg.ServerInfo]:
    """One running cluster for tests that only read from it or tunnel to it."""
    path = _pg_state_dir()
    try:
        yield pg.create_cluster(path, "sharedpgcluster1", passwords=pg_passwords)
    finally:
        pg.purge(path)
        shutil.rmtree(path, ignore_errors=True)


Login = Callable[..., psycopg.Connection[tuple[object, ...]]]


@pytest.fixture
def pg_login() -> Iterator[Login]:
    """``pg_login(port, user, password, dbname="fly-db")``: a TCP login, closed after the test."""
    opened: list[psycopg.Connection[tuple[object, ...]]] = []

    def login(port: int, user: str, password: str, dbname: str = "fly-db"
              ) -> psycopg.Connection[tuple[object, ...]]:
        conn = psycopg.connect(host="127.0.0.1", port=port, user=user, password=password,
                               dbname=dbname, connect_timeout=10, autocommit=True)
        opened.append(conn)
        return conn

    yield login
    for conn in opened:
        conn.close()
