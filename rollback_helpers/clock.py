"""Time, injected.

Everything that waits asks a :class:`Clock`. Incidents use :class:`RealClock`;
tests use :class:`VirtualClock`, whose ``sleep`` moves time forward at once; drills
use a virtual clock with a speed factor, so a five-minute restore is watchable in
a few seconds. Polling loops wait through a :class:`PollSchedule`, whose polls keep
a fixed rate whatever work is done between them.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (UTC)."""

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """A clock whose time moves only when someone sleeps.

    ``speed`` > 0 also sleeps for real, ``seconds / speed``: a drill at speed 60
    shows a one-minute wait as one second. ``speed = 0`` is instant (tests).
    """

    def __init__(self, start: float, speed: float = 0.0) -> None:
        self._now = start
        self.speed = speed

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.speed > 0:
            time.sleep(seconds / self.speed)
        self._now += seconds

    def advance(self, seconds: float) -> None:
        self._now += seconds


class PollSchedule:
    """Polls at a fixed rate: poll k is due at ``start + k × interval``.

    Work done between two polls (a lease renewal, a record-comment edit, a slow
    read) does not push the later polls back: :meth:`wait` sleeps until the next
    point of the grid. A poll or a write that overran a point skips it, so the
    next poll goes at the following point, never right after the previous poll.
    The moment the schedule is made counts as a poll (the first poll is not waited for).
    """

    # Within a millionth of an interval of a grid point counts as on it (a real clock drifts).
    TOLERANCE = 1e-6

    def __init__(self, clock: Clock, interval: float, *, start: float | None = None) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError(f"a poll interval is a finite number of seconds > 0, not {interval!r}")
        self.clock, self.interval = clock, interval
        self.start = clock.now() if start is None else start
        self._last = self._at_or_before(clock.now())  # the grid point of the latest poll

    def _at_or_before(self, moment: float) -> int:
        return math.floor((moment - self.start) / self.interval + self.TOLERANCE)

    def _at_or_after(self, moment: float) -> int:
        return math.ceil((moment - self.start) / self.interval - self.TOLERANCE)

    def next_poll(self) -> float:
        """When the next poll is due: the first grid point after the latest poll, not before now."""
        index = max(self._last + 1, self._at_or_after(self.clock.now()))
        return self.start + index * self.interval

    def wait(self, *, until: float | None = None) -> float:
        """Sleep until the next poll is due (or until ``until``, if that is sooner); when that is."""
        due = self.next_poll() if until is None else min(self.next_poll(), until)
        self.clock.sleep(due - self.clock.now())
        self._last = self._at_or_before(max(due, self.clock.now()))
        return due


def utc_iso(epoch: float) -> str:
    """GitHub's timestamp form: ``2026-06-10T09:14:03Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
