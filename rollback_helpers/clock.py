"""Time, injected.

Everything that waits asks a :class:`Clock`. Incidents use :class:`RealClock`;
tests use :class:`VirtualClock`, whose ``sleep`` moves time forward at once; drills
use a virtual clock with a speed factor, so a five-minute restore is watchable in
a few seconds.
"""

from __future__ import annotations

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


def utc_iso(epoch: float) -> str:
    """GitHub's timestamp form: ``2026-06-10T09:14:03Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
