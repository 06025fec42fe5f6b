"""Who acts in a sandbox world, so that a process ending stops only what nobody else uses.

Several processes may share one world: two drills with the same ``--sandbox-dir``, or
``rollback-runbook lab``'s workspace world and a headless drill. Each one registers
itself (:func:`join`) as ``occupants/<pid>-<start>.json``: its pid and its start time,
so that a pid since given to another process is not taken for it. When it is done,
:func:`leave`:

- stops its own tunnels (opened by it or by a process below it, such as its notebook
  kernel) and every tunnel whose opener has gone (a tunnel serves only its opener);
- stops the database servers and every remaining tunnel only when no other live
  occupant remains: the last one out turns the lights off. A crashed occupant does not
  keep the servers up: a dead pid (or one now running another process) does not count,
  and its registration is removed.

Joining and leaving hold the world's lock (:func:`~.core.world.world_lock`), so two
processes ending at the same moment cannot both leave the servers running, and a
newcomer never registers half-way through the last one's shutdown (its servers start
again on demand). :func:`rollback_helpers.sandbox.shutdown` still stops everything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import psutil

from rollback_helpers.sandbox.core.processes import (
    ProcessId,
    ProcessRecord,
    stop_processes,
)
from rollback_helpers.sandbox.core.world import world_lock

OCCUPANT_DIR = "occupants"


@dataclass(frozen=True)
class Departure:
    """What leaving did: the records and servers stopped, and who still acts in the world."""

    stopped: tuple[str, ...]
    others: tuple[int, ...]  # the live occupants that remain (pids; a drill, not its kernel)

    @property
    def last_out(self) -> bool:
        return not self.others


def _path(state_dir: Path, who: ProcessId) -> Path:
    started = "unknown" if who.started is None else f"{who.started:.2f}"
    return Path(state_dir) / OCCUPANT_DIR / f"{who.pid}-{started}.json"


def join(state_dir: str | os.PathLike[str], who: ProcessId | None = None) -> None:
    """Register ``who`` (this process by default) as acting in the world in ``state_dir``."""
    who = who or ProcessId.current()
    with world_lock(Path(state_dir)):
        path = _path(Path(state_dir), who)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(who.as_json()))


def occupants(state_dir: str | os.PathLike[str]) -> list[ProcessId]:
    """The live occupants, oldest registration first; dead ones' registrations are removed."""
    folder = Path(state_dir) / OCCUPANT_DIR
    live: list[ProcessId] = []
    for path in sorted(folder.glob("*.json"), key=_mtime) if folder.is_dir() else []:
        try:
            who = ProcessId.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            who = None
        if who is not None and who.alive():
            live.append(who)
        else:
            path.unlink(missing_ok=True)
    return live


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def leave(state_dir: str | os.PathLike[str], who: ProcessId | None = None) -> Departure:
    """Unregister ``who`` (this process by default); stop its tunnels and the orphaned ones,
    and, if no other live occupant remains, the servers and every tunnel."""
    who = who or ProcessId.current()
    directory = Path(state_dir)
    if not directory.is_dir():
        return Departure((), ())
    with world_lock(directory):
        _path(directory, who).unlink(missing_ok=True)
        family = [who, *_below(who)]
        others = _topmost([o for o in occupants(directory)
                           if not any(o.same_as(f) for f in family)])
        if not others:
            return Departure(tuple(stop_recorded_processes(directory)), ())
        stopped = stop_processes(directory, lambda record: _done_with(record, family))
        return Departure(tuple(stopped), others)


def stop_recorded_processes(state_dir: Path) -> list[str]:
    """Stop the database servers and every recorded process of this world."""
    stopped: list[str] = []
    if (Path(state_dir) / "clusters").is_dir():
        from rollback_helpers.sandbox.postgres.servers import stop_all

        stopped += stop_all(Path(state_dir))
    return stopped + stop_processes(Path(state_dir))


def _topmost(live: list[ProcessId]) -> tuple[int, ...]:
    """The pids of those not below another of them (a drill, not also its kernel)."""
    pids = {who.pid for who in live}
    top = []
    for who in live:
        try:
            parents = {parent.pid for parent in psutil.Process(who.pid).parents()}
        except psutil.NoSuchProcess:
            continue
        if not parents & pids:
            top.append(who.pid)
    return tuple(top)


def _below(who: ProcessId) -> list[ProcessId]:
    """The live processes below ``who`` (its notebook kernel, the kernel's children)."""
    try:
        return [ProcessId.of(child.pid) for child in
                psutil.Process(who.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _done_with(record: ProcessRecord, family: list[ProcessId]) -> bool:
    """A tunnel that the leaving process (or one below it) opened, or whose opener has gone."""
    opener = record.opener
    return opener is None or any(opener.same_as(f) for f in family) or not opener.alive()


def abandoned(state_dir: str | os.PathLike[str]) -> bool:
    """Whether every process that registered in the world has died without leaving (a drill
    killed outright). A world nobody registered in, or everyone left, is not abandoned."""
    directory = Path(state_dir)
    folder = directory / OCCUPANT_DIR
    if not folder.is_dir():
        return False
    with world_lock(directory):
        return any(folder.glob("*.json")) and not occupants(directory)
