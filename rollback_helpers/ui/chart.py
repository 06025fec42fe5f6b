"""The incident as a picture: 5xx ratio and p95 latency over time, with its moments marked.

:func:`incident_chart` draws two stacked panels sharing a UTC time axis — the 5xx
ratio (percent) above, the p95 latency (milliseconds) below — with a dashed vertical
line at each :class:`Marker` (the bad deploy, the dispatch, all machines on the
target, the verdict), and returns PNG bytes. :func:`chart_image` wraps them in an
``IPython.display.Image``: a static image survives in an executed notebook, in the
archived record and in nbconvert's HTML, where an interactive widget would not.

matplotlib (with its Agg backend, no display needed) is imported only when a chart is
drawn, never when this module is imported: the Path A step module's kernel import
stays free of it (``tests/test_import_guards.py``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Point = tuple[float, float | None]  # (seconds since the epoch, value or None: no traffic)


@dataclass(frozen=True)
class Marker:
    at: float   # seconds since the epoch
    label: str  # "bad deploy", "dispatch", "all machines on target", "verdict: recovered"


MARKER_COLOURS = ("#b91c1c", "#1d4ed8", "#047857", "#6b21a8", "#92400e")


def incident_chart(error_ratio: Sequence[Point], p95: Sequence[Point],
                   markers: Sequence[Marker] = (), *, title: str = "",
                   bounds: tuple[float | None, float | None] = (None, None),
                   width: float = 9.0, height: float = 5.0, dpi: int = 100) -> bytes:
    """PNG bytes of the chart. ``bounds``: the verdict's (5xx ratio, p95 seconds) limits,
    drawn as dotted horizontal lines when given."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display: the kernel, CI and nbconvert alike
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi)
    # Fixed margins with room for the labels: a layout engine would measure every text
    # to place them, about half of the drawing's time.
    figure.subplots_adjust(left=0.8 / width, right=1 - 0.25 / width, bottom=0.55 / height,
                           top=1 - (0.45 if title else 0.2) / height, hspace=0.12)
    errors_axes, latency_axes = figure.subplots(2, 1, sharex=True)
    _panel(errors_axes, error_ratio, 100.0, "5xx ratio (%)", "#b91c1c", bounds[0])
    _panel(latency_axes, p95, 1000.0, "p95 latency (ms)", "#1d4ed8", bounds[1])
    for index, marker in enumerate(markers):
        colour = MARKER_COLOURS[index % len(MARKER_COLOURS)]
        for axes in (errors_axes, latency_axes):
            axes.axvline(_when(marker.at), color=colour, linestyle="--", linewidth=1.2)
        errors_axes.annotate(marker.label, xy=(_when(marker.at), 1.0),
                             xycoords=("data", "axes fraction"), xytext=(3, -3),
                             textcoords="offset points", rotation=90, va="top", fontsize=8,
                             color=colour)
    latency_axes.set_xlabel("time (UTC)")
    _time_axis(latency_axes)
    if title:
        figure.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def chart_image(png: bytes) -> Any:
    """The PNG as an ``IPython.display.Image`` (shown inline, kept in the saved notebook)."""
    from IPython.display import Image

    return Image(data=png, format="png")  # type: ignore[no-untyped-call]


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _panel(axes: Any, points: Sequence[Point], scale: float, label: str, colour: str,
           bound: float | None) -> None:
    times = [_when(t) for t, _ in points]
    values = [math.nan if v is None else v * scale for _, v in points]  # a gap, never a zero
    axes.plot(times, values, color=colour, linewidth=1.6)
    if bound is not None:
        axes.axhline(bound * scale, color="#6b7280", linestyle=":", linewidth=1.0)
    axes.set_ylabel(label)
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    if not any(not math.isnan(v) for v in values):
        axes.text(0.5, 0.5, "no metrics evidence", transform=axes.transAxes, ha="center",
                  va="center", color="#6b7280")


def _time_axis(axes: Any) -> None:
    from matplotlib.dates import DateFormatter

    axes.xaxis.set_major_formatter(DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]
