"""The flyctl wrapper: every Fly.io command the runbook runs, parsed once into typed results.

:class:`Fly` checks each command against the allow-list in
:mod:`rollback_helpers.clients.fly_policy` *before* any process starts, runs it through
the injected :class:`~rollback_helpers.clients.commands.CommandRunner` and turns its
output into the frozen dataclasses of :mod:`rollback_helpers.clients.fly_types`
(re-exported here); nothing else in the runbook reads flyctl's text. JSON is
read leniently (unknown keys are ignored, flyctl adds them between versions); a
missing required key is a clear error. Failures name the command (secrets
masked), its exit code and stderr tail, and the next step.

``mpg status`` prints the cluster's password and URI: they are never kept,
returned, logged or echoed — :class:`ClusterStatus` holds only their status.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from rollback_helpers.clients.commands import BackgroundProcess, CommandResult, CommandRunner, describe
from rollback_helpers.clients.fly_policy import ALLOWED, DESTRUCTIVE, HUMAN_STEP, check_allowed
from rollback_helpers.clients.fly_types import (
    AppStatus,
    Backup,
    Cluster,
    ClusterStatus,
    Machine,
    MissingKey,
    Release,
    RestoreResult,
    as_list,
    parse_backup,
    parse_cluster,
    parse_machine,
    parse_release,
    require,
)
from rollback_helpers.errors import BadInput, CommandFailed, CommandTimeout, RestoreFailed
from rollback_helpers.secrets import Secret, remember

__all__ = ["ALLOWED", "DESTRUCTIVE", "HUMAN_STEP", "AppStatus", "Backup", "Cluster",
           "ClusterStatus", "Fly", "Machine", "Release", "RestoreResult", "Tunnel"]

_SAFE_ARG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_ENV_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NO_MACHINE = "No machine specified, using "
_PROXYING = re.compile(r"Proxying localhost:(?P<port>\d+) to remote (?P<remote>\S+)")
_CLUSTER_LINE = re.compile(r"^\s*Cluster (?P<key>ID|Name):\s*(?P<value>\S.*?)\s*$", re.MULTILINE)
_UNSET_STATUS = "Process exited with status 1"
GENERIC_NEXT = ("Read the error above and fix its cause (FLY_API_TOKEN, app name, cluster id), "
                "then re-run this step.")


class Tunnel:
    """A running ``flyctl mpg proxy``; a context manager that always stops it."""

    def __init__(self, process: BackgroundProcess, local_port: int, remote: str) -> None:
        self.process = process
        self.local_port = local_port
        self.remote = remote
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.process.stop()

    def __enter__(self) -> Tunnel:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Tunnel(localhost:{self.local_port} -> {self.remote})"


class Fly:
    """flyctl, behind the allow-list, with typed results."""

    def __init__(self, runner: CommandRunner, *, flyctl: str = "flyctl", timeout: float = 120.0,
                 env: Mapping[str, str] | None = None, app: str | None = None) -> None:
        self.runner = runner
        self.flyctl = flyctl
        self.app = app  # when set, every app-scoped command must name this app
        self.timeout = timeout
        self.env = dict(env) if env is not None else None

    # -- the seam ------------------------------------------------------------------
    def check_allowed(self, argv: Sequence[str]) -> None:
        """Raise CommandRefused unless the runbook may run this itself (binary optional)."""
        check_allowed(argv, flyctl=self.flyctl, app=self.app)

    def run(self, *args: str, timeout: float | None = None) -> CommandResult:
        """Run an allowed command; a non-zero exit raises CommandFailed."""
        result = self._run(args, timeout)
        if not result.ok:
            raise self._failure(result, GENERIC_NEXT)
        return result

    def _run(self, args: Sequence[str], timeout: float | None) -> CommandResult:
        argv = (self.flyctl, *args)
        self.check_allowed(argv)
        return self.runner.run(argv, timeout=self.timeout if timeout is None else timeout,
                               env=self.env)

    def _failure(self, result: CommandResult, next_step: str) -> CommandFailed:
        tail = result.stderr_tail()
        lines = tail.splitlines() or ["(no error output)"]
        # flyctl's message starts with "Error: " and may span lines ("no started VMs").
        headline = next((line for line in lines if line.startswith("Error: ")), lines[-1])
        return CommandFailed(f"`{describe(result.argv)}` failed with exit code "
                             f"{result.returncode}: {headline}", next_step,
                             returncode=result.returncode, stderr_tail=tail)

    def _unreadable(self, result: CommandResult, why: str) -> CommandFailed:
        return CommandFailed(
            f"`{describe(result.argv)}` printed output the runbook cannot read: {why}.",
            "Check `flyctl version` (the runbook expects v0.4.80 or later) and report the output "
            "format change; meanwhile do this step by hand.", returncode=result.returncode)

    def _json(self, result: CommandResult) -> Any:
        try:
            return json.loads(result.stdout)
        except ValueError:
            # `from None`: the decode error carries the whole document, which may hold a password.
            raise self._unreadable(result, "not JSON") from None

    def whoami(self) -> str:
        """``flyctl auth whoami --json``: the logged-in user's e-mail (a CommandFailed if none)."""
        result = self._run(("auth", "whoami", "--json"), None)
        if not result.ok:
            raise self._failure(result, "Run `flyctl auth login` (or set FLY_API_TOKEN), then "
                                        "re-run.")
        doc = self._json(result)
        if not isinstance(doc, dict) or not isinstance(doc.get("email"), str):
            raise self._unreadable(result, "expected {\"email\": …}")
        return str(doc["email"])

    # -- apps ------------------------------------------------------------------------
    def status(self, app: str) -> AppStatus:
        """``flyctl status -a APP --json``: the machines and what each one really runs."""
        result = self._run(("status", "-a", _arg(app, "app name"), "--json"), None)
        if not result.ok:
            raise self._failure(result, f"Check the app name {app!r} (`flyctl apps list`) and "
                                        "FLY_API_TOKEN, then re-run this step.")
        doc = self._json(result)
        if not isinstance(doc, dict):
            raise self._unreadable(result, "expected a JSON object")
        try:
            machines = tuple(parse_machine(m)
                             for m in require(doc, "Machines", list, none_ok=True))
            return AppStatus(app=str(doc.get("Name") or app), hostname=str(doc.get("Hostname", "")),
                             version=int(require(doc, "Version", int)), machines=machines)
        except MissingKey as exc:
            raise self._unreadable(result, str(exc)) from None

    def releases(self, app: str) -> list[Release]:
        """``flyctl releases -a APP --json``: newest first (flyctl returns at most 25)."""
        result = self._run(("releases", "-a", _arg(app, "app name"), "--json"), None)
        if not result.ok:
            raise self._failure(result, f"Check the app name {app!r} and FLY_API_TOKEN, then "
                                        "re-run this step.")
        doc = self._json(result)
        try:
            releases = [parse_release(r) for r in as_list(doc)]
        except MissingKey as exc:
            raise self._unreadable(result, str(exc)) from None
        return sorted(releases, key=lambda r: r.version, reverse=True)

    def read_secret_env(self, app: str, machine_id: str, var: str) -> Secret:
        """The value of ``var`` in a machine's environment, wrapped in a Secret at once."""
        if not _ENV_VAR.fullmatch(var):
            raise BadInput(f"{var!r} is not an environment variable name.",
                           "Give a name like DATABASE_URL.")
        args = ("ssh", "console", "-a", _arg(app, "app name"), "--machine",
                _arg(machine_id, "machine id"), "-q", "-C", f"printenv {var}")
        result = self._run(args, None)
        unset = CommandFailed(
            f"{var} is not set on {app} machine {machine_id}.",
            f"Check the app's secrets (`flyctl secrets list -a {app}`) and the Infisical sync; "
            "a missing variable is not something the runbook can fix.",
            returncode=result.returncode, stderr_tail=result.stderr_tail())
        if not result.ok:
            if _UNSET_STATUS in result.stderr:
                raise unset
            raise self._failure(result, f"Check that machine {machine_id} of {app} is started "
                                        f"(`flyctl status -a {app}`), then re-run this step.")
        lines = [line.strip() for line in result.stdout.splitlines()]
        values = [line for line in lines if line and not line.startswith(_NO_MACHINE)]
        if not values:
            raise unset
        return Secret(values[-1])

    # -- Managed Postgres ------------------------------------------------------------
    def mpg_status(self, cluster_id: str) -> ClusterStatus:
        """``flyctl mpg status ID --json``, without the credentials it prints."""
        result = self._run(("mpg", "status", _arg(cluster_id, "cluster id"), "--json"), None)
        if not result.ok:
            raise self._failure(result, _cluster_next(cluster_id))
        doc = self._json(result)
        if not isinstance(doc, dict):
            raise self._unreadable(result, "expected a JSON object")
        found = doc.get("credentials")
        creds: Mapping[str, Any] = found if isinstance(found, dict) else {}
        for key in ("password", "pgbouncer_uri"):
            if isinstance(creds.get(key), str):
                remember(creds[key])  # masked by redact() from now on, wherever it turns up
        try:
            # v1 and v2 both wrap the cluster in "data"; accept a bare cluster object too.
            cluster = parse_cluster(doc if "data" not in doc and "id" in doc
                               else require(doc, "data", dict))
        except MissingKey as exc:
            raise self._unreadable(result, str(exc)) from None
        return ClusterStatus(cluster, credentials_status=str(creds.get("status") or "unknown"))

    def mpg_list(self, org: str) -> list[Cluster]:
        """``flyctl mpg list --org ORG --json``; an empty org prints text, read as []."""
        result = self._run(("mpg", "list", "--org", _arg(org, "organization"), "--json"), None)
        if not result.ok:
            raise self._failure(result, f"Check the organization slug {org!r} (`flyctl orgs "
                                        "list`) and FLY_API_TOKEN, then re-run this step.")
        if result.stdout.lstrip().startswith("No "):
            return []
        try:
            return [parse_cluster(c) for c in as_list(self._json(result))]
        except MissingKey as exc:
            raise self._unreadable(result, str(exc)) from None

    def mpg_backups(self, cluster_id: str) -> list[Backup]:
        """``flyctl mpg backup list ID --json --all``; no backups prints text, read as []."""
        args = ("mpg", "backup", "list", _arg(cluster_id, "cluster id"), "--json", "--all")
        result = self._run(args, None)
        if not result.ok:
            raise self._failure(result, _cluster_next(cluster_id))
        if result.stdout.lstrip().startswith("No backups found"):
            return []
        try:
            return [parse_backup(b) for b in as_list(self._json(result))]
        except MissingKey as exc:
            raise self._unreadable(result, str(exc)) from None

    def mpg_restore(self, source_id: str, backup_id: str, name: str | None = None, *,
                    pitr_time: str = "") -> RestoreResult:
        """``flyctl mpg restore SRC --backup-id ID [-n NAME]`` (or ``--pitr-time RFC3339``
        instead of the backup, on a v2 cluster): always a NEW cluster."""
        args = ["mpg", "restore", _arg(source_id, "cluster id"),
                *(["--pitr-time", _arg(pitr_time, "point in time")] if pitr_time else
                  ["--backup-id", _arg(backup_id, "backup id")])]
        if name is not None:
            args += ["-n", _arg(name, "cluster name")]
        result = self._run(args, None)
        if not result.ok:
            raise self._failure(result, "No new cluster was reported. Check the backup id with "
                                        f"`flyctl mpg backup list {source_id} --json --all`, then "
                                        "re-run this step.")
        found = {m["key"]: m["value"] for m in _CLUSTER_LINE.finditer(result.stdout)}
        if "ID" not in found:
            raise CommandFailed(
                f"`{describe(result.argv)}` exited 0 but printed no 'Cluster ID:' line.",
                "A restore may have started anyway: look for a new cluster with `flyctl mpg list` "
                "before restoring again, so there are not two.", returncode=result.returncode)
        if found["ID"] == source_id:
            raise RestoreFailed(
                f"flyctl reported the source cluster {source_id} as the restore target.",
                "Never use the source as the target. Find the new cluster with `flyctl mpg list` "
                "and check it by hand before going on.")
        return RestoreResult(source_id, backup_id, found["ID"], found.get("Name", ""))

    def mpg_proxy(self, cluster_id: str, *, port: int = 0, ready_timeout: float = 30.0) -> Tunnel:
        """Start ``flyctl mpg proxy ID -p PORT`` and wait until it listens."""
        argv = (self.flyctl, "mpg", "proxy", _arg(cluster_id, "cluster id"), "-p", str(int(port)))
        self.check_allowed(argv)
        process = self.runner.start(argv, env=self.env)
        try:
            return self._await_proxy(process, cluster_id, ready_timeout)
        except BaseException:
            process.stop()
            raise

    def _await_proxy(self, process: BackgroundProcess, cluster_id: str,
                     ready_timeout: float) -> Tunnel:
        deadline = time.monotonic() + ready_timeout
        while (remaining := deadline - time.monotonic()) > 0:
            line = process.read_line(min(remaining, 0.5))
            if line is not None:
                found = _PROXYING.search(line)
                if found:
                    return Tunnel(process, int(found["port"]), found["remote"])
                continue
            code = process.poll()
            if code is not None:
                stderr = process.stderr_text().strip()
                last = stderr.splitlines()[-1] if stderr else "(no error output)"
                next_step = (f"The cluster is still initializing: wait until `flyctl mpg status "
                             f"{cluster_id} --json` shows ready, then re-run this step."
                             if "initializing" in stderr else _cluster_next(cluster_id))
                raise CommandFailed(
                    f"`{describe(process.argv)}` exited with code {code} before the tunnel was "
                    f"ready: {last}", next_step, returncode=code, stderr_tail=stderr)
        raise CommandTimeout(
            f"`{describe(process.argv)}` did not report 'Proxying localhost:…' within "
            f"{ready_timeout:.0f}s (stopped).",
            "Check the WireGuard agent (`flyctl agent restart`, `flyctl doctor`), then re-run.")


# -- parsing helpers ----------------------------------------------------------------------
def _arg(value: str, what: str) -> str:
    """A value that goes into argv: no spaces, and never something flyctl would read as a flag."""
    if not _SAFE_ARG.fullmatch(value or ""):
        raise BadInput(f"The {what} {value!r} is not valid (empty, starts with '-', or has "
                       "spaces or odd characters).", f"Give the {what} exactly as Fly shows it.")
    return value


def _cluster_next(cluster_id: str) -> str:
    return (f"Check the cluster id {cluster_id!r} against `flyctl mpg list --org <org>` and the "
            "cluster map (scripts/lib/mpg-clusters.sh), then re-run this step.")
