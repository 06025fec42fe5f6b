"""Real PostgreSQL servers standing in for Fly Managed Postgres clusters.

Each sandbox cluster is a real ``postgres`` process listening on
``127.0.0.1:<port>`` only. This module runs them: it finds the server binaries,
runs them as the right OS user, starts a cluster's server on a free port, knows
which servers are running (from their ``postmaster.pid``) and stops them.
Making clusters — a new one with a Fly MPG cluster's roles and data, the
destructive migration, ``pg_basebackup`` backups and restores into a NEW server —
is :mod:`.backups`.

Layout under the sandbox state directory::

    clusters/<cluster_id>/cluster.json   where its data and socket live, its dbname
    clusters/<cluster_id>/server.log     the server's output
    clusters/<cluster_id>/data           the data directory (or a symlink, see below)
    backups/<backup_id>/                 a physical copy (pg_basebackup -Fp -Xs)
    backups/<backup_id>.json             which cluster it was taken from, and when

PostgreSQL refuses to run as root. When this process is root, the server-side
binaries (initdb, pg_ctl, postgres) run as the ``postgres`` OS user, who must be
able to reach the data directory. When the state directory is not traversable by
that user (``/root/…``, pytest's ``/tmp/pytest-of-root``), or its path is too
long for a unix socket, the data and socket live in a short per-cluster runtime
directory under ``/tmp`` (``data`` is then a symlink to it; :mod:`.backups`
decides which when it makes the cluster); :func:`purge` removes those too. The
superuser is reached only over the unix socket with ``peer`` authentication,
mapped from the OS user that runs the sandbox; TCP logins need a SCRAM password,
nothing is ``trust``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

SERVER_OS_USER = "postgres"
SUPERUSER = "postgres"
_INSTALL_HINT = ("Install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`) "
                 "or put its bin directory (initdb, pg_ctl, postgres) on PATH.")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it


class SandboxPostgresError(RuntimeError):
    """A sandbox PostgreSQL server could not be created, started, backed up or stopped."""


@dataclass(frozen=True)
class ServerInfo:
    """A running sandbox server: it listens on ``127.0.0.1:port`` only."""

    cluster_id: str
    data_dir: str
    port: int
    pid: int
    socket_dir: str
    dbname: str = "fly-db"


# -- finding and running the binaries ---------------------------------------------------
@lru_cache(maxsize=1)
def find_pg_bindir() -> Path:
    """The directory holding initdb, pg_ctl, postgres and pg_basebackup.

    Looked for in ``pg_config --bindir``, then ``/usr/lib/postgresql/<newest>/bin``,
    then wherever ``initdb`` is on PATH.
    """
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                              timeout=10, check=False)
        candidates.append(Path(done.stdout.strip()))
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versioned, key=_version_key, reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    return pick_pg_bindir(candidates)


def pick_pg_bindir(candidates: Sequence[Path]) -> Path:
    """The first of ``candidates`` that holds every server binary the sandbox runs."""
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres",
                                                      "pg_basebackup")):
            return bindir
    looked = ", ".join(map(str, candidates)) or "nowhere"
    raise SandboxPostgresError(
        "No PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup) found "
        f"(looked in: {looked}; sources: `pg_config --bindir`, /usr/lib/postgresql/*/bin, "
        f"PATH). {_INSTALL_HINT}")


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as: None means this process's own user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise SandboxPostgresError(
            "Running as root, but there is no `postgres` OS user to run the server as "
            f"(PostgreSQL refuses root). {_INSTALL_HINT}") from None


def run_binary(argv: Sequence[str], *, timeout: float, as_server: bool,
               output: IO[bytes] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run one PostgreSQL binary; with ``as_server`` as the server's OS user."""
    account = server_account() if as_server else None
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C")
    user_opts: dict[str, Any] = {}
    if account is not None:
        env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name)
        user_opts = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    sink: IO[bytes] | int = output if output is not None else subprocess.PIPE
    try:
        return subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=sink,
                              stderr=subprocess.STDOUT, env=env, cwd="/", timeout=timeout,
                              check=False, start_new_session=True, **user_opts)
    except subprocess.TimeoutExpired as exc:
        raise SandboxPostgresError(f"`{' '.join(argv)}` did not finish within {timeout:.0f}s"
                                   ) from exc


def check_exit(done: subprocess.CompletedProcess[bytes], what: str) -> None:
    if done.returncode != 0:
        tail = "\n".join((done.stdout or b"").decode(errors="replace").strip().splitlines()[-8:])
        raise SandboxPostgresError(
            f"{what} failed: `{' '.join(map(str, done.args))}` exited {done.returncode}\n{tail}")


def give_to_server(path: Path) -> None:
    """Make ``path`` (recursively) owned by the server's OS user, when that is not us."""
    account = server_account()
    if account is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, account.pw_uid, account.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), account.pw_uid, account.pw_gid,
                     follow_symlinks=False)


# -- where a cluster lives ------------------------------------------------------------
def cluster_home(state_dir: Path, cluster_id: str) -> Path:
    if not ID_PATTERN.match(cluster_id):
        raise ValueError(f"Not a usable sandbox cluster id: {cluster_id!r}")
    return Path(state_dir) / "clusters" / cluster_id


def _record(state_dir: Path, cluster_id: str) -> dict[str, Any] | None:
    path = cluster_home(state_dir, cluster_id) / "cluster.json"
    return json.loads(path.read_text()) if path.is_file() else None


# -- processes --------------------------------------------------------------------------
def _pid_alive(pid: int, data_dir: Path | None = None) -> bool:
    """True for a live (not zombie) postgres process with this pid (serving ``data_dir``)."""
    if not Path("/proc/self/stat").exists():  # no procfs: a signal probe will do
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X") or b"postgres" not in cmdline:
        return False
    if data_dir is None:
        return True
    try:  # a stale pid file's pid may since belong to another cluster's server
        return os.readlink(f"/proc/{pid}/cwd") == str(data_dir.resolve())
    except OSError:
        return True


def _children(pid: int) -> list[int]:
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(Path(stat).parent.name))
    return found


def _wait_gone(pids: Sequence[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _read_pidfile(data_dir: Path) -> tuple[int, int, str] | None:
    """(pid, port, socket dir) from postmaster.pid, if the server it names is alive."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid, port, sockdir = int(lines[0]), int(lines[3]), lines[4]
    except (OSError, IndexError, ValueError):
        return None
    return (pid, port, sockdir) if _pid_alive(pid, data_dir) else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# -- public API -----------------------------------------------------------------------
def server_info(state_dir: Path, cluster_id: str) -> ServerInfo | None:
    """The running server of this cluster, or None when it is stopped or unknown."""
    record = _record(Path(state_dir), cluster_id)
    data = cluster_home(Path(state_dir), cluster_id) / "data"
    running = _read_pidfile(data)
    if running is None:
        return None
    pid, port, sockdir = running
    dbname = record["dbname"] if record else "fly-db"
    return ServerInfo(cluster_id, str(data.resolve()), port, pid, sockdir, dbname)


def start_server(state_dir: Path, cluster_id: str) -> ServerInfo:
    """Start the cluster's server on a free port (a no-op when it already runs)."""
    state_dir = Path(state_dir)
    running = server_info(state_dir, cluster_id)
    if running is not None:
        return running
    record = _record(state_dir, cluster_id)
    if record is None:
        raise SandboxPostgresError(f"No sandbox cluster {cluster_id} in {state_dir}.")
    data = Path(record["data_dir"])
    log = cluster_home(state_dir, cluster_id) / "server.log"
    # A crashed postmaster's pid file names a dead (or zombie, not yet reaped) process,
    # which postgres would take for a live server.
    (data / "postmaster.pid").unlink(missing_ok=True)
    attempts = 0
    while attempts < _START_ATTEMPTS:
        attempts += 1
        port = _free_port()
        conf = data / "sandbox.conf"
        conf.write_text(f"port = {port}\nunix_socket_directories = '{record['socket_dir']}'\n")
        give_to_server(conf)
        offset = log.stat().st_size if log.exists() else 0
        with open(log, "ab") as out:
            done = run_binary([str(find_pg_bindir() / "pg_ctl"), "start", "-D", str(data), "-w",
                               "-t", "30", "-s"], timeout=45, as_server=True, output=out)
        info = server_info(state_dir, cluster_id)
        if done.returncode == 0 and info is not None:
            return info
        with open(log, "rb") as text:
            text.seek(offset)
            lost_port = b"Address already in use" in text.read()
        if not lost_port:
            break
    raise SandboxPostgresError(
        f"Sandbox cluster {cluster_id} did not start (after {attempts} attempt(s)): "
        f"`pg_ctl start` exited {done.returncode}\n{_tail(log)}")


def _tail(path: Path, lines: int = 8) -> str:
    if not path.is_file():
        return ""
    return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])


def stop_server(state_dir: Path, cluster_id: str) -> bool:
    """Stop the cluster's server (fast shutdown, then kill). False if it was not running."""
    info = server_info(Path(state_dir), cluster_id)
    if info is None:
        return False
    pids = [info.pid, *_children(info.pid)]
    with contextlib.suppress(SandboxPostgresError):  # a hung pg_ctl: we kill below
        run_binary([str(find_pg_bindir() / "pg_ctl"), "stop", "-D", info.data_dir, "-m", "fast",
                    "-w", "-t", "15", "-s"], timeout=25, as_server=True)
    if not _wait_gone(pids, 2.0):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pids, 10.0):
            raise SandboxPostgresError(f"Sandbox cluster {cluster_id} (pid {info.pid}) "
                                       "survived SIGKILL.")
    return True


def stop_all(state_dir: Path) -> list[str]:
    """Stop every server under ``state_dir``; the ids of those that were running.

    Works from postmaster.pid alone, so also after the process that started them died.
    One server that will not stop does not keep the others running.
    """
    stopped, failures = [], []
    for home in sorted((Path(state_dir) / "clusters").glob("*/")):
        if not ID_PATTERN.match(home.name):
            continue
        try:
            if stop_server(state_dir, home.name):
                stopped.append(home.name)
        except (SandboxPostgresError, OSError) as exc:
            failures.append(f"{home.name}: {exc}")
    if failures:
        raise SandboxPostgresError("Could not stop: " + "; ".join(failures))
    return stopped


def purge(state_dir: Path) -> list[str]:
    """Stop every server, then delete all clusters, backups and runtime dirs of ``state_dir``."""
    stopped = stop_all(state_dir)
    for home in sorted((Path(state_dir) / "clusters").glob("*/")):
        if ID_PATTERN.match(home.name):
            discard(Path(state_dir), home.name)
    shutil.rmtree(Path(state_dir) / "clusters", ignore_errors=True)
    shutil.rmtree(Path(state_dir) / "backups", ignore_errors=True)
    return stopped


def discard(state_dir: Path, cluster_id: str) -> None:
    """Stop and delete one cluster: its home and its runtime dir."""
    stop_server(state_dir, cluster_id)
    record = _record(state_dir, cluster_id)
    if record and record.get("runtime_dir"):
        shutil.rmtree(record["runtime_dir"], ignore_errors=True)
    shutil.rmtree(cluster_home(state_dir, cluster_id), ignore_errors=True)


def superuser_dsn(info: ServerInfo, dbname: str | None = None) -> str:
    """Sandbox-internal: the superuser over the unix socket (peer auth). Never show users."""
    import psycopg  # only where a real server is used: loading a world needs no driver

    return psycopg.conninfo.make_conninfo(host=info.socket_dir, port=info.port, user=SUPERUSER,
                                          dbname=dbname or info.dbname, connect_timeout=10)


def driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` is psycopg's (never true before the driver was imported, so asking
    does not import it)."""
    driver = sys.modules.get("psycopg")
    return driver is not None and isinstance(exc, driver.Error)


def connect_superuser(info: ServerInfo, dbname: str | None = None,
                      autocommit: bool = False) -> psycopg.Connection[Any]:
    """Sandbox-internal: a superuser connection to the server (see :func:`superuser_dsn`)."""
    import psycopg

    return psycopg.connect(superuser_dsn(info, dbname), autocommit=autocommit)
