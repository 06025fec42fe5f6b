"""The sandbox world's state, its clock and its call log.

State is plain JSON (``world.json`` in the state directory, compact) so that any process
can load it; every call made into the world is appended to ``calls.jsonl``,
which is how tests prove that a dry run changed nothing and that no
destructive command was ever issued.

Several processes may act in one world at once (two operators' drills, a
notebook kernel and the command line that started it). Each request into the
world is a transaction (:meth:`World.transaction`): under an exclusive file lock
on the world's directory (``fcntl.flock`` on ``.lock``; the sandbox is one
machine's directory) it re-reads the state if another process changed it,
applies the request, saves the state (write, then an atomic rename) and appends
its call-log lines, in that order. So a request the world answered is on disk
before the answer is returned, like an accepted request on the real service: a
client that dies right after it does not take it back. The call log is only
ever appended to, one ``write`` per line.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rollback_helpers.clock import lane_now, utc_iso

STATE_FILE = "world.json"
CALLS_FILE = "calls.jsonl"
LOCK_FILE = ".lock"

EventHandler = Callable[["World", dict[str, Any]], None]
_EVENT_HANDLERS: dict[str, EventHandler] = {}


def on_event(kind: str) -> Callable[[EventHandler], EventHandler]:
    """Register what happens when a scheduled event of ``kind`` comes due.

    The services register their handlers when they are imported, and the
    sandbox package imports them all (``rollback_helpers/sandbox/__init__.py``),
    so any process that loads a world can apply any event another process scheduled.
    """

    def register(handler: EventHandler) -> EventHandler:
        _EVENT_HANDLERS[kind] = handler
        return handler

    return register


def digest_for(name: str) -> str:
    """A stable, realistic digest for a named sandbox image (``v42`` → ``sha256:…``)."""
    return "sha256:" + hashlib.sha256(f"sandbox-image:{name}".encode()).hexdigest()


_SPAN = threading.local()  # the virtual start and end of the call this thread is answering


@contextmanager
def call_span(start: float, end: float) -> Iterator[None]:
    """Log the calls this thread makes meanwhile with ``span`` [start, end] (virtual seconds)."""
    _SPAN.value = [start, end]
    try:
        yield
    finally:
        _SPAN.value = None


_THREAD_LOCKS: dict[str, threading.RLock] = {}
_HELD: dict[str, int] = {}  # directory -> nesting depth of this process's flock on it
_REGISTRY = threading.Lock()


@contextmanager
def world_lock(state_dir: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of the world in ``state_dir`` (created if need be).

    Between processes it is ``flock`` on ``<state_dir>/.lock``; within a process a
    re-entrant lock per directory, so a thread that holds it may take it again
    (a request that sleeps, a world built while locked) and other threads wait.
    """
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    key = str(directory.resolve())
    with _REGISTRY:
        guard = _THREAD_LOCKS.setdefault(key, threading.RLock())
    with guard:
        if _HELD.get(key):
            _HELD[key] += 1
            try:
                yield
            finally:
                _HELD[key] -= 1
            return
        with open(directory / LOCK_FILE, "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            _HELD[key] = 1
            try:
                yield
            finally:
                _HELD[key] = 0
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class World:
    """A loaded sandbox world. Change ``state`` inside :meth:`transaction`.

    Outside a transaction, :meth:`save` writes the state as it is in this process
    (building a world, a test arranging one); the next transaction of another
    process that holds an older copy re-reads it first.
    """

    def __init__(self, state: dict[str, Any], state_dir: Path) -> None:
        self.state = state
        self.state_dir = Path(state_dir)
        self._on_disk: bytes | None = None  # world.json as this process last read or wrote it
        self._depth = 0
        self._pending: list[str] = []  # call-log lines of the transaction in progress
        self._lane_key: str | None = None  # this world's key among the clock's lanes

    # -- persistence -------------------------------------------------------
    @classmethod
    def load(cls, state_dir: str | Path) -> World:
        path = Path(state_dir) / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"No sandbox world in {state_dir}: create one with "
                "`rollback-runbook drill …` or rollback_helpers.sandbox.scenarios.create_world()")
        world = cls({}, Path(state_dir))
        with world_lock(state_dir):
            world.refresh()
        return world

    def refresh(self) -> None:
        """Re-read the state if another process saved a different one since we last did."""
        try:
            data = (self.state_dir / STATE_FILE).read_bytes()
        except FileNotFoundError:
            return
        if data != self._on_disk:
            self.state, self._on_disk = json.loads(data), data

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Compact: without ``indent`` json uses its C encoder, several times faster, and every
        # request saves (or at least encodes) the whole state. ``python -m json.tool`` reads it.
        data = json.dumps(self.state, sort_keys=True, separators=(",", ":")).encode()
        if data == self._on_disk:
            return  # a request that changed nothing writes nothing
        tmp = self.state_dir / f"{STATE_FILE}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.state_dir / STATE_FILE)
        self._on_disk = data

    @contextmanager
    def transaction(self) -> Iterator[World]:
        """One request as a read-modify-write under the world's lock (re-entrant).

        Loads the state if another process changed it, lets the caller apply the
        request, then saves the state and appends the call-log lines. If the
        request fails half-way nothing is saved, and the next transaction starts
        from the state on disk.
        """
        with world_lock(self.state_dir):
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._depth, self._pending = 1, []
            try:
                self.refresh()
                yield self
                self.save()
                self._append_calls(self._pending)
            except BaseException:
                self._on_disk = None  # half-applied in memory: re-read next time
                raise
            finally:
                self._depth, self._pending = 0, []

    # -- time --------------------------------------------------------------
    @property
    def now(self) -> float:
        return float(self.state["now"])

    def iso_now(self) -> str:
        return utc_iso(self.now)

    @property
    def lane_key(self) -> str:
        """This world's key among the clock's lanes (:mod:`rollback_helpers.clock`)."""
        if self._lane_key is None:
            self._lane_key = str(self.state_dir.resolve())
        return self._lane_key

    def caller_now(self) -> float:
        """The time of the call being answered: the calling thread's lane when its work
        overlaps with other work (:func:`rollback_helpers.clock.lane_now`), else the world's
        time. A reply that depends on the time (a rate limit's window, a ``retry-after``) and
        the call log use it, so a caller whose lane is behind the world is answered at its
        own moment, as a real server answers each request when it arrives."""
        lane = lane_now(self.lane_key)
        return self.now if lane is None else lane

    def sleep(self, seconds: float) -> None:
        """Virtual time passes (and, at a drill's speed, a little real time too).

        The world's clock moves to at least this sleeper's "now + seconds", so two
        processes waiting at once do not add their waits up. The real wait (at a
        drill's speed) happens outside the world's lock, unless a request sleeps.
        """
        if seconds <= 0:
            return
        with self.transaction():
            until = self.now + seconds
            speed = float(self.state.get("speed", 0))
        if speed > 0:
            time.sleep(seconds / speed)
        with self.transaction():
            self.state["now"] = max(self.now, until)
            self.advance()

    def schedule(self, delay: float, kind: str, **data: Any) -> None:
        self.state.setdefault("events", []).append({"at": self.now + delay, "kind": kind, **data})

    def advance(self) -> None:
        """Apply every scheduled event that has come due, in time order."""
        while True:  # an event may schedule another that is due at once
            events = sorted(self.state.get("events", []), key=lambda e: e["at"])
            due = [e for e in events if e["at"] <= self.now]
            if not due:
                return
            self.state["events"] = [e for e in events if e["at"] > self.now]
            for event in due:
                handler = _EVENT_HANDLERS.get(event["kind"])
                if handler is None:
                    raise RuntimeError(f"sandbox: no handler for scheduled event {event['kind']!r}")
                handler(self, event)

    # -- ids and the call log -------------------------------------------------
    def next_id(self, counter: str, start: int = 1) -> int:
        counters = self.state.setdefault("counters", {})
        counters[counter] = counters.get(counter, start - 1) + 1
        return int(counters[counter])

    def log_call(self, seam: str, call: str, *, mutating: bool, **detail: Any) -> None:
        """Log one call: ``seam`` is ``github``, ``flyctl`` or ``http``.

        Inside a transaction the line is appended once the state is saved;
        outside one, at once.
        """
        entry = {"t": utc_iso(self.caller_now()), "seam": seam, "call": call,
                 "mutating": mutating, **detail}
        if (span := getattr(_SPAN, "value", None)) is not None:
            entry["span"] = span
        line = json.dumps(entry) + "\n"
        if self._depth:
            self._pending.append(line)
        else:
            with world_lock(self.state_dir):
                self._append_calls([line])

    def _append_calls(self, lines: list[str]) -> None:
        if not lines:
            return
        fd = os.open(self.state_dir / CALLS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for line in lines:  # one write per line: O_APPEND never interleaves or overwrites
                os.write(fd, line.encode())
        finally:
            os.close(fd)

    def calls(self) -> list[dict[str, Any]]:
        path = self.state_dir / CALLS_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class StoredClock:
    """The world's virtual clock as its state file tells it, for a process that stamps times
    without acting in the world (the command line telling a drill's record in the world's
    time). The file is read again only when it changed."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state_file = Path(state_dir) / STATE_FILE
        self._read: tuple[tuple[int, int], float] | None = None

    def now(self) -> float:
        seen = self.state_file.stat()
        key = (seen.st_mtime_ns, seen.st_size)
        if self._read is None or self._read[0] != key:  # replaced since (an atomic rename)
            self._read = (key, float(json.loads(self.state_file.read_bytes())["now"]))
        return self._read[1]

    def sleep(self, seconds: float) -> None:
        World.load(self.state_file.parent).sleep(seconds)


def read_calls(state_dir: str | Path) -> list[dict[str, Any]]:
    """The call log of a sandbox world, without loading its state."""
    return World({}, Path(state_dir)).calls()
