"""Who a headless run's private working copy belongs to, written beside it.

A headless run executes its notebook into a private folder of the user's state folder
(``<state>/rollback-run-XXXX/<record name>.ipynb``, :mod:`rollback_helpers.records.state_dir`:
it survives a reboot and does not depend on ``$TMPDIR``) and stores it in the records
store when it ends. ``owner.json`` in that folder says which process the run
is (its pid and its start time, so a recycled pid is not taken for it) and
where its record was to go, so a later run can tell a folder whose process was
killed outright (SIGKILL, out of memory, the machine died) and archive it
(:mod:`rollback_helpers.run.recover`). It holds no secrets: the command line
is redacted before it is written.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from rollback_helpers.records.state_dir import private_file, private_folder, write_private
from rollback_helpers.secrets import redact

OWNER_FILE = "owner.json"
WORKING_PREFIX = "rollback-run-"  # <state>/rollback-run-XXXX/: a headless run's working copy
SAME_START = 0.05  # seconds: one process's start time, as read twice


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (psutil's create time), or None if it is gone."""
    try:
        process = psutil.Process(pid)
        if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return None
        return float(process.create_time())
    except psutil.Error:
        return None


@dataclass(frozen=True)
class RunOwner:
    """The process that runs a headless run, and where that run's record goes."""

    pid: int
    process_started: float     # psutil's create time of ``pid`` (tells a recycled pid apart)
    run_id: str
    path: str
    env: str
    dry_run: bool
    backend: str
    store: str                 # the records store the run writes to
    name: str                  # the record's name in it
    argv: list[str]            # the command's arguments, redacted (how to resume)
    started_at: str            # UTC, ISO 8601, on the run's clock (a drill's: its world's)
    sandbox_dir: str | None = None
    keep_sandbox: bool = True  # False: a drill's temporary world, removed when the drill ends
    cwd: str = ""              # where the run started (its runbook.toml)
    config_file: str = ""      # the configuration file it read, if any

    @classmethod
    def this_process(cls, **run: Any) -> RunOwner:
        """This process as the owner of a run (``run``: the other fields; argv is redacted;
        ``started_at`` defaults to now on the real clock)."""
        pid = os.getpid()
        started_at = run.pop("started_at", None) or datetime.now(UTC).isoformat(timespec="seconds")
        return cls(pid=pid, process_started=process_start(pid) or 0.0, started_at=started_at,
                   **{**run, "argv": [redact(str(a)) for a in run.get("argv", [])]})

    @property
    def alive(self) -> bool:
        """True while the process that wrote this runs (the same pid, started at the same time)."""
        started = process_start(self.pid)
        return started is not None and abs(started - self.process_started) < SAME_START

    @property
    def command(self) -> list[str]:
        """The command line to run again to resume the run."""
        return ["rollback-runbook", *self.argv]

    def write(self, folder: Path) -> Path:
        """Write ``owner.json`` into ``folder`` at once (a reader never sees half of it)."""
        return write_private(folder / OWNER_FILE, json.dumps(asdict(self), indent=1) + "\n")


def read_owner(folder: Path) -> RunOwner | None:
    """The owner written into ``folder``; None if there is none or it cannot be read."""
    try:
        data = json.loads((folder / OWNER_FILE).read_text(encoding="utf-8"))
        known = {f.name for f in fields(RunOwner)}
        return RunOwner(**{k: v for k, v in data.items() if k in known})
    except (OSError, ValueError, TypeError, AttributeError):
        return None


@contextmanager
def working_copy(name: str, owner: RunOwner | None = None) -> Iterator[Path]:
    """A private path for papermill's output notebook (0600, in a 0700 folder of the user's
    state folder), removed when the block ends.

    ``owner`` is written beside it (``owner.json``), so that if this process is killed
    outright, a later run finds the folder and archives the notebook
    (:mod:`rollback_helpers.run.recover`), whatever ``$TMPDIR`` it has."""
    folder = private_folder(WORKING_PREFIX)
    try:
        if owner is not None:
            owner.write(folder)
        yield private_file(folder / name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
