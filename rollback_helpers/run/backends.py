"""The two seams, wired either to the real world or to the embedded sandbox.

A notebook asks for ``open_backends("real")`` or ``open_backends("sandbox", …)``
and gets the same four things either way: an ``httpx.Client``, a command runner,
a clock and the GitHub token (from the kernel's environment, never a parameter).

This is the one door to the real world: every real backend, GitHub token lookup
and ``httpx.Client`` of the package is built here (the lab's loopback client to its
own JupyterLab aside). The records commands get their GitHub clients from
:func:`github_factory` and the notifications their client from :func:`http_client`,
so a ``github://`` store finds its token the documented way (``GITHUB_TOKEN``,
``GH_TOKEN``, then ``gh auth token``).

This is the one place above the sandbox that knows it exists: the command line
creates, leaves and stops drill worlds through :func:`create_drill_world`,
:func:`leave_drill_world` and :func:`stop_drill_world` rather than reaching into
``rollback_helpers.sandbox``. Every process that acts in a world registers itself in
it (creating it or opening its seams), so that one process ending stops only what no
other live process uses (``rollback_helpers/sandbox/occupants.py``).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import httpx

from rollback_helpers.clients.commands import CommandRunner, SubprocessRunner
from rollback_helpers.clients.fly import Fly
from rollback_helpers.clients.github import GitHubClient
from rollback_helpers.clients.github_token import TOKEN_VARS, find_github_token
from rollback_helpers.clock import Clock, RealClock, lane_now, set_lane
from rollback_helpers.domain.config import ENVIRONMENTS, RunbookConfig
from rollback_helpers.errors import ConfigError, GitHubAuthError
from rollback_helpers.records.store import GitHubFactory
from rollback_helpers.secrets import Secret, token_from_env

if TYPE_CHECKING:
    from rollback_helpers.clients.metrics import MetricsClient
    from rollback_helpers.sandbox.core.world import World

BackendName = Literal["sandbox", "real"]
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)
SANDBOX_FLY_TOKEN = "fm2_sandbox_metrics"  # the sandbox's Fly token: never a real one


class WorldClock:
    """The sandbox world's own clock: sleeping moves the world forward. A thread whose work
    overlaps with another's reads and moves its own lane in the world (``rollback_helpers.clock``)."""

    def __init__(self, world: World) -> None:
        self._world = world
        self.lane_key = world.lane_key

    def now(self) -> float:
        lane = lane_now(self.lane_key)
        return self._world.now if lane is None else lane

    def sleep(self, seconds: float) -> None:
        lane = lane_now(self.lane_key)
        if lane is None or seconds <= 0:
            self._world.sleep(seconds)
            return
        self._world.sleep(lane + seconds - self._world.now)  # the world reaches this lane's end
        set_lane(self.lane_key, lane + seconds)


@dataclass(frozen=True)
class DrillWorld:
    """A sandbox world made for a drill or a walkthrough, as the command line needs it."""

    directory: Path
    description: str   # the scenario's first line
    token: str         # the sandbox's own GitHub token (never a real one)
    repo: str = ""     # the repository the world's GitHub holds
    reused: bool = False  # an existing world in ``directory`` (another drill's, or this one's)
    scenario: str = ""    # the scenario the world was built from (a reused one's own)
    situations: Mapping[str, str] = field(default_factory=dict)  # env → what its app runs

    def now(self) -> datetime:
        """The world's time now: what a drill's record is told in."""
        return datetime.fromtimestamp(record_clock(self.directory).now(), UTC)

    def header(self, path: str, env: str) -> str:
        """The drill's first line, true of the environment drilled: the scenario's description
        when it is about ``env`` (or no environment), else what ``env`` runs in this world."""
        head = f"Drill: {path} on {env}, scenario {self.scenario!r}"
        named = [e for e in ENVIRONMENTS if re.search(rf"\b{e}\b", self.description, re.I)]
        if not named or env in named:
            return f"{head} — {self.description}"
        what = self.situations.get(env) or "this scenario has no app there"
        return f"{head} (written for {' and '.join(named)}) — on {env}: {what}."


def check_scenario(scenario: str) -> None:
    """The scenario (a name or a ``.toml`` path) read and checked: ConfigError (exit 2) if bad."""
    from rollback_helpers.sandbox.scenarios import load_scenario

    load_scenario(scenario)


def create_drill_world(scenario: str, directory: str | Path, *, speed: float,
                       reuse: bool = False, latency: Mapping[str, float] | None = None,
                       teammate: bool = False) -> DrillWorld:
    """Build a fresh sandbox world from a scenario (a name or a ``.toml`` path) in ``directory``.

    ``reuse``: if ``directory`` already holds a world (a drill re-run after a crash,
    or a second operator's drill started at the same time), act in that one. ``latency``:
    seconds per call of some seams (``github``, ``flyctl``, ``health``, ``metrics``), over the
    scenario's, for a world built here (a reused world keeps its own). This process is
    registered in the world first: end with :func:`leave_drill_world`.
    """
    from rollback_helpers.sandbox import situations
    from rollback_helpers.sandbox.occupants import join
    from rollback_helpers.sandbox.scenarios import create_world, open_world

    join(directory)
    if reuse:
        world, created = open_world(scenario, Path(directory), speed=speed, latency=latency)
    else:
        world, created = create_world(scenario, Path(directory), speed=speed,
                                      latency=latency), True
    if teammate:  # a production drill's second person: a sandbox teammate approves
        from rollback_helpers.sandbox.github.team import add_teammate

        add_teammate(world)
    lines = str(world.state.get("description", "")).strip().splitlines() or [scenario]
    return DrillWorld(world.state_dir, lines[0], str(world.state["github"]["token"]),
                      str(world.state["github"]["repo"]), reused=not created,
                      scenario=str(world.state.get("scenario") or scenario),
                      situations=situations(world))


def leave_drill_world(directory: str | Path) -> str:
    """This process is done with the (shared) world in ``directory``: stop its own tunnels
    and any whose opener has gone; stop the servers only if no other live process acts in
    the world (the last one out). Returns one line for the operator ("" if nothing ran)."""
    from rollback_helpers.sandbox.occupants import leave

    left = leave(directory)
    if left.last_out:
        stopped = ", ".join(left.stopped)
        return f"Sandbox world {directory}: the last process out; stopped {stopped}." if stopped \
            else ""
    count = len(left.others)
    who = "1 other process" if count == 1 else f"{count} other processes"
    return (f"Sandbox world {directory}: left running for {who} acting in it (pid "
            f"{', '.join(map(str, left.others))}); the last one to end stops its servers.")


TEMP_WORLD_PREFIXES = ("rollback-drill-", "rollback-check-")  # worlds a command made for itself


def sweep_abandoned_worlds(temp: str | Path | None = None, *,
                           spare: frozenset[Path] = frozenset()) -> list[str]:
    """Remove the temporary worlds whose every process died without leaving (a drill killed
    outright, SIGKILL or a machine that died): their servers are stopped and their data and
    files deleted. ``spare``: worlds a killed run's record still needs (its recovery finishes
    the record comment there). One line per world, for the operator."""
    from rollback_helpers.sandbox.occupants import abandoned

    lines = []
    for directory in sorted(Path(temp or tempfile.gettempdir()).glob("rollback-*-*")):
        try:
            if directory in spare or not (directory.name.startswith(TEMP_WORLD_PREFIXES)
                                          and abandoned(directory)):
                continue
        except OSError:  # another user's, or half gone: not ours to judge
            continue
        discard_drill_world(directory)
        shutil.rmtree(directory, ignore_errors=True)
        lines.append(f"Removed the sandbox world {directory}, left behind by a drill that was "
                     "killed (its servers stopped).")
    return lines


def stop_drill_world(directory: str | Path) -> None:
    """Stop every process the sandbox started for this world (servers, tunnels), whoever
    uses them: a full shutdown. Idempotent."""
    from rollback_helpers.sandbox import shutdown

    shutdown(directory)


def discard_drill_world(directory: str | Path, *, keep_files: bool = False) -> None:
    """Stop the world's processes and, unless kept, delete its servers' data wherever it lives
    (a server's data may sit in its own directory under /tmp, outside ``directory``)."""
    from rollback_helpers import sandbox

    if keep_files:
        stop_drill_world(directory)
    else:
        sandbox.discard(directory)


def drill_world_exists(directory: str | Path) -> bool:
    """True when ``directory`` still holds a sandbox world (its GitHub, its apps)."""
    from rollback_helpers.sandbox.core.world import STATE_FILE

    return (Path(directory) / STATE_FILE).is_file()


def record_clock(sandbox_dir: str | Path | None) -> Clock:
    """The clock a run's record is told in: a drill's, its world's virtual clock (one clock
    for the whole record: its name, start, steps, decisions, timeline); else the real one."""
    if sandbox_dir and drill_world_exists(sandbox_dir):
        from rollback_helpers.sandbox.core.world import StoredClock

        return StoredClock(sandbox_dir)
    return RealClock()


def sandbox_scenarios() -> dict[str, str]:
    """The shipped sandbox scenarios: name → one-line description."""
    from rollback_helpers.sandbox.scenarios import list_scenarios

    return list_scenarios()


def check_real_prerequisites(cfg: RunbookConfig,
                             environ: Mapping[str, str] | None = None) -> None:
    """Before a real run starts a kernel or writes a record: a GitHub token is found and
    flyctl is on PATH. The same errors the run's own preflight would raise, archived nowhere."""
    backends = open_backends("real", environ=environ, cfg=cfg)
    try:
        backends.github(cfg)  # builds the client only: nothing is sent
        backends.fly(cfg)
    finally:
        backends.close()


@dataclass
class Backends:
    name: BackendName
    http: httpx.Client
    runner: CommandRunner
    clock: Clock
    github_token: Secret | None
    sandbox_dir: Path | None = None
    token_source: str = ""  # GITHUB_TOKEN, GH_TOKEN, gh auth token, or the sandbox's: safe to show

    def github(self, cfg: RunbookConfig) -> GitHubClient:
        if self.github_token is None:
            raise GitHubAuthError(
                f"No GitHub token found. Neither {' nor '.join(TOKEN_VARS)} is set, and `gh auth token` "
                "gave none (or `gh` is not on PATH).",
                "Run `gh auth login`, or export GITHUB_TOKEN in the shell that starts the runbook, "
                "then re-run. Never pass a token as a notebook parameter.")
        return GitHubClient(self.http, cfg.github_repo, self.github_token, clock=self.clock,
                            api_url=cfg.github_api_url)

    def fly(self, cfg: RunbookConfig, app: str | None = None) -> Fly:
        """flyctl, demanded only here: what needs only GitHub works without it. With ``app``,
        a command for any other app is refused before it starts."""
        if self.name == "real" and shutil.which(cfg.flyctl) is None:
            raise ConfigError(f"`{cfg.flyctl}` is not on PATH; the real backend needs it.",
                              "Install flyctl and run `flyctl auth login`, or practise on the "
                              "sandbox: `rollback-runbook drill`.")
        return Fly(self.runner, flyctl=cfg.flyctl, timeout=cfg.command_timeout, app=app)

    def metrics(self, cfg: RunbookConfig, env: str,
                environ: Mapping[str, str] | None = None) -> MetricsClient:
        """``env``'s metrics over this backend's HTTP seam: its configured URL, else Fly's for
        the org. Fly's endpoint gets the real backend's Fly token (``FLY_API_TOKEN``, else
        ``flyctl auth token``) or the sandbox's own; a Fly token never goes to another URL.
        Failures to read come back as values, never raised."""
        from rollback_helpers.clients.metrics import (
            MetricsClient,
            find_fly_token,
            is_fly_endpoint,
            metrics_base_url,
        )

        settings = cfg.env(env).metrics
        base = metrics_base_url(settings.url, cfg.fly_org)
        token = None
        if self.name != "real":
            token = Secret(SANDBOX_FLY_TOKEN)
        elif is_fly_endpoint(base):
            found = find_fly_token(os.environ if environ is None else environ, self.runner,
                                   flyctl=cfg.flyctl)
            token = found.secret if found else None
        return MetricsClient(self.http, base, token, budget=settings.timeout)

    def close(self) -> None:
        self.http.close()


def open_backends(backend: str, *, scenario: str = "default", sandbox_dir: str | None = None,
                  environ: Mapping[str, str] | None = None,
                  cfg: RunbookConfig | None = None) -> Backends:
    """The seams for ``backend``. ``cfg`` is accepted for callers; flyctl is checked lazily."""
    environ = os.environ if environ is None else environ
    token = token_from_env(dict(environ), *TOKEN_VARS)
    if backend == "real":
        runner = SubprocessRunner(flyctl=cfg.flyctl if cfg else "flyctl")
        # The environment, else `gh auth token`: the one other program the runbook may start.
        found = find_github_token(environ, SubprocessRunner(allowed_programs=("gh",)))
        return Backends("real", httpx.Client(timeout=30.0), runner, RealClock(),
                        found.secret if found else None,
                        token_source=found.source if found else "")
    if backend == "sandbox":
        return _sandbox_backends(scenario, sandbox_dir, token)
    raise ConfigError(f"Unknown backend {backend!r}.", f"Use one of: {', '.join(BACKENDS)}.")


def _remove_world(directory: str) -> None:
    discard_drill_world(directory)
    shutil.rmtree(directory, ignore_errors=True)


def _sandbox_backends(scenario: str, sandbox_dir: str | None, token: Secret | None) -> Backends:
    from rollback_helpers.sandbox.fly.flyctl import FlyctlSandbox
    from rollback_helpers.sandbox.http import sandbox_transport
    from rollback_helpers.sandbox.occupants import join
    from rollback_helpers.sandbox.scenarios import open_world

    if sandbox_dir:  # a world others may share: this process acts in it from now on
        join(sandbox_dir)
        world, _ = open_world(scenario, sandbox_dir)
    else:  # a world of this kernel's own: gone when the kernel exits
        temporary = tempfile.mkdtemp(prefix="rollback-sandbox-")
        atexit.register(_remove_world, temporary)
        world, _ = open_world(scenario, temporary)
    sandbox_token = world.state["github"]["token"]
    if token is None or not token.reveal().startswith("ghs_sandbox"):
        token = Secret(sandbox_token)  # a real token never goes to the sandbox
    http = httpx.Client(transport=sandbox_transport(world), timeout=30.0)
    return Backends("sandbox", http, FlyctlSandbox(world), WorldClock(world), token,
                    sandbox_dir=world.state_dir, token_source="the sandbox's token")


def local_runner() -> CommandRunner:
    """A command runner on this machine for a local question (``init``'s `git remote`)."""
    return SubprocessRunner()


def http_client(*, timeout: float = 30.0, follow_redirects: bool = False) -> httpx.Client:
    """A plain client to the real network (the notifications' webhooks)."""
    return httpx.Client(timeout=timeout, follow_redirects=follow_redirects)


def github_factory(cfg: RunbookConfig, backends: Backends | None = None, *,
                   sandbox_dir: str | None = None,
                   environ: Mapping[str, str] | None = None) -> GitHubFactory:
    """A GitHub client for any repository, through ``backends``' seam or, opened on the
    first call, the sandbox world in ``sandbox_dir`` or else the real backend (its token:
    GITHUB_TOKEN, GH_TOKEN, then ``gh auth token``)."""
    opened: list[Backends] = [backends] if backends is not None else []

    def client(repo: str) -> GitHubClient:
        if not opened:
            opened.append(open_backends("sandbox", sandbox_dir=sandbox_dir, cfg=cfg)
                          if sandbox_dir else open_backends("real", cfg=cfg, environ=environ))
        seam = opened[0]
        seam.github(cfg)  # no token: a GitHubAuthError that says how to set one
        return GitHubClient(seam.http, repo, seam.github_token, clock=seam.clock,
                            api_url=cfg.github_api_url)

    return client
