"""Clocks the tests inject: virtual time that also remembers how it was spent."""

from __future__ import annotations

from rollback_helpers.clock import VirtualClock


class RecordingClock(VirtualClock):
    """A virtual clock that remembers every sleep."""

    def __init__(self, start: float) -> None:
        super().__init__(start)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.sleeps.append(seconds)
        super().sleep(seconds)
