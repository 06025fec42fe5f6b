"""The sandbox world's state, its clock and its call log.

State is plain JSON (``world.json`` in the state directory) so that any process
can load it; every call made into the world is appended to ``calls.jsonl``,
which is how tests prove that a dry run changed nothing and that no
destructive command was ever issued.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rollback_helpers.clock import utc_iso

STATE_FILE = "world.json"
CALLS_FILE = "calls.jsonl"
LOCK_FILE = "world.lock"

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


class World:
    """A loaded sandbox world. Mutate ``state``, then :meth:`save`."""

    def __init__(self, state: dict[str, Any], state_dir: Path) -> None:
        self.state = state
        self.state_dir = Path(state_dir)
        self._depth = 0
        self._seen: tuple[int, int] | None = None  # world.json as last read or written here

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Several processes may share this world (two operators' drills): read it fresh under
        a file lock and write it back before letting go, so no change or call is lost."""
        if self._depth:
            yield
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._depth += 1
            try:
                self._refresh()
                yield
                self.save()
            finally:
                self._depth -= 1
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- persistence -------------------------------------------------------
    def _stat(self) -> tuple[int, int] | None:
        try:
            st = (self.state_dir / STATE_FILE).stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def _refresh(self) -> None:
        """Read world.json again if another process wrote it since this one last did."""
        seen = self._stat()
        if seen is not None and seen != self._seen:
            self.state = json.loads((self.state_dir / STATE_FILE).read_text())
            self._seen = seen

    @classmethod
    def load(cls, state_dir: str | Path) -> World:
        path = Path(state_dir) / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"No sandbox world in {state_dir}: create one with "
                "`rollback-runbook drill …` or rollback_helpers.sandbox.scenarios.create_world()")
        world = cls(json.loads(path.read_text()), Path(state_dir))
        world._seen = world._stat()
        return world

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1, sort_keys=True))
        os.replace(tmp, self.state_dir / STATE_FILE)
        self._seen = self._stat()

    # -- time --------------------------------------------------------------
    @property
    def now(self) -> float:
        return float(self.state["now"])

    def iso_now(self) -> str:
        return utc_iso(self.now)

    def sleep(self, seconds: float) -> None:
        """Virtual time passes (and, at a drill's speed, a little real time too)."""
        if seconds <= 0:
            return
        speed = float(self.state.get("speed", 0))
        if speed > 0:
            time.sleep(seconds / speed)
        with self.transaction():
            self.state["now"] = self.now + seconds
            self.advance()

    def schedule(self, delay: float, kind: str, **data: Any) -> None:
        self.state.setdefault("events", []).append({"at": self.now + delay, "kind": kind, **data})

    def advance(self) -> None:
        """Apply every scheduled event that has come due, in time order."""
        events = sorted(self.state.get("events", []), key=lambda e: e["at"])
        due = [e for e in events if e["at"] <= self.now]
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
        """Append one call to the log: ``seam`` is ``github``, ``flyctl`` or ``http``."""
        entry = {"t": self.iso_now(), "seam": seam, "call": call, "mutating": mutating, **detail}
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / CALLS_FILE, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def calls(self) -> list[dict[str, Any]]:
        path = self.state_dir / CALLS_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_calls(state_dir: str | Path) -> list[dict[str, Any]]:
    """The call log of a sandbox world, without loading its state."""
    return World({}, Path(state_dir)).calls()
