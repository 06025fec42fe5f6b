"""Reading an app's metrics into the evidence the verdicts weigh.

:func:`read_window` asks the three queries of :class:`~rollback_helpers.domain.evidence.
MetricsSettings` for one window (instant queries at its end, ranging over it) and sums them
into a :class:`~rollback_helpers.domain.evidence.WindowSignal`; :func:`read_timeline` asks
them with ``query_range`` for the chart. Both share one time budget per reading
(``settings.timeout``, measured on the injected clock) across their queries, and return a
:class:`~rollback_helpers.clients.metrics.NoEvidence` instead of raising: no 5xx series is
zero errors, and no request series at all is no traffic (the verdict says inconclusive).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from rollback_helpers.clients.metrics import NoEvidence, QueryResult
from rollback_helpers.clock import Clock, PollSchedule
from rollback_helpers.domain.evidence import (
    RecoveryVerdict,
    RegionSignal,
    Unread,
    WindowSignal,
    recovery_verdict,
    render_query,
)
from rollback_helpers.domain.metrics_settings import MetricsSettings


class MetricsSource(Protocol):
    """What reading a window needs: :class:`rollback_helpers.clients.metrics.MetricsClient`."""

    def query(self, promql: str, at: float, *, budget: float | None = None
              ) -> QueryResult | NoEvidence: ...


def read_window(source: MetricsSource, settings: MetricsSettings, app: str, start: float,
                end: float, *, clock: Clock) -> WindowSignal | NoEvidence:
    """The three readings of ``app`` over ``[start, end]``, within one time budget."""
    deadline = clock.now() + settings.timeout
    answers: dict[str, QueryResult | None] = {}
    for key, template in (("requests", settings.requests_query),
                          ("errors", settings.errors_query), ("p95", settings.p95_query)):
        remaining = deadline - clock.now()
        if remaining <= 0:
            return NoEvidence("timeout", f"reading {app}'s metrics took its whole "
                              f"{settings.timeout:g} s budget.")
        answer = source.query(render_query(template, app, end - start), end, budget=remaining)
        if isinstance(answer, NoEvidence):
            if answer.reason != "no_series":
                return answer
            answers[key] = None
        else:
            answers[key] = answer
    return _signal(start, end, answers)


def _signal(start: float, end: float, answers: Mapping[str, QueryResult | None]) -> WindowSignal:
    requests = _by_region(answers.get("requests"))
    errors = _by_region(answers.get("errors"))
    regions = tuple(RegionSignal(region, count, errors.get(region, 0.0))
                    for region, count in sorted(requests.items()))
    p95_answer = answers.get("p95")
    p95 = p95_answer.series[0].last if p95_answer and p95_answer.series else math.nan
    return WindowSignal(start, end, sum(requests.values()), sum(errors.values()),
                        None if math.isnan(p95) else p95, regions)


def _by_region(answer: QueryResult | None) -> dict[str, float]:
    found: dict[str, float] = {}
    for series in answer.series if answer else ():
        value = series.last
        if not math.isnan(value):
            region = series.label("region") or "all"
            found[region] = found.get(region, 0.0) + value
    return found


class RangeSource(Protocol):
    """What reading a timeline needs: :class:`rollback_helpers.clients.metrics.MetricsClient`."""

    def query_range(self, promql: str, start: float, end: float, step: float, *,
                    budget: float | None = None) -> QueryResult | NoEvidence: ...


@dataclass(frozen=True)
class Timeline:
    """The chart's points: (time, value or None when no request was served)."""

    error_ratio: tuple[tuple[float, float | None], ...]
    p95: tuple[tuple[float, float | None], ...]


def read_timeline(source: RangeSource, settings: MetricsSettings, app: str, start: float,
                  end: float, *, clock: Clock, step: float = 60.0) -> Timeline | NoEvidence:
    """The 5xx ratio and p95 from ``start`` to ``end``, each point over the ``step`` before it."""
    deadline = clock.now() + settings.timeout
    answers: dict[str, dict[float, float]] = {}
    for key, template in (("requests", settings.requests_query),
                          ("errors", settings.errors_query), ("p95", settings.p95_query)):
        remaining = deadline - clock.now()
        answer = source.query_range(render_query(template, app, step), start, end, step,
                                    budget=remaining) if remaining > 0 else \
            NoEvidence("timeout", f"reading {app}'s metrics took its whole "
                       f"{settings.timeout:g} s budget.")
        if isinstance(answer, NoEvidence) and answer.reason != "no_series":
            return answer
        answers[key] = _summed(None if isinstance(answer, NoEvidence) else answer)
    requests, errors = answers["requests"], answers["errors"]
    ratio = tuple((t, errors.get(t, 0.0) / requests[t] if requests[t] > 0 else None)
                  for t in sorted(requests))
    p95 = tuple((t, None if math.isnan(v) else v) for t, v in sorted(answers["p95"].items()))
    return Timeline(ratio, p95)


def _summed(answer: QueryResult | None) -> dict[float, float]:
    """Each step's values summed over the series; NaN (a quantile of nothing) stays NaN."""
    found: dict[float, float] = {}
    for series in answer.series if answer else ():
        for sample in series.samples:
            found[sample.time] = found.get(sample.time, 0.0) + sample.value
    return found


@dataclass(frozen=True)
class WatchProgress:
    """One poll of the watch: the window from its start to now, read."""

    at: float
    elapsed: float
    reading: WindowSignal | NoEvidence


def watch_recovery(source: MetricsSource, settings: MetricsSettings, app: str, *, start: float,
                   baseline: WindowSignal | Unread, during: WindowSignal | Unread, clock: Clock,
                   on_progress: Callable[[WatchProgress], None] | None = None) -> RecoveryVerdict:
    """Watch ``app`` for ``settings.watch_window`` from ``start`` (every machine on the target),
    reading the window so far every ``poll_interval`` at a fixed rate (``on_progress``), then
    the verdict over the whole window.

    The metrics are asked first about the ``poll_interval`` before ``start``: an endpoint
    that is down, slow or refusing ends the watch at once with ``no_evidence``, having
    cost at most one reading's ``timeout``, so it never holds the rollback up."""
    probe = read_window(source, settings, app, start - settings.poll_interval, start, clock=clock)
    if isinstance(probe, NoEvidence):
        return recovery_verdict(baseline, during, probe, settings)
    end = start + settings.watch_window
    schedule = PollSchedule(clock, settings.poll_interval, start=start)
    reading: WindowSignal | NoEvidence = probe
    while clock.now() < end:
        now = min(schedule.wait(until=end), end)
        reading = read_window(source, settings, app, start, now, clock=clock)
        if on_progress is not None:
            on_progress(WatchProgress(now, now - start, reading))
        if isinstance(reading, NoEvidence):
            break
    return recovery_verdict(baseline, during, reading, settings)
