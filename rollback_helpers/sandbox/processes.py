"""Processes the sandbox starts (tunnels, database servers), recorded so none outlives a drill."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PID_DIR = "pids"


def record_process(state_dir: Path, name: str, pid: int) -> None:
    pid_dir = Path(state_dir) / PID_DIR
    pid_dir.mkdir(parents=True, exist_ok=True)
    (pid_dir / f"{name}.pid").write_text(str(pid))


def forget_process(state_dir: Path, name: str) -> None:
    (Path(state_dir) / PID_DIR / f"{name}.pid").unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate(pid: int, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:
                if not _alive(pid):
                    return
            time.sleep(0.02)


def stop_recorded_processes(state_dir: Path) -> list[str]:
    """Stop the database servers and every recorded process of this world."""
    stopped: list[str] = []
    if (Path(state_dir) / "clusters").is_dir():
        from rollback_helpers.sandbox.postgres import stop_all

        stopped += stop_all(Path(state_dir))
    pid_dir = Path(state_dir) / PID_DIR
    for pid_file in sorted(pid_dir.glob("*.pid")) if pid_dir.is_dir() else []:
        with contextlib.suppress(ValueError):
            terminate(int(pid_file.read_text().strip()))
        pid_file.unlink(missing_ok=True)
        stopped.append(pid_file.stem)
    return stopped
