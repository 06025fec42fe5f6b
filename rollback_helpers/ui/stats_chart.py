"""Recovery time over time: one point per recovered incident, one colour per environment.

Drawn like :mod:`rollback_helpers.ui.chart` (matplotlib's Agg backend, imported only
when a chart is drawn) and returned as PNG bytes, so a stats page embeds it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

COLOURS = ("#1d4ed8", "#b91c1c", "#047857", "#6b21a8", "#92400e")

Series = Mapping[str, Sequence[tuple[datetime, float]]]  # env → (when, minutes)


def recovery_chart(series: Series, *, title: str = "", width: float = 9.0, height: float = 4.0,
                   dpi: int = 100) -> bytes:
    """PNG bytes: recovery time (minutes) against when each incident's bad deploy went out."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    axes = figure.subplots()
    plotted = False
    for index, (env, points) in enumerate(sorted(series.items())):
        if not points:
            continue
        ordered = sorted(points)
        when: list[Any] = [at for at, _ in ordered]  # matplotlib's date axis takes datetimes
        axes.plot(when, [minutes for _, minutes in ordered],
                  marker="o", linewidth=1.2, markersize=5, label=env,
                  color=COLOURS[index % len(COLOURS)])
        plotted = True
    axes.set_ylabel("recovery time (min)")
    axes.set_xlabel("bad deploy (UTC)")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    if plotted:
        locator = AutoDateLocator()  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
        axes.legend(loc="upper left", fontsize=9)
    else:
        axes.text(0.5, 0.5, "no recovered incident in this period", transform=axes.transAxes,
                  ha="center", va="center", color="#6b7280")
    if title:
        axes.set_title(title, fontsize=11)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
