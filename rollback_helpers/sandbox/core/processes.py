"""Processes the sandbox starts (tunnels, database servers), recorded so none outlives a drill.

A process is known by its pid and its start time (:class:`ProcessId`), so that a pid the
kernel has since given to another process is never taken for it. Each tunnel's record
(``pids/<name>.pid``, JSON) names the tunnel and the process that opened it: a tunnel
serves only its opener, so once the opener is gone anyone may stop it.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

PID_DIR = "pids"
_SAME_START = 0.05  # seconds: start times are clock ticks (10 ms) after boot, computed alike


@dataclass(frozen=True)
class ProcessId:
    """A process as the world knows it: its pid and when it started (None: unknown)."""

    pid: int
    started: float | None = None

    @classmethod
    def of(cls, pid: int) -> ProcessId:
        """The process now running as ``pid`` (``started`` is None when there is none)."""
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return cls(pid)

    @classmethod
    def current(cls) -> ProcessId:
        return cls.of(os.getpid())

    def alive(self) -> bool:
        """Running, and the same process: not exited, not a zombie, not a recycled pid."""
        try:
            process = psutil.Process(self.pid)
            if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return False
            return self.same_as(ProcessId(self.pid, process.create_time()))
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True

    def same_as(self, other: ProcessId) -> bool:
        """The same process (an unknown start time matches any)."""
        if self.pid != other.pid:
            return False
        if self.started is None or other.started is None:
            return True
        return abs(self.started - other.started) < _SAME_START

    def as_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "started": self.started}

    @classmethod
    def from_json(cls, data: Any) -> ProcessId:
        """From :meth:`as_json`, or a bare pid (an older record); ValueError if neither."""
        if isinstance(data, dict):
            started = data.get("started")
            return cls(int(data["pid"]), None if started is None else float(started))
        return cls(int(data))


@dataclass(frozen=True)
class ProcessRecord:
    """One recorded background process: its record's name, itself, and who opened it."""

    name: str
    process: ProcessId
    opener: ProcessId | None  # None: not recorded (an older record)


def record_process(state_dir: Path, name: str, pid: int) -> None:
    """Record ``pid`` (started by this process) under ``name``, until it is stopped."""
    pid_dir = Path(state_dir) / PID_DIR
    pid_dir.mkdir(parents=True, exist_ok=True)
    record = {**ProcessId.of(pid).as_json(), "opener": ProcessId.current().as_json()}
    (pid_dir / f"{name}.pid").write_text(json.dumps(record))


def forget_process(state_dir: Path, name: str) -> None:
    (Path(state_dir) / PID_DIR / f"{name}.pid").unlink(missing_ok=True)


def recorded_processes(state_dir: Path) -> list[ProcessRecord | str]:
    """Every record; a record that cannot be read is given by its name alone."""
    pid_dir = Path(state_dir) / PID_DIR
    found: list[ProcessRecord | str] = []
    for pid_file in sorted(pid_dir.glob("*.pid")) if pid_dir.is_dir() else []:
        try:
            text = pid_file.read_text().strip()
            data = json.loads(text) if text.startswith("{") else text
            opener = data.get("opener") if isinstance(data, dict) else None
            found.append(ProcessRecord(pid_file.stem, ProcessId.from_json(data),
                                         None if opener is None else ProcessId.from_json(opener)))
        except (OSError, ValueError, KeyError, TypeError):
            found.append(pid_file.stem)
    return found


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
                if not ProcessId(pid).alive():
                    return
            time.sleep(0.02)


def stop_processes(state_dir: Path,
                   which: Callable[[ProcessRecord], bool] = lambda _: True) -> list[str]:
    """Stop the recorded processes ``which`` picks (and drop every unreadable record);
    the names of the records removed. A recorded pid now running another process is
    not signalled."""
    stopped: list[str] = []
    for record in recorded_processes(state_dir):
        if isinstance(record, ProcessRecord):
            if not which(record):
                continue
            if record.process.alive():
                terminate(record.process.pid)
        name = record if isinstance(record, str) else record.name
        forget_process(state_dir, name)
        stopped.append(name)
    return stopped
