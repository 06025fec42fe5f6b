"""The sandbox's `flyctl mpg proxy`: a real TCP forwarder in its own process."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import psycopg
import pytest
from processes import wait_gone

from rollback_helpers.clients.commands import PopenProcess, SubprocessRunner
from rollback_helpers.sandbox.postgres import servers as pg
from rollback_helpers.sandbox.postgres.tcp_proxy import split_host_port

REMOTE = "[fdaa:12:a3f1:0:1::7]:5432"
BANNER = re.compile(r"^Proxying localhost:(\d+) to remote (.+)$")


def _proxy_argv(target_port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "rollback_helpers.sandbox.postgres.tcp_proxy",
            "--target", f"127.0.0.1:{target_port}", "--remote", REMOTE, "-p", "0", *extra]


StartProxy = Callable[..., PopenProcess]


@pytest.fixture
def start_proxy() -> Iterator[StartProxy]:
    """``start_proxy(target_port, *extra_args)``: a running proxy, stopped after the test."""
    started: list[PopenProcess] = []

    def start(target_port: int, *extra: str) -> PopenProcess:
        proc = SubprocessRunner(allowed_programs=[sys.executable]).start(
            _proxy_argv(target_port, *extra))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def _port_of(proc: PopenProcess) -> int:
    line = proc.read_line(timeout=10)
    assert line is not None, f"no banner; stderr: {proc.stderr_text()}"
    match = BANNER.match(line)
    assert match, line
    assert match.group(2) == REMOTE
    return int(match.group(1))


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _can_bind(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen(1)
        except OSError:
            return False
    return True


def test_it_proxies_postgres_logins_and_queries(
        start_proxy: StartProxy, shared_cluster: pg.ServerInfo,
        pg_passwords: dict[str, str]) -> None:
    """Through the tunnel app-user logs in and queries the real cluster, twice at once."""
    proc = start_proxy(shared_cluster.port)
    port = _port_of(proc)
    conns = [psycopg.connect(host="127.0.0.1", port=port, user=user, password=pg_passwords[user],
                             dbname="fly-db", connect_timeout=10)
             for user in ("app-user", "migration-user")]
    try:
        for conn in conns:
            assert conn.execute("SELECT count(*) FROM customers").fetchone() == (200,)
            assert conn.execute("SELECT inet_server_port()").fetchone() == (shared_cluster.port,)
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_ends_it_with_exit_0_and_frees_the_port(
        start_proxy: StartProxy, shared_cluster: pg.ServerInfo, pg_passwords: dict[str, str],
        sig: signal.Signals) -> None:
    """SIGINT or SIGTERM: exit 0, nothing listens on the port, and it can be bound again."""
    proc = start_proxy(shared_cluster.port)
    port = _port_of(proc)
    conn = psycopg.connect(host="127.0.0.1", port=port, user="app-user",
                           password=pg_passwords["app-user"], dbname="fly-db", autocommit=True)
    try:
        conn.execute("SELECT 1")
        os.kill(proc.pid, sig)  # an open connection must not hold the proxy up
        wait_gone([proc.pid], timeout=10)
    finally:
        conn.close()
    assert proc.poll() == 0, proc.stderr_text()
    assert not _accepts(port)
    assert _can_bind(port)


def test_fail_prints_the_error_and_exits_1_before_binding() -> None:
    """--fail MESSAGE mimics flyctl refusing: `Error: MESSAGE` on stderr, exit 1, no banner."""
    done = subprocess.run(_proxy_argv(1, "--fail", "cluster is still initializing, wait a bit "
                                      "more"), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "Error: cluster is still initializing, wait a bit more\n"


def test_a_port_in_use_is_an_error() -> None:
    """Binding a taken port fails with an Error line and exit 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        argv = _proxy_argv(1)
        argv[argv.index("-p") + 1] = str(taken.getsockname()[1])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: failed to listen on 127.0.0.1:")


def test_an_unreachable_target_closes_the_client_and_keeps_serving(start_proxy: StartProxy) -> None:
    """A refused upstream drops that one client and says so; the proxy stays up."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    proc = start_proxy(dead_port)
    port = _port_of(proc)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        assert client.recv(1) == b""
    assert proc.poll() is None
    assert proc.stop() == 0
    assert f"Error: could not reach remote {REMOTE}" in proc.stderr_text()


def test_split_host_port_accepts_ipv4_and_bracketed_ipv6() -> None:
    """Targets are HOST:PORT or [V6]:PORT."""
    assert split_host_port("127.0.0.1:5432") == ("127.0.0.1", 5432)
    assert split_host_port("[fdaa::7]:5432") == ("fdaa::7", 5432)
    with pytest.raises(ValueError):
        split_host_port("no-port")
