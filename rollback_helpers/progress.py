"""Progress on long waits: a line per change in a headless run, a bar in JupyterLab."""

from __future__ import annotations

import sys


class Progress:
    """Reports ``(elapsed seconds, state)`` updates without flooding the record.

    A new line is printed when the state changes or every ``every`` seconds of
    (possibly virtual) time, so an archived notebook shows the wait's story.
    """

    def __init__(self, label: str, *, total: float | None = None, every: float = 30.0) -> None:
        self.label = label
        self.total = total
        self.every = every
        self._last_state: str | None = None
        self._last_print = -every

    def update(self, elapsed: float, state: str) -> None:
        if state != self._last_state or elapsed - self._last_print >= self.every:
            suffix = f" of {self.total:.0f}s" if self.total else ""
            print(f"  [{elapsed:6.0f}s{suffix}] {self.label}: {state}", file=sys.stdout, flush=True)
            self._last_state, self._last_print = state, elapsed

    def close(self, final: str) -> None:
        print(f"  {self.label}: {final}", flush=True)
