"""``FlyctlSandbox``: flyctl, emulated against the sandbox world.

A :class:`~rollback_helpers.clients.commands.CommandRunner` that answers the commands the
runbook runs with flyctl's exact stdout, stderr, exit codes and JSON shapes (the
fixtures in ``contracts/flyctl-samples``), built from ``world.state["fly"]``:
apps with machines (each naming an entry of ``fly.images``: digest, repository,
healthy), the app's release and secrets; MPG clusters in :mod:`.mpg`.

``mpg proxy`` (through :meth:`FlyctlSandbox.start`) runs a real TCP forwarder,
``python -m rollback_helpers.sandbox.postgres.tcp_proxy``, to the cluster's real server; its
pid is recorded so :func:`rollback_helpers.sandbox.shutdown` ends it if the runbook
does not. ``ssh console`` takes ``fly.ssh_latency`` virtual seconds.

Every call is logged (``world.log_call("flyctl", …)``) after due events are
applied. Destructive commands are refused here too — defence in depth behind
:mod:`rollback_helpers.clients.fly_policy` — logged ``mutating=True, refused=True`` and
answered ``Error: sandbox refuses destructive command …`` with exit 1.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rollback_helpers.clients.commands import BackgroundProcess, CommandResult, PopenProcess
from rollback_helpers.clock import parse_iso, utc_iso
from rollback_helpers.sandbox.core.latency import spent
from rollback_helpers.sandbox.core.world import World
from rollback_helpers.sandbox.fly.auth import AuthCommands
from rollback_helpers.sandbox.fly.common import (
    FLYCTL_COMMIT,
    FLYCTL_VERSION,
    FinishedProcess,
    Invocation,
    RecordedProcess,
    UnknownFlag,
    base36_id,
    error,
    go_json,
    go_map,
    logged_form,
    not_emulated,
    numeric_id,
    ok,
    parse_invocation,
    split_positionals,
    ulid_like,
)
from rollback_helpers.sandbox.fly.mpg import MpgCommands, ProxyPlan
from rollback_helpers.sandbox.fly.release import run_release_command as _registers_release  # noqa: F401

NO_APP_NAME = ("the config for your app is missing an app name, add an app field to the "
               "fly.toml file or specify with the -a flag")
RELEASES_USAGE = """Usage:
  flyctl releases [flags]

Flags:
  -a, --app string      Application name
  -c, --config string   Path to application configuration file
  -h, --help            help for releases
      --image           Display the Docker image reference of the release
  -j, --json            JSON output

Global Flags:
  -t, --access-token string   Fly API Access Token
      --debug                 Print additional logs and traces
      --verbose               Verbose output

"""
DESTRUCTIVE_VERBS = frozenset({
    "destroy", "delete", "remove", "rm", "detach", "attach", "deploy", "set", "unset", "import",
    "kill", "stop", "restart", "update", "scale", "suspend", "launch", "create", "clone", "move",
    "set-role", "cordon", "failover",
})
_TOP = {"managed-postgres": "mpg", "machines": "machine", "m": "machine", "app": "apps"}
_SUB = {"ls": "list", "backups": "backup"}
_APP = frozenset({"-a", "--app", "-c", "--config"})
_JSON = frozenset({"-j", "--json"})


@dataclass(frozen=True)
class Command:
    method: str
    value_flags: frozenset[str]
    bool_flags: frozenset[str]
    mutating: bool = False


COMMANDS: dict[tuple[str, ...], Command] = {
    ("version",): Command("_version", frozenset(), _JSON),
    ("auth", "whoami"): Command("_auth_whoami", frozenset(), _JSON),
    ("status",): Command("_status", _APP, _JSON | {"--all", "--deployment", "--watch"}),
    ("releases",): Command("_releases", _APP, _JSON | {"--image"}),
    ("machine", "list"): Command("_machine_list", _APP, _JSON | {"-q", "--quiet"}),
    ("ssh", "console"): Command("_ssh_console", _APP | {"-C", "--command", "--machine", "-r",
                                "--region", "-u", "--user", "-o", "--org", "-A", "--address",
                                "--container", "-g", "--process-group", "--group"},
                                frozenset({"-q", "--quiet", "-s", "--select", "--pty",
                                           "--no-container"})),  # as flyctl's ssh/console.go
    # -o/--org belongs to `mpg list` (and the `mpg` parent, not inherited): as flyctl
    ("mpg", "status"): Command("_mpg_status", frozenset(), _JSON),
    ("mpg", "list"): Command("_mpg_list", frozenset({"-o", "--org"}), _JSON | {"--deleted"}),
    ("mpg", "backup", "list"): Command("_mpg_backup_list", frozenset(), _JSON | {"--all"}),
    ("mpg", "restore"): Command("_mpg_restore", frozenset({"--backup-id", "--pitr-time", "-n",
                                "--name"}), frozenset(), mutating=True),
    ("mpg", "proxy"): Command("_mpg_proxy", frozenset({"-p", "--local-port", "-b",
                              "--bind-addr"}), frozenset()),
}
ALL_VALUE_FLAGS = frozenset().union(*(c.value_flags for c in COMMANDS.values()))


def canonical(words: Sequence[str]) -> tuple[str, ...]:
    """Command words with flyctl's aliases resolved."""
    out = [_TOP.get(w, w) if i == 0 else _SUB.get(w, w) if i < 3 else w
           for i, w in enumerate(words)]
    return tuple(out)


def is_destructive(path: Sequence[str]) -> bool:
    """The sandbox's own, independent judgement: a mutating verb among the command words."""
    return any(word in DESTRUCTIVE_VERBS for word in path[:3])


class FlyctlSandbox(MpgCommands, AuthCommands):
    """flyctl against a sandbox :class:`World`: the command seam of a drill."""

    def __init__(self, world: World) -> None:
        self.world = world
        # One call at a time: a runbook that polls from another thread must not interleave
        # two read-modify-save cycles of the world's state.
        self._lock = threading.RLock()

    # -- the CommandRunner protocol ------------------------------------------------------
    def run(self, argv: Sequence[str], *, timeout: float,
            env: Mapping[str, str] | None = None) -> CommandResult:
        with spent(self.world, "flyctl"):
            answer = self._answer(tuple(argv))
        if isinstance(answer, ProxyPlan):
            raise NotImplementedError(
                "`flyctl mpg proxy` blocks until stopped: use start(), not run()")
        return answer

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
              ) -> BackgroundProcess:
        with spent(self.world, "flyctl"):
            answer = self._answer(tuple(argv))
        if isinstance(answer, ProxyPlan):
            return self._start_proxy(tuple(argv), answer, env)
        return FinishedProcess.of(answer)

    def _start_proxy(self, argv: tuple[str, ...], plan: ProxyPlan,
                     env: Mapping[str, str] | None) -> BackgroundProcess:
        """A real forwarder (or one that fails before binding), as flyctl's proxy behaves."""
        command = [sys.executable, "-m", "rollback_helpers.sandbox.postgres.tcp_proxy",
                   "--target", f"127.0.0.1:{plan.target_port}", "--remote", plan.remote,
                   "-p", plan.local_port, "-b", plan.bind, "--world", str(self.world.state_dir)]
        if plan.fail:
            command += ["--fail", plan.fail]
        process = PopenProcess(command, {**os.environ, **(env or {})})
        return RecordedProcess(process, argv, self.world.state_dir,
                               f"mpg-proxy-{plan.cluster_id}-{process.pid}")

    # -- dispatch ------------------------------------------------------------------------------
    def _answer(self, argv: tuple[str, ...]) -> CommandResult | ProxyPlan:
        with self._lock, self.world.transaction():  # threads here, processes in the world
            return self._answer_locked(argv)

    def _answer_locked(self, argv: tuple[str, ...]) -> CommandResult | ProxyPlan:
        self.world.advance()
        words = canonical(split_positionals(argv, ALL_VALUE_FLAGS))
        if is_destructive(words):
            self._log(argv, mutating=True, refused=True)
            return error(argv, f"sandbox refuses destructive command `flyctl "
                               f"{logged_form(argv)}`: it is a human step for the checklist")
        path = next((p for p in sorted(COMMANDS, key=len, reverse=True)
                     if words[:len(p)] == p), None)
        spec = COMMANDS.get(path) if path else None
        self._log(argv, mutating=bool(spec and spec.mutating))
        try:
            if path is None or spec is None:
                return not_emulated(argv, " ".join(words[:2]) or "(no command)")
            inv = parse_invocation(argv, path, spec.value_flags, spec.bool_flags, words)
            handler: Callable[[Invocation], CommandResult | ProxyPlan] = getattr(
                self, spec.method)
            return handler(inv)
        except UnknownFlag as exc:
            return error(argv, f"unknown flag: {exc}")

    def _log(self, argv: Sequence[str], *, mutating: bool, refused: bool = False) -> None:
        detail = {"refused": True} if refused else {}
        self.world.log_call("flyctl", logged_form(argv), mutating=mutating, **detail)

    # -- apps ------------------------------------------------------------------------------
    def _app(self, inv: Invocation, wrap: str) -> dict[str, Any] | CommandResult:
        name = inv.flag("--app", "-a")
        if not name:
            return error(inv.argv, NO_APP_NAME)
        app: dict[str, Any] | None = self.world.state["fly"]["apps"].get(name)
        if app is None:
            return error(inv.argv, wrap.format(app=name) + f'Could not find App "{name}"')
        return app

    def _app_json(self, inv: Invocation, wrap: str, what: str) -> dict[str, Any] | CommandResult:
        """The app, for a command the sandbox answers only with ``--json``."""
        app = self._app(inv, wrap)
        if isinstance(app, CommandResult) or inv.has("--json", "-j"):
            return app
        return not_emulated(inv.argv, f"{what} without --json")

    def _version(self, inv: Invocation) -> CommandResult:
        return ok(inv.argv, f"flyctl v{FLYCTL_VERSION} linux/amd64 Commit: {FLYCTL_COMMIT} "
                            "BuildDate: 2026-08-21T09:12:44Z\n")

    def _status(self, inv: Invocation) -> CommandResult:
        app = self._app_json(inv, "failed to get app: ", "status")
        if isinstance(app, CommandResult):
            return app
        if inv.has("--watch"):
            return error(inv.argv, "--watch and --json are not supported together")
        name = inv.flag("--app", "-a")
        live = [m for m in app["machines"] if m.get("state") != "destroyed"]
        machines = [self._machine_json(name, app, m)
                    for m in sorted(live, key=lambda m: m["id"], reverse=True)]
        org = self.world.state["fly"].get("org", "renewa")
        return ok(inv.argv, go_json(go_map({
            "AppURL": f"https://{name}.fly.dev", "Deployed": True, "Hostname": f"{name}.fly.dev",
            "ID": name, "Machines": machines, "Name": name,
            "Organization": {"ID": self.world.state["fly"].get("org_id") or base36_id(
                             25, "org", org), "InternalNumericID":
                             str(numeric_id("org", org, digits=6)), "Name": "", "Slug": org,
                             "RawSlug": "", "PaidPlan": True},
            "PlatformVersion": "machines", "Status": "deployed", "Version": int(app["release"]),
        })))

    def _machine_list(self, inv: Invocation) -> CommandResult:
        app = self._app_json(inv, "", "machine list")
        if isinstance(app, CommandResult):
            return app
        name = inv.flag("--app", "-a")
        return ok(inv.argv, go_json([self._machine_json(name, app, m) for m in app["machines"]
                                     if m.get("state") != "destroyed"]))

    def _releases(self, inv: Invocation) -> CommandResult:
        if inv.args:  # cobra.NoArgs, before any preparer: usage on stdout
            return error(inv.argv, f'unknown command "{inv.args[0]}" for "flyctl releases"',
                         stdout=RELEASES_USAGE)
        app = self._app_json(inv, "failed retrieving app releases {app}: ", "releases")
        if isinstance(app, CommandResult):
            return app
        name = inv.flag("--app", "-a")
        current = int(app["release"])
        versions = range(current, max(0, current - 25), -1)
        return ok(inv.argv, go_json([self._release_json(name, app, v) for v in versions]))

    # -- ssh console -----------------------------------------------------------------------
    def _ssh_console(self, inv: Invocation) -> CommandResult:
        app = self._app(inv, "get app: ")
        if isinstance(app, CommandResult):
            return app
        name = inv.flag("--app", "-a")
        started = [m for m in app["machines"] if m.get("state") == "started"]
        if not started:
            return error(inv.argv, f"app {name} has no started VMs.\nIt may be unhealthy or not "
                                   "have been deployed yet.\nTry the following command to verify:"
                                   "\n\nfly status")
        region = inv.flag("--region", "-r")
        if region:
            started = [m for m in started if m.get("region") == region]
            if not started:
                return error(inv.argv, f"app {name} has no VMs in region {region}")
        wanted = inv.flag("--machine")
        chosen = next((m for m in started if m["id"] == wanted), None)
        if wanted and chosen is None:
            return error(inv.argv, f'--machine="{wanted}" not found/started')
        stdout = ""
        if chosen is None:
            chosen = started[0]
            if len(started) > 1:
                stdout = (f"No machine specified, using {chosen['id']} in region "
                          f"{chosen['region']}\n")
        stderr = "" if inv.has("-q", "--quiet") else f"Connecting to {chosen['private_ip']}...\n"
        command = inv.flag("--command", "-C")
        if not command:
            return not_emulated(inv.argv, "ssh console without -C (an interactive shell)")
        # The tunnel, the agent and the remote shell take time: the world moves on meanwhile.
        self.world.sleep(float(self.world.state["fly"].get("ssh_latency", 0)))
        return self._remote(inv, name, app, chosen, command, stdout, stderr)

    def _remote(self, inv: Invocation, name: str, app: dict[str, Any], machine: dict[str, Any],
                command: str, stdout: str, stderr: str) -> CommandResult:
        words = shlex.split(command)
        if not words or words[0] != "printenv":
            return error(inv.argv, "the sandbox's ssh console runs only `printenv`", stdout=stdout)
        env = self._machine_env(name, app, machine)
        if len(words) == 1:
            return ok(inv.argv, stdout + "".join(f"{k}={v}\n" for k, v in env.items()), stderr)
        values = [env[var] for var in words[1:] if var in env]
        stdout += "".join(f"{value}\n" for value in values)
        if len(values) != len(words) - 1:  # printenv exits 1; flyctl does not pass it through
            return CommandResult(inv.argv, 1, stdout,
                                 stderr + "Error: ssh shell: Process exited with status 1\n")
        return ok(inv.argv, stdout, stderr)

    def _machine_env(self, name: str, app: dict[str, Any], machine: dict[str, Any]
                     ) -> dict[str, str]:
        region = machine.get("region", "fra")
        env = {"FLY_APP_NAME": name, "FLY_MACHINE_ID": machine["id"], "FLY_PROCESS_GROUP": "app",
               "FLY_PRIVATE_IP": machine["private_ip"], "FLY_REGION": region, "PORT": "8080",
               "PRIMARY_REGION": region}
        env.update({str(k): str(v) for k, v in app.get("secrets", {}).items()})
        return env

    # -- JSON shapes -------------------------------------------------------------------------
    def _deployment_tag(self, name: str, image_name: str) -> str:
        return f"deployment-{ulid_like('deployment', name, image_name)}"

    def _machine_json(self, name: str, app: dict[str, Any], m: dict[str, Any]) -> dict[str, Any]:
        image = self.world.state["fly"]["images"][m["image"]]
        registry, _, repository = str(image["repository"]).partition("/")
        tag = self._deployment_tag(name, m["image"])
        release = int(m.get("release", app["release"]))
        updated = parse_iso(m["updated_at"])
        override = app.get("healthy_override")
        healthy = bool(image.get("healthy", True)) and override in (None, 200)
        region = m.get("region", "fra")
        return {
            "id": m["id"], "name": m["name"], "state": m["state"], "region": region,
            "image_ref": {"registry": registry, "repository": repository, "tag": tag,
                          "digest": image["digest"]},
            "instance_id": ulid_like("instance", m["id"], m["image"]),
            "private_ip": m["private_ip"], "created_at": m["created_at"],
            "updated_at": m["updated_at"],
            "config": {
                "env": go_map({"FLY_PROCESS_GROUP": "app", "PORT": "8080",
                               "PRIMARY_REGION": region}),
                "init": {},
                "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024},
                "metadata": go_map({"fly_flyctl_version": FLYCTL_VERSION,
                                    "fly_platform_version": "v2", "fly_process_group": "app",
                                    "fly_release_id": base36_id(25, "release", name, release),
                                    "fly_release_version": str(release)}),
                "services": [_service_json()],
                "image": f"registry.fly.io/{name}:{tag}",
                "restart": {"policy": "on-failure", "max_retries": 10},
            },
            "events": [
                {"type": "start", "status": "started", "source": "flyd",
                 "timestamp": int(updated * 1000) - 2000},
                {"type": "update", "status": "replacing", "source": "user",
                 "timestamp": int(updated * 1000) - 12000},
            ],
            "checks": [{
                "name": "servicecheck-00-http-8080", "status": "passing" if healthy else "critical",
                "output": '{"status":"ok"}' if healthy else
                f"dial tcp [{m['private_ip']}]:8080: connect: connection refused",
                "updated_at": utc_iso(updated + 16)}],
            "host_status": "ok",
            "cordoned": False,
        }

    def _release_json(self, name: str, app: dict[str, Any], version: int) -> dict[str, Any]:
        current = int(app["release"])
        running = next((m["image"] for m in app["machines"] if m.get("state") == "started"),
                       app["machines"][0]["image"] if app["machines"] else "")
        image_name = running if version == current else f"release-{version}"
        newest = max((parse_iso(m["updated_at"]) for m in app["machines"]), default=self.world.now)
        org = self.world.state["fly"].get("org", "renewa")
        return {
            "ID": base36_id(25, "release", name, version), "Version": version, "Stable": True,
            "InProgress": False, "Reason": "release", "Description": "Release",
            "Status": "complete", "DeploymentStrategy": "", "Metadata": None,
            "User": {"ID": base36_id(13, "user", org), "Name": f"{org.title()} Deploy Bot",
                     "Email": f"deploy@{org}.example", "EnablePaidHobby": False},
            "EvaluationID": "",
            "CreatedAt": utc_iso(newest - 100 - (current - version) * 86400),
            "ImageRef": f"registry.fly.io/{name}:{self._deployment_tag(name, image_name)}",
        }


def _service_json() -> dict[str, Any]:
    return {
        "protocol": "tcp", "internal_port": 8080, "autostop": True, "autostart": True,
        "min_machines_running": 0,
        "ports": [{"port": 80, "handlers": ["http"], "force_https": True},
                  {"port": 443, "handlers": ["http", "tls"]}],
        "checks": [{"type": "http", "interval": "30s", "timeout": "5s", "grace_period": "10s",
                    "method": "GET", "path": "/health"}],
        "force_instance_key": None,
    }
