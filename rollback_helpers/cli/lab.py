"""``rollback-runbook lab``: the runbook in JupyterLab, on a sandbox world by default.

    workspace   incidents/lab/<UTC ts>/      copies of the notebooks: the committed ones never
                                             get outputs, and each lab starts clean
    world       <workspace>/.sandbox/        a sandbox world (``--backend real``: none)
    kernels     inherit ROLLBACK_SANDBOX_DIR, the sandbox's GITHUB_TOKEN (never a real one),
                ROLLBACK_INCIDENTS_DIR (archives land in the repository's incidents/, drills
                in incidents/drills/) and ROLLBACK_LAB_ROOT (for links)
    server      JupyterLab on 127.0.0.1 with a random token (read from a 0600 file, so it is
                not on the command line), its log in <workspace>/.jupyter.log
    stop        Ctrl+C: SIGTERM to the server, which shuts its kernels down; then the lab
                leaves the sandbox (run.backends.leave_drill_world): its kernels' tunnels stop,
                and the servers too unless a headless drill still acts in the same world

The server is started here rather than through the command runner: the runner
is the runbook's seam to flyctl (captured output, allow-listed commands), while
this is the launcher's own long-lived child with its output in a log file.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import webbrowser
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import httpx

from rollback_helpers.domain.config import load_config
from rollback_helpers.errors import ConfigError, RollbackError
from rollback_helpers.records.notebook_io import parameterized, read_notebook, write_notebook
from rollback_helpers.run.archive import notebooks_dir

START_NOTEBOOK = "start_here.ipynb"
READY_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_notebooks(workspace: Path, *, backend: str, source: Path | None = None) -> list[Path]:
    """Clean copies of the runbook's notebooks; ``backend="real"`` is filled into each."""
    workspace.mkdir(parents=True, exist_ok=True)
    copies = []
    for original in sorted((source or notebooks_dir()).glob("*.ipynb")):
        nb = read_notebook(original)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        if backend != "sandbox":
            nb = parameterized(nb, {"backend": backend},
                               comment="Parameters set by rollback-runbook lab")
        write_notebook(nb, workspace / original.name)
        copies.append(workspace / original.name)
    return copies


NEWS_SETTINGS = ("@jupyterlab/apputils-extension", "notification.jupyterlab-settings")


def lab_settings(workspace: Path, base: Mapping[str, str]) -> Path:
    """The engineer's JupyterLab settings, without the news prompt (no network is needed)."""
    mine = Path(base.get("JUPYTERLAB_SETTINGS_DIR")
                or Path.home() / ".jupyter" / "lab" / "user-settings")
    settings = workspace / ".lab-settings"
    if mine.is_dir() and not settings.exists():
        shutil.copytree(mine, settings)
    news = settings.joinpath(*NEWS_SETTINGS)
    if not news.is_file():
        news.parent.mkdir(parents=True, exist_ok=True)
        news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return settings


def kernel_environment(base: Mapping[str, str], *, workspace: Path, incidents: str | Path,
                       sandbox_dir: Path | None, sandbox_token: str = "") -> dict[str, str]:
    """What the server and its kernels inherit."""
    env = dict(base)
    env.update(ROLLBACK_INCIDENTS_DIR=str(incidents), ROLLBACK_LAB_ROOT=str(workspace),
               JUPYTERLAB_WORKSPACES_DIR=str(workspace / ".lab-layout"),
               JUPYTERLAB_SETTINGS_DIR=str(lab_settings(workspace, base)),
               JUPYTER_TOKEN_FILE=str(workspace / ".jupyter-token"))
    env.pop("JUPYTER_TOKEN", None)
    config = Path("runbook.toml")
    if "ROLLBACK_RUNBOOK_CONFIG" not in env and config.is_file():
        env["ROLLBACK_RUNBOOK_CONFIG"] = str(config.resolve())  # kernels run in the workspace
    if sandbox_dir is not None:
        env["ROLLBACK_SANDBOX_DIR"] = str(sandbox_dir)
        env["GITHUB_TOKEN"] = sandbox_token  # a real token never goes near a drill
        env.pop("GH_TOKEN", None)
    return env


def lab_argv(workspace: Path, port: int) -> list[str]:
    argv = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={workspace}", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.expose_app_in_browser=True"]  # the gate's "Run the rest" runs a command
    if os.geteuid() == 0:  # containers and CI run as root; the server is on loopback only
        argv.append("--ServerApp.allow_root=True")
    return argv


@dataclass
class LabServer:
    """One JupyterLab server process on loopback, and how to stop it cleanly."""

    workspace: Path
    env: dict[str, str]
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str = START_NOTEBOOK) -> str:
        return f"{self.base_url}/lab/tree/{notebook}?token={self.token}"

    @property
    def log_path(self) -> Path:
        return self.workspace / ".jupyter.log"

    def start(self) -> None:
        self.port = self.port or free_port()
        token_file = Path(self.env["JUPYTER_TOKEN_FILE"])
        token_file.touch(mode=0o600)
        token_file.write_text(self.token)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                lab_argv(self.workspace, self.port), env=self.env, cwd=self.workspace,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # the terminal's Ctrl+C reaches us, not the server

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise LabFailed(f"JupyterLab exited during start-up:\n{self.log_tail()}",
                                    f"Read {self.log_path}.")
                try:
                    answer = http.get(f"{self.base_url}/api/status",
                                      headers={"Authorization": f"token {self.token}"})
                    if answer.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise LabFailed(f"JupyterLab did not answer on {self.base_url} within {timeout:.0f}s.",
                        f"Read {self.log_path}.")

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM (the server shuts its kernels down), then SIGKILL after ``grace`` seconds."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        Path(self.env["JUPYTER_TOKEN_FILE"]).unlink(missing_ok=True)


class LabFailed(RollbackError):
    """JupyterLab did not start (exit 1, with its log's tail)."""


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_lab(args: argparse.Namespace) -> int:
    """Prepare the workspace (and world), serve it until Ctrl+C, then stop everything."""
    from rollback_helpers.run.backends import create_drill_world, leave_drill_world

    incidents = lab_incidents(load_config().incidents_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    local = Path(incidents) if "://" not in incidents else Path("incidents")
    workspace = Path(args.workspace or local / "lab" / stamp).resolve()
    if workspace.exists() and any(workspace.glob("*.ipynb")):
        raise ConfigError(f"The workspace {workspace} already holds notebooks.",
                          "Choose another --workspace (or leave it out for a fresh one).")
    copy_notebooks(workspace, backend=args.backend)
    sandbox_dir, token, description = None, "", "real GitHub and Fly.io"
    if args.backend == "sandbox":
        sandbox_dir = workspace / ".sandbox"
        world = create_drill_world(args.scenario, sandbox_dir, speed=args.speed)
        token = world.token
        description = f"sandbox scenario {world.scenario!r} — {world.description.rstrip('.')}"
    server = LabServer(workspace, kernel_environment(os.environ, workspace=workspace,
                                                     incidents=incidents, sandbox_dir=sandbox_dir,
                                                     sandbox_token=token), port=args.port)
    # Explicit, because a background job's SIGINT may be inherited as ignored.
    previous = {sig: signal.signal(sig, _raise_interrupt)
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        server.wait_ready()
        _announce(server, description, incidents, sandbox_dir, args.backend)
        if not args.no_browser:
            webbrowser.open(server.url())
        assert server.process is not None
        code = server.process.wait()
        print(f"JupyterLab exited ({code}); its log: {server.log_path}", file=sys.stderr)
        return 0 if code == 0 else 1
    except KeyboardInterrupt:
        print("\nStopping JupyterLab" + (" and the sandbox…" if sandbox_dir else "…"), flush=True)
        return 0
    finally:
        server.stop()
        # a headless drill may still act in the workspace's world: leave it, not stop it
        if sandbox_dir is not None and (line := leave_drill_world(sandbox_dir)):
            print(line, flush=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("Stopped.", flush=True)


def lab_incidents(configured: str) -> str:
    """The store the walkthrough archives to (a local folder made absolute: kernels run in
    the workspace); checked writable before JupyterLab starts."""
    from rollback_helpers.records.store import open_store, parse_github_location

    if configured.startswith("github://"):  # checked by the kernel, through its own seam
        parse_github_location(configured)  # a malformed one is refused here
        return configured
    store = open_store(configured)  # a malformed URL is refused here
    store.check_writable()
    return configured if "://" in configured else str(Path(configured).resolve())


def _announce(server: LabServer, description: str, incidents: str, sandbox_dir: Path | None,
              backend: str) -> None:
    archives = f"{incidents.rstrip('/')}/drills" if backend == "sandbox" else incidents
    lines = [f"JupyterLab is running on {description}.",
             f"  Open:       {server.url()}",
             f"  Workspace:  {server.workspace}  (copies; the committed notebooks stay clean)",
             f"  Archives:   {archives}"]
    if sandbox_dir is not None:
        lines.append(f"  Sandbox:    {sandbox_dir}")
    lines.append("Press Ctrl+C to stop JupyterLab" + (" and the sandbox." if sandbox_dir else "."))
    print("\n".join(lines), flush=True)
