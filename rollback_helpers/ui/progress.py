"""Progress on long waits: a line per change in a headless run, a bar in JupyterLab.

Headless, the archived notebook tells the wait's story in text lines. In
JupyterLab (``interactive=True``) a bar moves instead, and a final text line is
printed when the wait ends, so the saved record still says how it ended.

How full the bar is: ``elapsed / total`` when a total (seconds) is known; else
the position of the state in ``stages`` (``queued → in_progress → completed``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


class Progress:
    """Reports ``(elapsed seconds, state)`` updates without flooding the record.

    A new line is printed when the state changes or every ``every`` seconds of
    (possibly virtual) time, so an archived notebook shows the wait's story.
    """

    def __init__(self, label: str, *, total: float | None = None, every: float = 30.0,
                 interactive: bool = False, stages: Sequence[str] = ()) -> None:
        self.label = label
        self.total = total
        self.every = every
        self.stages = list(stages)
        self.interactive = interactive
        self._last_state: str | None = None
        self._last_print = -every
        self._elapsed = 0.0
        self.bar: Any = None
        if interactive:
            self._show_bar()

    def _show_bar(self) -> None:
        import ipywidgets as w
        from IPython.display import display

        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, description=self.label,
                                   bar_style="info", style={"description_width": "initial"},
                                   layout=w.Layout(width="60%"))
        self.bar.add_class("rb-progress")
        self.state_label = w.Label("starting…")
        display(w.HBox([self.bar, self.state_label]))  # type: ignore[no-untyped-call]

    def fraction(self, elapsed: float, state: str) -> float:
        if self.total:
            return min(max(elapsed / self.total, 0.0), 1.0)
        if state in self.stages:
            return (self.stages.index(state) + 1) / len(self.stages)
        return self.bar.value if self.bar is not None else 0.0

    def update(self, elapsed: float, state: str) -> None:
        self._elapsed = elapsed
        if self.bar is not None:
            self.bar.value = self.fraction(elapsed, state)
            self.state_label.value = f"{state} · {elapsed:.0f}s"
            return
        if state != self._last_state or elapsed - self._last_print >= self.every:
            suffix = f" of {self.total:.0f}s" if self.total else ""
            print(f"  [{elapsed:6.0f}s{suffix}] {self.label}: {state}", file=sys.stdout, flush=True)
            self._last_state, self._last_print = state, elapsed

    def close(self, final: str, *, ok: bool = True) -> None:
        if self.bar is not None:
            self.bar.value = 1.0 if ok else self.bar.value
            self.bar.bar_style = "success" if ok else "danger"
            self.state_label.value = final
            print(f"  {self.label}: {final} (after {self._elapsed:.0f}s)", flush=True)
            return
        print(f"  {self.label}: {final}", flush=True)
